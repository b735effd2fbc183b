"""The fused backend (torch.compile of the one pipeline, real inductor) against the oracle.

Compiling is the cost here (seconds per graph on a busy machine), so the default run
covers every statistic and every stepsize piece once, on the four small tensors of the
shared fixture (a 0-d parameter last, all in one bucket), and reuses compiled graphs
across tests (the cache is keyed by plan and layout, not by optimizer instance). The
whole registry runs under the ``slow`` mark.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

import gradscope.optim as O
from gradscope.optim import _backends as B
from tests.registry import CASE_IDS, CASES, OPTIMS
from tests.test_optim.conftest import examplewise_sq, grad_sequence, make_params, run_torch
from tests.test_optim.test_reference import _run_reference

ADAPTIVE = [(i, c) for i, c in CASES if issubclass(i.cls, O.AdaptiveOptimizer)]
ADAPTIVE_IDS = [n for (i, _), n in zip(CASES, CASE_IDS) if issubclass(i.cls, O.AdaptiveOptimizer)]
_BY_NAME = {info.name: info for info in OPTIMS}

# one case per piece: every statistic (g^2, belief, Aida's K projections, AidaGrad's
# projection, Eve's examplewise mean), Yogi's rule, both reductions, every stepsize piece
# (adam, rectified incl. its SGD phase, SET, Eve, M-SVAG, layer mean), AMSGrad, both decays
QUICK = [
    ("Adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, amsgrad=True, weight_decay=0.1)),
    ("AdaBelief", dict(lr=0.05, betas=(0.9, 0.999), eps=1e-3, rectify=True, maximize=True)),
    ("Aida", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, k=2, weight_decay=0.1)),
    ("AdamL", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3)),
    ("LAida", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, k=1)),
    ("AidaGrad", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3)),
    ("Eve", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)),
    ("SETAdam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, tau=0.9)),
    ("Yogi", dict(lr=0.05, betas=(0.8, 0.95))),
    ("MSVAG", dict(lr=0.1, beta=0.5, weight_decay=0.1)),
]


def _against_oracle_and_loop(info, cfg) -> None:
    grads = grad_sequence()
    sq = examplewise_sq(grads) if info.examplewise else None
    _, _, xs, us = run_torch(info.cls, dict(cfg, fused=True), grads, sq=sq)
    _, _, lxs, lus = run_torch(info.cls, cfg, grads, sq=sq)
    rxs, rus = _run_reference(info, cfg, grads, sq)
    for t in range(len(grads)):
        for x, lx, r in zip(xs[t], lxs[t], rxs[t]):
            np.testing.assert_allclose(
                x.numpy(), r.reshape(x.shape), rtol=info.rtol, atol=1e-14, err_msg=f"step {t + 1}"
            )
            torch.testing.assert_close(x, lx, rtol=info.rtol, atol=1e-14)
        for u, lu, ru in zip(us[t], lus[t], rus[t]):
            assert u.shape == lu.shape  # 0-d where the eager path reports one value per layer
            got = np.broadcast_to(u.numpy(), np.shape(ru)) if u.dim() == 0 else u.numpy()
            np.testing.assert_allclose(
                got,
                np.broadcast_to(ru, got.shape).reshape(got.shape),
                rtol=info.rtol,
                err_msg=f"stepsize, step {t + 1}",
            )


@pytest.mark.parametrize(("name", "cfg"), QUICK, ids=[n for n, _ in QUICK])
def test_fused_matches_float64_reference_and_loop(name, cfg):
    _against_oracle_and_loop(_BY_NAME[name], cfg)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GRADSCOPE_TEST_FUSED_ALL"),
    reason="compiles ~40 graphs (5 min on 2 busy cores): set GRADSCOPE_TEST_FUSED_ALL=1",
)
@pytest.mark.parametrize(("info", "cfg"), ADAPTIVE, ids=ADAPTIVE_IDS)
def test_fused_matches_reference_every_registry_case(info, cfg):
    _against_oracle_and_loop(info, cfg)


def test_fused_untracked_equals_tracked_and_never_recompiles():
    """Tracking only observes; steps 2.. reuse the graph (lr, betas and t are inputs)."""
    cfg = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, amsgrad=True, weight_decay=0.1)
    grads = grad_sequence(seed=3)
    _, _, on, _ = run_torch(O.Adam, dict(cfg, fused=True), grads, track=True)
    before = B.compiled_count()
    params = [p.requires_grad_() for p in make_params()]
    opt = O.Adam(params, **cfg, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)  # lr written every step
    for t, step in enumerate(grads):
        for p, g in zip(params, step):
            p.grad = torch.as_tensor(g).reshape(p.shape)
        with torch._dynamo.config.patch(error_on_recompile=t > 0):
            opt.step()
        sched.step()
        for a, b in zip(on[t], params):
            assert torch.equal(a, b)
    assert B.compiled_count() - before <= 1  # the untracked graph, once


def test_fused_schedules_that_change_every_step_never_recompile():
    """lr, betas and weight decay moved every step (and t growing) are graph inputs: after
    the first step, no frame is compiled again, and every step equals the per-tensor one."""
    from torch._dynamo.utils import counters

    cfg = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, k=2, weight_decay=0.1)
    grads = grad_sequence(seed=4)
    runs = {}
    for fused in (False, True):
        params = [p.requires_grad_() for p in make_params()]
        opt = O.Aida(params, **cfg, fused=fused)
        xs = []
        for t, step in enumerate(grads):
            for p, g in zip(params, step):
                p.grad = torch.as_tensor(g).reshape(p.shape)
            for group in opt.param_groups:
                group["lr"] = 0.05 * 0.7**t
                group["betas"] = (0.8 + 0.01 * t, 0.95 - 0.01 * t)
                group["weight_decay"] = 0.1 / (1 + t)
            if t == 1:
                frames = counters["frames"]["ok"]
            opt.step()
            xs.append([p.detach().clone() for p in params])
        if fused:
            assert counters["frames"]["ok"] == frames  # steps 2..8 compiled nothing
        runs[fused] = xs
    for a, b in zip(runs[False], runs[True]):
        for x, y in zip(a, b):
            torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-14)


def test_fused_state_dict_round_trips_with_the_eager_paths():
    """A checkpoint written by one backend continues on another to float rounding."""
    cfg = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, amsgrad=True, weight_decay=0.1)
    grads = grad_sequence(steps=6)
    params = [p.requires_grad_() for p in make_params()]
    opt = O.Adam(params, **cfg)

    def run(ps, o, steps):
        for step in steps:
            for p, g in zip(ps, step):
                p.grad = torch.as_tensor(g).reshape(p.shape)
            o.step()

    run(params, opt, grads[:3])
    saved = copy.deepcopy(opt.state_dict())
    ends = []
    for first, then in ((False, True), (True, False)):
        ps = [p.detach().clone().requires_grad_() for p in params]
        o = O.Adam(ps, **cfg, fused=first)
        o.load_state_dict(copy.deepcopy(saved))  # torch loads state tensors without a copy
        for g in o.param_groups:
            g["fused"] = then
        run(ps, o, grads[3:])
        ends.append(ps)
    ref = [p.detach().clone().requires_grad_() for p in params]
    o = O.Adam(ref, **cfg)
    o.load_state_dict(copy.deepcopy(saved))
    run(ref, o, grads[3:])
    for end in ends:
        for a, b in zip(end, ref):
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, marks=pytest.mark.slow), torch.bfloat16]
)
def test_fused_low_precision_follows_the_eager_path(dtype):
    """bfloat16/float32 parameters: state in their dtype, steps close to the eager ones."""
    cfg = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, k=2, weight_decay=0.1)
    grads = grad_sequence(steps=4)
    out = {}
    for fused in (False, True):
        params = [p.requires_grad_() for p in make_params(dtype)]
        opt = O.Aida(params, **cfg, fused=fused)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = torch.as_tensor(g).reshape(p.shape).to(dtype)
            opt.step()
        assert all(opt.state[p]["exp_avg"].dtype == dtype for p in params)
        out[fused] = [p.detach().double() for p in params]
    # the fused kernels keep bfloat16 intermediates in float32: at most one rounding apart
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for a, b in zip(out[False], out[True]):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_fused_skips_none_grads_and_steps_mixed_shapes_in_one_bucket():
    """A parameter without grad keeps its state; the rest (many shapes) step as one bucket,
    and after the skip the buckets split by step count."""
    cfg = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, amsgrad=True, weight_decay=0.1)
    grads = grad_sequence(seed=5)
    skip = len(grads) - 2
    results = []
    for fused in (False, True):
        params = [p.requires_grad_() for p in make_params()]
        opt = O.Adam(params, **cfg, fused=fused)
        for t, step in enumerate(grads):
            for i, (p, g) in enumerate(zip(params, step)):
                p.grad = None if (t == skip and i == 1) else torch.as_tensor(g).reshape(p.shape)
            opt.step()
        assert [int(opt.state[p]["step"]) for p in params] == [8, 7, 8, 8]
        results.append([p.detach().clone() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_fused_bucket_in_parts_equals_the_per_tensor_path_and_counts_steps(monkeypatch):
    """A bucket larger than FUSED_CHUNK runs as several graphs (here two of two tensors):
    every step equals the per-tensor one, each graph bumps its own step counters (no
    host bump), and after the first step nothing is compiled again."""
    from torch._dynamo.utils import counters

    from gradscope.optim import _core as C

    monkeypatch.setattr(C, "FUSED_CHUNK", 2)
    cfg = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)
    grads = grad_sequence(seed=6)
    monkeypatch.setattr(B, "bump_steps", lambda steps: pytest.fail("host bump on CPU"))
    results = []
    for fused in (False, True):
        params = [p.requires_grad_() for p in make_params()]
        opt = O.Adam(params, **cfg, fused=fused)
        for t, step in enumerate(grads):
            for p, g in zip(params, step):
                p.grad = torch.as_tensor(g).reshape(p.shape)
            if t == 1:
                frames = counters["frames"]["ok"]
            opt.step()
            assert [int(opt.state[p]["step"]) for p in params] == [t + 1] * 4
        if fused:
            assert counters["frames"]["ok"] == frames
        results.append([p.detach().clone() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-13, atol=1e-15)


def test_fused_without_a_cpp_compiler_says_what_to_do(monkeypatch):
    from torch._inductor import cpp_builder, exc

    def missing() -> str:
        raise exc.InvalidCxxCompiler()

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", missing)
    monkeypatch.setattr(B, "_CHECKED_CPU_COMPILER", [])
    p = torch.zeros(3, requires_grad=True)
    opt = O.Adam([p], fused=True)
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match=r"needs a C\+\+ compiler.*fused=False"):
        opt.step()
    assert len(opt.state[p]) == 0 and torch.equal(p, torch.zeros(3))  # nothing happened


def test_fused_and_foreach_together_are_rejected():
    with pytest.raises(ValueError, match="fused=True and foreach=True"):
        O.Aida([torch.zeros(2, requires_grad=True)], fused=True, foreach=True)


@pytest.mark.parametrize("cls", [O.SGD, O.Fromage])
def test_optimizers_outside_the_family_refuse_fused(cls):
    with pytest.raises(ValueError, match="no fused backend"):
        cls([torch.zeros(2, requires_grad=True)], fused=True)


@pytest.mark.parametrize("name", ["SETAdam", "Adam"])
def test_fused_square_roots_of_large_mostly_zero_layers_trace_and_match(name):
    """A layer of at least ``SQRT_CHECK_MIN`` coordinates whose second moment is mostly
    exact zeros is where the eager square root counts zeros (data-dependent control flow);
    the fused graph must take its own root instead, and step as the per-tensor path does.
    SET-Adam takes its root through ``sqrt_``, Adam through ``sqrt_add``."""
    n = B.SQRT_CHECK_MIN + 4096
    gen = torch.Generator().manual_seed(11)
    grads = []
    for _ in range(4):
        g = torch.randn(n, generator=gen)
        g[: n * 7 // 8] = 0.0  # dead units: v stays exactly 0 there
        grads.append(g)
    results = []
    for fused in (False, True):
        x = torch.nn.Parameter(torch.linspace(-1.0, 1.0, n))
        opt = getattr(O, name)([x], lr=0.01, fused=fused)
        for g in grads:
            x.grad = g.clone()
            opt.step()
        assert int((opt.state[x]["exp_avg_sq"] == 0).sum()) >= n * 7 // 8
        results.append(x.detach().clone())
    torch.testing.assert_close(results[1], results[0])


@pytest.mark.parametrize("name", ["AdamL", "Aida", "SETAdam"])
def test_fused_layer_sums_of_large_float32_layers_are_accurate(name):
    """A layer of over a million float32 coordinates, most of them without gradient (as
    in a ResNet-18's last blocks): the fused step's layer sums must be as accurate as the
    per-tensor path's, against the float64 run. Accumulated in float32 by inductor's
    generated loops, AdamL's layer stepsize was off by 3-7e-5 relative from the second
    step on (the per-tensor path: 1e-7)."""
    from gradscope.optim import introspect

    n = 1 << 21
    gen = torch.Generator().manual_seed(12)
    grads = []
    for _ in range(3):
        g = torch.randn(n, generator=gen, dtype=torch.float64) * 1e-2
        g[torch.rand(n, generator=gen) < 0.62] = 0.0
        grads.append(g)
    x0 = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)

    def run(dtype, **kw):
        x = torch.nn.Parameter(x0.to(dtype).clone())
        opt = getattr(O, name)([x], lr=1e-3, **kw)
        introspect.track(opt)
        us = []
        for g in grads:
            x.grad = g.to(dtype)
            opt.step()
            us.append(introspect.last_step(opt)[0].stepsize.double())
        return us, x.detach().double()

    ref_u, ref_x = run(torch.float64)
    loop_u, loop_x = run(torch.float32)
    fused_u, fused_x = run(torch.float32, fused=True)
    for t, (r, lu, fu) in enumerate(zip(ref_u, loop_u, fused_u)):
        loop_err = float(((lu - r).abs() / r.abs()).max())
        fused_err = float(((fu - r).abs() / r.abs()).max())
        assert fused_err <= max(4 * loop_err, 1e-6), (t, fused_err, loop_err)
    # the parameters as close to the float64 run as the per-tensor path's, to an ulp of |x| <= 1
    loop_xerr = float((loop_x - ref_x).abs().max())
    assert float((fused_x - ref_x).abs().max()) <= 4 * loop_xerr + 2**-23
