"""The exact laws of the Adam update (Zhang & Ziyin, UAI 2021), checked on gradscope's Adam.

i.i.d. N(0, 1) gradients are fed to gradscope.optim.Adam (eps = 0) on one large parameter;
the recorded update u = -update / lr at t = 2, 3, 10 is compared with the exact law for
EMA m and uniform v (docs/theory.md, section 3.1), which is within 1e-4 in CDF of real
Adam's law. Then the simple-averaging recursion gives Corollary 1 (Var sqrt(t) u = 1 at
every t) and Corollary 2 (Var |sqrt(t) u| rising to 1 - 2/pi).

    python examples/update_laws.py [--scale 1] [--device cpu]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import gradscope.optim as O
from gradscope import theory
from gradscope.optim import introspect

ap = argparse.ArgumentParser()
ap.add_argument("--scale", type=float, default=1.0, help="multiplies the 2e5 coordinates")
ap.add_argument("--device", default="cpu")
args = ap.parse_args()
n = max(1000, int(2e5 * args.scale))
b1, b2, lr = 0.9, 0.999, 1e-3

gen = torch.Generator(device=args.device).manual_seed(0)
x = torch.zeros(n, dtype=torch.float64, device=args.device, requires_grad=True)
opt = O.Adam([x], lr=lr, betas=(b1, b2), eps=0.0)
introspect.track(opt)
print(f"{'t':>3s} {'KS distance':>12s} {'sampling level':>15s} {'Var u t_eff':>12s}")
worst = 0.0
for t in range(1, 11):
    x.grad = torch.randn(n, generator=gen, dtype=torch.float64, device=args.device)
    opt.step()
    if t in (2, 3, 10):
        u = -(introspect.last_step(opt)[0].update / lr).cpu().numpy()
        law = theory.ema_update(t, b1)
        fit = theory.goodness_of_fit(u, law)
        level = 1.36 / np.sqrt(n)  # 5% critical KS distance for n samples
        worst = max(worst, fit.ks_distance / level)
        print(f"{t:3d} {fit.ks_distance:12.5f} {level:15.5f} {u.var() * theory.t_eff(t, b1):12.4f}")
print(f"empirical update laws match the exact law (KS below the 5% sampling level): "
      f"{'holds' if worst < 1 else 'does NOT hold'}")  # fmt: skip

sim = theory.simulate_adam(n, 50, beta1=None, beta2=None, record=[1, 2, 3, 5, 10, 20, 50])
print(f"\n{'t':>3s} {'Var sqrt(t)u':>13s} {'Var|sqrt(t)u|':>14s} {'Corollary 2':>12s}")
flat, rising = True, []
for t in sim.steps:
    s = np.sqrt(t) * sim.at(t)
    flat &= abs(s.var() - 1.0) < 5 * np.sqrt(2.0 / n) + 1e-12 or t == 1
    rising.append(np.abs(s).var())
    print(f"{t:3d} {s.var():13.4f} {np.abs(s).var():14.4f} {theory.var_abs_scaled_update(t):12.4f}")
print(f"Var sqrt(t)u flat at 1: {'holds' if flat else 'does NOT hold'}; "
      f"Var|sqrt(t)u| rising towards 1 - 2/pi = {1 - 2 / np.pi:.4f}: "
      f"{'holds' if np.all(np.diff(rising) > -0.01) else 'does NOT hold'}")  # fmt: skip
