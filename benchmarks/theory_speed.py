"""Time pdf/cdf of the closed-form update laws on 1e7 points (prints; not a test).

python benchmarks/theory_speed.py [--n 10000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradscope.theory import adam_update, adam_update_scaled, ema_update, exact

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=10_000_000)
args = parser.parse_args()
rng = np.random.default_rng(0)


def timed(label: str, fn, repeat: int = 3) -> None:
    """Print the best of ``repeat`` wall-clock times (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<52s} {best:7.3f} s", flush=True)


print(f"n = {args.n:.0e} points, samples drawn from the law itself")
for t in [2, 3, 5, 10, 100, 10_000, 10_000_000]:
    x = adam_update.rvs(t, size=args.n, random_state=rng)
    timed(f"adam_update.pdf  t={t}", lambda x=x, t=t: adam_update.pdf(x, t))
    timed(f"adam_update.cdf  t={t}", lambda x=x, t=t: adam_update.cdf(x, t))
    timed(
        f"exact.cosine_cdf t={t} (kernel, no scipy wrapper)",
        lambda x=x, t=t: exact.cosine_cdf(x, t),
    )
x = adam_update_scaled.rvs(10, size=args.n, random_state=rng)
timed("adam_update_scaled.cdf t=10", lambda: adam_update_scaled.cdf(x, 10))
x = ema_update.rvs(30, 0.9, size=args.n, random_state=rng)
timed("ema_update.cdf t=30 beta1=0.9", lambda: ema_update.cdf(x, 30, 0.9))
x = rng.uniform(-1, 1, args.n)
timed("adam_update.cdf t=10, x uniform on [-1, 1]", lambda: adam_update.cdf(x, 10))

# Real Adam (beta2 < 1): no closed form. The fast real integral against Imhof's, side by side
# on the same 101-point grid (best of 3 each); Imhof is skipped where it takes minutes.
print("\nreal Adam law (beta1=0.9, beta2=0.999), 101 points: quadform vs Imhof")
for t in [3, 10, 100, 1000]:
    w, a = exact.adam_weights(t, 0.9, 0.999)
    grid = np.linspace(-1, 1, 101) * exact.update_bound(w, a)
    pair = {}
    for name, cdf, pdf in [
        ("quadform", exact.quadform_cdf, exact.quadform_pdf),
        ("imhof", exact.imhof_cdf, exact.imhof_pdf),
    ]:
        if name == "imhof" and t > 100:
            continue
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            cdf(grid, w, a)
            pdf(grid, w, a)
            best = min(best, time.perf_counter() - start)
        pair[name] = best
    ratio = f"  speed-up {pair['imhof'] / pair['quadform']:6.1f}x" if "imhof" in pair else ""
    times = "  ".join(f"{k} {v:7.3f} s" for k, v in pair.items())
    print(f"t={t:<5d} cdf+pdf: {times}{ratio}", flush=True)
