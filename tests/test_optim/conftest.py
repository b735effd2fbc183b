"""Fixtures shared by the optimizer tests: fixed float64 problems and a runner."""

from __future__ import annotations

import numpy as np
import torch

SHAPES = [(3, 4), (5,), (1,), ()]  # a 0-d parameter last, as torch's tests do
STEPS = 8


def make_params(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]


def grad_sequence(seed=1, steps=STEPS, shapes=SHAPES):
    """Gradients that change sign, scale and direction from step to step."""
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s) * (1 + 0.5 * t) + 0.3 for s in shapes] for t in range(steps)]


def examplewise_sq(grads, seed=2, batch=4):
    """mean_b g_b^2 of a batch whose mean is grads (spread chosen at random)."""
    rng = np.random.default_rng(seed)
    out = []
    for step in grads:
        row = []
        for g in step:
            dev = rng.normal(size=(batch, *np.shape(g)))
            dev -= dev.mean(axis=0)
            row.append(np.mean((g + dev) ** 2, axis=0))
        out.append(row)
    return out


def run_torch(
    opt_cls, cfg, grads, *, foreach=False, dtype=torch.float64, sq=None, batch=4, track=True
):
    """Run a gradscope optimizer on fixed gradients; return params and stepsizes per step."""
    params = [p.requires_grad_() for p in make_params(dtype)]
    opt = opt_cls(params, **cfg, foreach=foreach)
    if track:
        opt.track(True)
    xs, us = [], []
    for t, step in enumerate(grads):
        for p, g in zip(params, step):
            p.grad = torch.as_tensor(np.asarray(g), dtype=dtype).reshape(p.shape)
        if sq is not None:
            opt.set_examplewise(
                {
                    p: torch.as_tensor(np.asarray(s), dtype=dtype).reshape(p.shape)
                    for p, s in zip(params, sq[t])
                },
                batch,
            )
        opt.step()
        xs.append([p.detach().clone() for p in params])
        if track:
            us.append([r.stepsize.clone() for r in opt.last_step()])
    return params, opt, xs, us
