"""The step-report API: what it returns equals what the step did, for ours and torch's."""

from __future__ import annotations

import math

import pytest
import torch

import gradscope.optim as O
from gradscope.errors import UnsupportedOptimizerError
from gradscope.optim import introspect
from tests.registry import CASE_IDS, CASES
from tests.test_optim.conftest import grad_sequence, make_params

TORCH_CASES = [
    (torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3)),
    (torch.optim.Adam, dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    (torch.optim.Adam, dict(lr=0.05, maximize=True)),
    (torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1)),
    (torch.optim.SGD, dict(lr=0.1)),
    (torch.optim.SGD, dict(lr=0.1, weight_decay=0.2)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, maximize=True)),
]


def _check(opt, params, grads, examplewise=False):
    introspect.track(opt)
    for step in grads:
        before = [p.detach().clone() for p in params]
        for p, g in zip(params, step):
            p.grad = torch.as_tensor(g).reshape(p.shape)
        if examplewise:
            opt.set_examplewise({p: p.grad**2 * 2 for p in params}, 2)
        opt.step()
        records = introspect.last_step(opt)
        assert [r.param for r in records] == params
        for r, x0 in zip(records, before):
            torch.testing.assert_close(r.update, r.param.detach() - x0, rtol=1e-10, atol=1e-14)
            assert r.stepsize.dim() in (0, r.param.dim())
            assert r.lr == opt.param_groups[r.group]["lr"]
            assert r.grad is r.param.grad
    return records


@pytest.mark.parametrize(("cls", "cfg"), TORCH_CASES)
def test_torch_optimizers_are_read_from_their_state(cls, cfg):
    params = [p.requires_grad_() for p in make_params()]
    records = _check(cls(params, **cfg), params, grad_sequence(steps=5))
    if cls is not torch.optim.SGD:
        b1, b2 = cfg.get("betas", (0.9, 0.999))
        eps = cfg.get("eps", 1e-8)
        for r in records:
            # update = -lr u m_hat (+ decoupled decay): the u part is Adam's definition
            v = r.exp_avg_sq
            if cfg.get("amsgrad"):
                continue
            expected = 1 / (torch.sqrt(v / (1 - b2**5)) + eps)
            torch.testing.assert_close(r.stepsize, expected)
            assert r.exp_avg is not None and math.isclose(b1, b1)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_gradscope_reports_the_update_it_applied(info, cfg):
    params = [p.requires_grad_() for p in make_params()]
    opt = info.cls(params, **cfg)
    records = _check(opt, params, grad_sequence(steps=4), examplewise=info.examplewise)
    for r in records:
        if r.exp_avg is not None and info.ref not in ("sgd", "fromage"):
            # update = -lr u m_hat for every Adam-family rule without decoupled decay
            group = opt.param_groups[0]
            if not (group["weight_decay"] and group["decoupled_weight_decay"]):
                t = 4
                b1 = opt.param_groups[0]["betas"][0]
                expected = -r.lr * r.stepsize * r.exp_avg / (1 - b1**t)
                torch.testing.assert_close(
                    r.update, expected.expand_as(r.update), rtol=1e-10, atol=1e-14
                )


def test_untracked_gradscope_optimizer_says_how_to_fix():
    p = torch.zeros(2, requires_grad=True)
    opt = O.Adam([p])
    p.grad = torch.ones(2)
    opt.step()
    with pytest.raises(introspect.NotTrackedError, match="track"):
        introspect.last_step(opt)


def test_non_optimizer_is_named_in_the_error():
    class NotAnOptimizer:
        param_groups: list = []

    opt = NotAnOptimizer()
    with pytest.raises(UnsupportedOptimizerError, match="NotAnOptimizer"):
        introspect.last_step(opt)
    with pytest.raises(UnsupportedOptimizerError, match="NotAnOptimizer"):
        introspect.track(opt)
    assert not introspect.supports(opt) and introspect.supports(O.Aida([torch.zeros(1)]))
    adagrad = torch.optim.Adagrad([torch.zeros(2, requires_grad=True)])
    assert introspect.supports(adagrad)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD])
def test_torch_parameter_skipped_by_the_step_is_not_reported(cls):
    """torch skips parameters whose grad is None; their state is the previous step's, so
    reporting them would invent an update that was never applied."""
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = cls([a, b], lr=0.1, momentum=0.9) if cls is torch.optim.SGD else cls([a, b], lr=0.1)
    introspect.track(opt)
    for step in range(2):
        a.grad, b.grad = torch.full((3,), 0.5), (torch.full((2,), -1.0) if step == 0 else None)
        opt.step()
    reported = [ps.param for ps in introspect.last_step(opt)]
    assert len(reported) == 1 and reported[0] is a


