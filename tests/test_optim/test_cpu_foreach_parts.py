"""The CPU foreach path steps cache-sized parts of a bucket, and agrees with the loop."""

from __future__ import annotations

import pytest
import torch

import gradscope.optim as O
from gradscope.optim import _core


def test_parts_hold_at_most_the_cpu_limit_a_larger_tensor_alone():
    sizes = [300_000, 10, 100_000, 100_000, 70_000]
    params = [torch.empty(n) for n in sizes]
    assert _core.CPU_FOREACH_NUMEL == 262_144
    # 300k alone; 10 + 100k + 100k = 200,010 fits; + 70k would pass 262,144
    assert _core._chunks("foreach", [0, 1, 2, 3, 4], params) == [[0], [1, 2, 3], [4]]
    assert _core.FUSED_CHUNK == 64
    assert _core._chunks("fused", list(range(70)), [torch.empty(1)] * 70) == [
        list(range(64)),
        list(range(64, 70)),
    ]
    assert _core.FUSED_CHUNK_PROJECTION == 16
    assert _core._chunks("fused", list(range(20)), [torch.empty(1)] * 20, 16) == [
        list(range(16)),
        list(range(16, 20)),
    ]


@pytest.mark.parametrize("cls", [O.Adam, O.Aida, O.SETAdam, O.AdamL])
def test_split_foreach_bucket_steps_as_the_per_tensor_loop(cls):
    sizes = [300_000, 10, 100_000, 100_000, 70_000]
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(n, generator=gen) for n in sizes]
    grads = [[torch.randn(n, generator=gen) for n in sizes] for _ in range(3)]
    out = {}
    for foreach in (False, True):
        ps = [x.clone().requires_grad_() for x in init]
        opt = cls(ps, lr=1e-2, foreach=foreach)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        out[foreach] = [p.detach() for p in ps]
    for a, b in zip(out[False], out[True]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("cls", "limit"),
    [(O.Adam, _core.FUSED_CHUNK), (O.LAdam, _core.FUSED_CHUNK), (O.Aida, 16), (O.AidaGrad, 16)],
)
def test_fused_graphs_take_64_tensors_and_the_projection_statistics_16(monkeypatch, cls, limit):
    """The host side of a fused step splits a bucket of 70 tensors into graphs of at most
    64, or 16 for Aida's and AidaGrad's slow-to-compile projections (no compile here: the
    graph call is replaced by one that records its part)."""
    parts: list[int] = []

    def fake_run(plan, frozen, names, scal, ps, *rest):
        parts.append(len(ps))

    monkeypatch.setattr(_core, "_run_fused", fake_run)
    params = [torch.zeros(3, requires_grad=True) for _ in range(70)]
    for p in params:
        p.grad = torch.ones(3)
    cls(params, fused=True).step()
    k = limit
    assert parts == [k] * (70 // k) + ([70 % k] if 70 % k else [])
