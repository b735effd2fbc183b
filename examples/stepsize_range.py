"""SET-Adam (G. Zhang): its transforms suppress the range of the adaptive stepsizes.

Claim checked: per layer, max/min of the elementwise stepsizes is smaller for SET-Adam
than for Adam on the same network, weights and data order (median over layers and over
the second half of training, from the recorded per-layer min and max). SET-Adam is run
twice: with the paper's tau = 0.5, and with tau = 0 (down-scaling and eps-embedding only),
because down-translating as specified (w~ = w - tau min w, docs/optimizers.md, "SET-Adam")
can only widen max/min of u = 1/w~: (w_max - tau w_min) / ((1 - tau) w_min) > w_max/w_min.

    python examples/stepsize_range.py [--scale 1] [--device cpu]
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

log_range = {}
variants = {
    "adam": lambda p: O.Adam(p, lr=1e-3),
    "setadam": lambda p: O.SETAdam(p, lr=1e-3, tau=0.5),
    "setadam-tau0": lambda p: O.SETAdam(p, lr=1e-3, tau=0.0),
}
for name, make in variants.items():
    model = make_digits_mlp().to(args.device)
    opt = make(model.parameters())
    path = args.out / f"range-{name}.h5"
    with Recorder(model, opt, path, every=every(5), sample=0, overwrite=True) as rec:
        train_digits(model, opt, epochs=epochs, device=args.device, recorder=rec)
    with RunFile(path) as run:
        half = slice(run.n_rows // 2, None)
        ratio = run.summary("stepsize", "max", rows=half) / run.summary(
            "stepsize", "min", rows=half
        )
    log_range[name] = float(np.median(np.log10(ratio)))
    print(f"{name:12s} median over layers and steps of log10(max u / min u): {log_range[name]:.3f}")

for name in ("setadam", "setadam-tau0"):
    holds = log_range[name] < log_range["adam"]
    print(f"{name} stepsize range below Adam's: {'holds' if holds else 'does NOT hold'}")
widens = log_range["setadam"] > log_range["setadam-tau0"]
print(f"down-translating (tau 0.5 vs 0) widens the range: {'yes' if widens else 'no'}")