def test_kept_buffers_of_a_parameter_no_longer_stepped_are_released():
    """track(reuse=True) keeps a copy and a stepsize buffer per stepped parameter; a
    parameter the step skips (grad None: frozen mid-run) gives both back."""
    from gradscope.optim import torch_adapters

    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([a, b], lr=0.1)
    introspect.track(opt, reuse=True)
    snap = torch_adapters._SNAPSHOTS[opt]
    a.grad, b.grad = torch.full((3,), 0.5), torch.full((2,), -1.0)
    opt.step()
    introspect.last_step(opt)
    assert set(snap.kept) == {a, b} and set(snap.kept_u) == {a, b}
    b.grad = None
    opt.step()
    assert [ps.param for ps in introspect.last_step(opt)] == [a]
    assert set(snap.kept) == {a} and set(snap.kept_u) == {a}


REUSE_CASES = [
    *TORCH_CASES,
    (torch.optim.Adagrad, dict(lr=0.1)),
    (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (torch.optim.Adadelta, dict(lr=0.5)),
    (torch.optim.NAdam, dict(lr=0.01)),
    (torch.optim.Rprop, dict(lr=0.01)),  # the generic path
]


@pytest.mark.parametrize(("cls", "cfg"), REUSE_CASES)
def test_kept_buffers_give_the_fresh_reports_and_allocate_nothing_per_step(cls, cfg):
    """track(reuse=True), the recorder's CPU mode: the same numbers bit for bit, the same
    buffers every step, and the update computed once per step however often it is read."""
    fresh_p = [p.requires_grad_() for p in make_params()]
    kept_p = [p.detach().clone().requires_grad_() for p in fresh_p]
    fresh, kept = cls(fresh_p, **cfg), cls(kept_p, **cfg)
    introspect.track(fresh)
    introspect.track(kept, reuse=True)
    ptrs = None
    for step in grad_sequence(steps=4):
        before = [p.detach().clone() for p in kept_p]
        for ps in (fresh_p, kept_p):
            for p, g in zip(ps, step):
                p.grad = torch.as_tensor(g).reshape(p.shape).clone()
        fresh.step()
        kept.step()
        a, b = introspect.last_step(fresh), introspect.last_step(kept)
        again = introspect.last_step(kept)  # read twice: the same reports
        assert len(again) == len(b) and all(r is q for r, q in zip(again, b))
        assert len(a) == len(b) == len(kept_p)
        for ra, rb, x0 in zip(a, b, before):
            assert torch.equal(rb.update, ra.update)
            assert torch.equal(rb.update, rb.param.detach() - x0)
            assert (ra.stepsize is None) == (rb.stepsize is None)
            if ra.stepsize is not None:
                assert torch.equal(rb.stepsize, ra.stepsize)
            assert ra.state.keys() == rb.state.keys()
            for k in ra.state:
                assert torch.equal(ra.state[k], rb.state[k]), k
        now = [t.data_ptr() for r in b for t in (r.update, r.stepsize) if t is not None and t.dim()]
        if ptrs is not None and cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
            assert now == ptrs  # the kept buffers, not new tensors (0-d stepsizes aside)
        ptrs = now
    introspect.track(kept, reuse=False)  # back to fresh tensors: a report outlives its step
    kept.step()
    first = introspect.last_step(kept)[0].update
    kept.step()
    assert first.data_ptr() != introspect.last_step(kept)[0].update.data_ptr()


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_gradscope_kept_update_buffers_change_nothing(info, cfg):
    """track(reuse=True): the per-tensor step writes x_prev and then the update into a kept
    buffer; the trajectory and every report are bit for bit those of fresh copies."""
    fresh_p = [p.requires_grad_() for p in make_params()]
    kept_p = [p.detach().clone().requires_grad_() for p in fresh_p]
    fresh, kept = info.cls(fresh_p, **cfg), info.cls(kept_p, **cfg)
    introspect.track(fresh)
    introspect.track(kept, reuse=True)
    ptrs = None
    for step in grad_sequence(steps=4):
        for ps, opt in ((fresh_p, fresh), (kept_p, kept)):
            for p, g in zip(ps, step):
                p.grad = torch.as_tensor(g).reshape(p.shape).clone()
            if info.examplewise:
                opt.set_examplewise({p: p.grad**2 * 2 for p in ps}, 2)
            opt.step()
        a, b = introspect.last_step(fresh), introspect.last_step(kept)
        assert len(a) == len(b) == len(kept_p)
        for ra, rb in zip(a, b):
            assert torch.equal(ra.param, rb.param)
            assert torch.equal(ra.update, rb.update) and torch.equal(ra.stepsize, rb.stepsize)
        now = [r.update.data_ptr() for r in b]
        if ptrs is not None and not any(
            g.get("fused") or g.get("foreach") for g in kept.param_groups
        ):
            assert now == ptrs  # the per-tensor path wrote into the kept buffers
        ptrs = now
