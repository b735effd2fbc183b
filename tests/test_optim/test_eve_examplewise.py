"""Eve fed by gradscope.examplewise on a real model: B = 1 is Adam, B > 1 is the Eve rule."""

from __future__ import annotations

import torch
from torch import nn

import gradscope.optim as O
from gradscope.examplewise import examplewise_moments, set_grads_from_moments, sq_mean_by_param


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _batches(batch, steps=6):
    gen = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(batch, 5, generator=gen, dtype=torch.float64),
            torch.randint(0, 3, (batch,), generator=gen),
        )
        for _ in range(steps)
    ]


def _eve_run(batch):
    model = _model()
    opt = O.Eve(model.parameters(), lr=0.01)
    for x, y in _batches(batch):
        mom = examplewise_moments(model, nn.functional.cross_entropy, x, y)
        set_grads_from_moments(model, mom)
        opt.set_examplewise(sq_mean_by_param(model, mom), mom.batch_size)
        opt.step()
    return model


def test_eve_with_batch_one_equals_adam_on_a_real_model():
    eve = _eve_run(1)
    model = _model()
    adam = torch.optim.Adam(model.parameters(), lr=0.01)
    for x, y in _batches(1):
        adam.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        adam.step()
    for p, q in zip(eve.parameters(), model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_eve_with_a_batch_follows_its_rule_with_brute_force_moments():
    """Per-example gradients by a python loop of autograd feed a hand-written Eve step."""
    eve = _eve_run(8)
    model = _model()
    b1, b2, lr, eps = 0.9, 0.999, 0.01, 1e-8
    m = [torch.zeros_like(p) for p in model.parameters()]
    v = [torch.zeros_like(p) for p in model.parameters()]
    for t, (x, y) in enumerate(_batches(8), start=1):
        per = []
        for i in range(len(x)):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            per.append([p.grad.clone() for p in model.parameters()])
        with torch.no_grad():
            for j, p in enumerate(model.parameters()):
                g = torch.stack([e[j] for e in per])
                m[j] = b1 * m[j] + (1 - b1) * g.mean(0)
                v[j] = b2 * v[j] + (1 - b2) * (g**2).mean(0)
                mh, vh = m[j] / (1 - b1**t), v[j] / (1 - b2**t)
                vh = vh / 8 + (1 - 1 / 8) * mh**2
                p -= lr * mh / (vh.sqrt() + eps)
    for p, q in zip(eve.parameters(), model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
