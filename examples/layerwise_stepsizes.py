"""Layerwise spread of the adaptive stepsizes (Aida paper, Figs. 1, 2, 6).

The Aida paper is Zhang, Niwa & Kleijn, "On Exploiting Layerwise Gradient Statistics for
Effective Training of Deep Neural Networks".

Claim checked: the within-layer std of the elementwise stepsizes is smallest for Aida,
then AdaBelief, then Adam; and Aida's layer means are more compact across layers.
Every optimizer trains the same MLP from the same weights on the same data order, and a
Recorder logs the stepsize statistics over all coordinates of every layer.

    python examples/layerwise_stepsizes.py [--scale 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import gradscope.optim as O
from gradscope.demo import make_digits_mlp, train_digits
from gradscope.record import Recorder, every
from gradscope.runfile import RunFile

ap = argparse.ArgumentParser()
ap.add_argument("--scale", type=float, default=1.0, help="multiplies epochs (1 = 10 epochs)")
ap.add_argument("--device", default="cpu")
ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp()))
args = ap.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
epochs = max(1, round(10 * args.scale))

optimizers = {
    "adam": lambda p: O.Adam(p, lr=1e-3),
    "adabelief": lambda p: O.AdaBelief(p, lr=1e-3),
    "aida": lambda p: O.Aida(p, lr=1e-3, k=2),
}
std, spread = {}, {}
for name, make in optimizers.items():
    model = make_digits_mlp().to(args.device)
    opt = make(model.parameters())
    path = args.out / f"layerwise-{name}.h5"
    with Recorder(model, opt, path, every=every(5), sample=0, overwrite=True) as rec:
        train_digits(model, opt, epochs=epochs, device=args.device, recorder=rec)
    with RunFile(path) as run:
        half = slice(run.n_rows // 2, None)  # second half of training, as the paper's plots
        layer_std = run.summary("stepsize", "std", rows=half).mean(axis=0)
        layer_mean = run.summary("stepsize", "mean", rows=half).mean(axis=0)
    std[name] = float(np.median(layer_std))
    spread[name] = float(np.log10(layer_mean.max() / layer_mean.min()))
    print(
        f"{name:10s} median within-layer std of u (absolute) {std[name]:10.3f}   "
        f"log10 spread of layer means {spread[name]:.3f}   ({path})"
    )

order_holds = std["aida"] < std["adabelief"] < std["adam"]
compact_holds = spread["aida"] < spread["adam"]
print(f"std order Aida < AdaBelief < Adam: {'holds' if order_holds else 'does NOT hold'}")
print(
    f"Aida's layer means more compact than Adam's: {'holds' if compact_holds else 'does NOT hold'}"
)
