"""Which layers have non-random successive gradients under SGD? (Zhang et al.'s test, corrected)

The test is that of J. Zhang, Qiao, Lopotenco & Pan, "Understanding Stochastic Optimization
Behavior at the Layer Update Level" (AAAI student abstract).

For every layer and step, the cosine between successive mini-batch gradients is tested
against the exact null of two independent isotropic vectors in R^n (n = layer size):
exact p-values, Benjamini-Hochberg across layers at each step, and the fraction of
"non-random" steps per layer, printed from input to output. Beside it, the abstract's
threshold sqrt(log n / n) with its true false-positive rate, which is far above the
claimed 1/n (docs/theory.md, section 8.1).

    python examples/cosine_randomness.py [--scale 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import gradscope.optim as O
from gradscope import theory
from gradscope.demo import make_digits_mlp, train_digits
from gradscope.record import Recorder
from gradscope.runfile import RunFile

ap = argparse.ArgumentParser()
ap.add_argument("--scale", type=float, default=1.0, help="multiplies epochs (1 = 5 epochs)")
ap.add_argument("--device", default="cpu")
ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp()))
ap.add_argument("--alpha", type=float, default=0.05)
args = ap.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

model = make_digits_mlp(hidden=(64, 64, 64, 64)).to(args.device)
opt = O.SGD(model.parameters(), lr=0.05)  # plain SGD: the tested vectors are the gradients
path = args.out / "cosine-sgd.h5"
with Recorder(model, opt, path, sample=0, hist_every=None, overwrite=True) as rec:
    train_digits(model, opt, epochs=max(1, round(5 * args.scale)), device=args.device, recorder=rec)

with RunFile(path) as run:
    cos = run.cosine("grad")[1:]  # (steps, layers); row 0 has no predecessor
    n = run.sizes
    layers = run.layers
pvalues = theory.cosine_pvalue(cos, n[None, :])
rejected = theory.fdr_control(pvalues, axis=1) < args.alpha
fraction = rejected.mean(axis=0)
sqrt_log_rule = np.abs(cos) > theory.sqrt_log_threshold(n)[None, :]

print(f"{'layer (input -> output)':24s} {'n':>6s} {'mean cos':>9s} {'non-random':>11s} "
      f"{'sqrt-log':>10s} {'its FPR':>9s} {'claimed':>8s}")  # fmt: skip
for j, name in enumerate(layers):
    print(f"{name:24s} {n[j]:6d} {cos[:, j].mean():9.4f} {fraction[j]:10.0%} "
          f"{sqrt_log_rule[:, j].mean():10.0%} {theory.sqrt_log_threshold_fpr(n[j]):9.4f} "
          f"{1 / n[j]:8.4f}")  # fmt: skip
weights, biases = fraction[0::2], fraction[1::2]
print(f"non-random fraction, weights by depth: {np.round(weights, 2).tolist()}")
print(f"non-random fraction, biases by depth:  {np.round(biases, 2).tolist()}")
understated = all(theory.sqrt_log_threshold_fpr(k) > 1 / k for k in n)
print("the sqrt(log n / n) threshold's real false-positive rate exceeds its claim 1/n in "
      f"every layer: {'holds' if understated else 'does NOT hold'}")  # fmt: skip
