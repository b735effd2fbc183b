"""Eve (Kunze, Townsend & Barber): is the step size more stable with examplewise second moments?

Claims checked: (1) Eve's stepsize fluctuates less from step to step than Adam's, measured
as the std over the second half of training of the step-to-step change of log mean(u),
median over layers; (2) the shape of the paper's Table 2: test accuracy across batch
sizes. What the rule implies: Eve's denominator holds (1 - 1/B) m_hat^2, which moves at the
pace of the first moment (beta1), while Adam's v moves at the pace of beta2; where that
term dominates, Eve's stepsize is the less stable one.

    python examples/eve_stability.py [--scale 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import gradscope.optim as O
from gradscope.demo import make_digits_mlp, train_digits
from gradscope.record import Recorder
from gradscope.runfile import RunFile

ap = argparse.ArgumentParser()
ap.add_argument("--scale", type=float, default=1.0, help="multiplies epochs (1 = 10 epochs)")
ap.add_argument("--device", default="cpu")
ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp()))
args = ap.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
epochs = max(1, round(10 * args.scale))

volatility = {}
for name, cls in {"adam": O.Adam, "eve": O.Eve}.items():
    model = make_digits_mlp().to(args.device)
    opt = cls(model.parameters(), lr=1e-3)
    path = args.out / f"eve-{name}.h5"
    with Recorder(model, opt, path, sample=0, hist_every=None, overwrite=True) as rec:
        train_digits(
            model, opt, epochs=epochs, device=args.device, recorder=rec, examplewise=name == "eve"
        )
    with RunFile(path) as run:
        half = slice(run.n_rows // 2, None)
        log_u = np.log(run.summary("stepsize", "mean", rows=half))  # (steps, layers)
    volatility[name] = float(np.median(np.std(np.diff(log_u, axis=0), axis=0)))
    print(f"{name:5s} step-to-step volatility of log mean stepsize: {volatility[name]:.5f}")
ratio = volatility["eve"] / volatility["adam"]
verdict = "holds" if ratio < 1 else "does NOT hold"
print(f"Eve's stepsize more stable than Adam's: {verdict} (Eve/Adam = {ratio:.2f}; paper: 0.75)")

print("\ntest accuracy by batch size (paper's Table 2 shape)")
print(f"{'batch':>6} {'adam':>8} {'eve':>8}")
# a quick check (--scale < 1) leaves out batch 16, the costliest of per-example statistics
for batch in (16, 64, 256) if args.scale >= 1 else (64, 256):
    acc = {}
    for name, cls in {"adam": O.Adam, "eve": O.Eve}.items():
        model = make_digits_mlp().to(args.device)
        opt = cls(model.parameters(), lr=1e-3)
        res = train_digits(
            model, opt, epochs=epochs, batch_size=batch, device=args.device,
            examplewise=name == "eve",
        )  # fmt: skip
        acc[name] = res.test_accuracy
    print(f"{batch:6d} {100 * acc['adam']:7.1f}% {100 * acc['eve']:7.1f}%")
