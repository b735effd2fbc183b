"""``sqrt_into``: torch.sqrt's bits, by the zero-safe form on zero-heavy CPU tensors.

The zero-safe form is only a speed-up (torch's CPU sqrt is slow on exact zeros); these
tests pin that it returns exactly what ``torch.sqrt`` returns, on the inputs that could
tell them apart: chunk boundaries, ragged ends, views at an offset, in place, float64,
NaN, inf, negatives and subnormals among the zeros.
"""

from __future__ import annotations

import math

import pytest
import torch

from gradscope.optim import _backends as B
from gradscope.optim import introspect


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.view(torch.int64 if x.dtype == torch.float64 else torch.int32)


def _second_moment(n: int, zeros: float, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Squares of Gaussian gradients over 20 decades, a share of them exactly 0."""
    g = torch.Generator().manual_seed(seed)
    v = (
        torch.randn(n, generator=g, dtype=dtype)
        * 10.0 ** torch.empty(n, dtype=dtype).uniform_(-20, 0, generator=g)
    ) ** 2
    v[torch.rand(n, generator=g) < zeros] = 0.0
    return v


SPECIALS = [float("nan"), float("inf"), -1.0, -float("inf"), 1e-40, 5e-324, 1.0, 4.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("zeros", [0.0, 0.02, 0.05, 0.59, 1.0])
@pytest.mark.parametrize("n", [B.SQRT_CHECK_MIN - 1, B.SQRT_CHECK_MIN, 3 * B.SQRT_CHUNK + 17])
def test_same_bits_as_torch_sqrt(dtype: torch.dtype, zeros: float, n: int) -> None:
    v = _second_moment(n, zeros, dtype, seed=n)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(1))[: len(SPECIALS)]
    v[idx] = torch.tensor(SPECIALS, dtype=dtype)
    v[B.SQRT_CHUNK - 1 : B.SQRT_CHUNK + 1] = 0.0  # zeros on both sides of a piece boundary
    want = torch.sqrt(v)
    assert torch.equal(_bits(B.sqrt_into(v)), _bits(want))
    out = torch.full_like(v, 7.0)
    assert B.sqrt_into(v, out) is out and torch.equal(_bits(out), _bits(want))
    w = v.clone()
    B.sqrt_into(w, w)  # in place, as the optimizers' sqrt_ does
    assert torch.equal(_bits(w), _bits(want))


def test_view_at_an_offset_and_non_contiguous() -> None:
    base = _second_moment(5 * B.SQRT_CHUNK, 0.5, torch.float32, seed=3)
    view = base[13 : 13 + 4 * B.SQRT_CHUNK]  # contiguous, storage offset 13
    assert torch.equal(_bits(B.sqrt_into(view)), _bits(torch.sqrt(view)))
    strided = base[::2]  # not contiguous: the plain call
    assert torch.equal(_bits(B.sqrt_into(strided)), _bits(torch.sqrt(strided)))
    m = base[: 4 * B.SQRT_CHUNK].view(256, -1).t()  # transposed
    assert torch.equal(_bits(B.sqrt_into(m)), _bits(torch.sqrt(m)))


def test_zero_safe_form_runs_on_zero_heavy_tensors() -> None:
    """-0 comes out +0 only from the zero-safe form: it shows which form ran."""
    n = 2 * B.SQRT_CHUNK
    stride = n // B.SQRT_SAMPLE
    heavy = torch.full((n,), 2.0)
    heavy[::stride][: B.SQRT_ZEROS] = 0.0  # the sample sees exactly the threshold
    heavy[-1] = -0.0
    assert not torch.signbit(B.sqrt_into(heavy)[-1])  # zero-safe: +0
    assert torch.signbit(torch.sqrt(heavy)[-1])  # torch: -0
    light = torch.full((n,), 2.0)
    light[::stride][: B.SQRT_ZEROS - 1] = 0.0  # one sampled zero fewer: the plain call
    light[-1] = -0.0
    assert torch.signbit(B.sqrt_into(light)[-1])
    small = torch.zeros(B.SQRT_CHECK_MIN - 1)
    small[1] = -0.0
    assert torch.signbit(B.sqrt_into(small)[1])


@pytest.mark.parametrize("reuse", [False, True])
def test_torch_adam_stepsize_bits_with_dead_units(reuse: bool) -> None:
    """The adapter's stepsize is torch's denominator chain, bit for bit, when most of the
    second moment is exactly zero (weight columns of inputs that are always 0)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(512, 512)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    introspect.track(opt, reuse=reuse)
    x = torch.randn(32, 512)
    x[:, 200:] = 0.0
    for _ in range(3):
        opt.zero_grad()
        lin(x).square().mean().backward()
        opt.step()
    v = opt.state[lin.weight]["exp_avg_sq"]
    assert (v == 0).double().mean() > 0.5
    got = {r.param: r for r in introspect.last_step(opt)}[lin.weight].stepsize
    bc2 = 1.0 - 0.999 ** float(opt.state[lin.weight]["step"])
    # torch's own chain: denom = sqrt(v) / bc2**0.5 + eps; the stepsize is 1 / denom
    want = (torch.sqrt(v) / bc2**0.5).add_(1e-8).reciprocal_()
    assert torch.equal(_bits(got), _bits(want))
    assert torch.equal(got[:, 200:], torch.full_like(got[:, 200:], 1.0 / torch.tensor(1e-8).item()))


def test_torch_adam_bias_correction_as_torch_rounds_it() -> None:
    """torch takes sqrt(bc2) as ``bc2 ** 0.5``, which at step 1270 (beta2 = 0.999) is one
    ulp off ``math.sqrt(bc2)``; in float64 the stepsize shows it."""
    assert (1 - 0.999**1270.0) ** 0.5 != math.sqrt(1 - 0.999**1270.0)
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 64).double()
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    introspect.track(opt, reuse=True)
    for t in range(2):
        opt.zero_grad()
        lin(torch.randn(8, 64, dtype=torch.float64)).square().mean().backward()
        if t == 1:
            for p in lin.parameters():
                opt.state[p]["step"].fill_(1269.0)
        opt.step()
    v = opt.state[lin.weight]["exp_avg_sq"]
    got = {r.param: r for r in introspect.last_step(opt)}[lin.weight].stepsize
    want = (torch.sqrt(v) / (1 - 0.999**1270.0) ** 0.5).add_(1e-8).reciprocal_()
    assert torch.equal(got, want)
