"""Every optimizer against the float64 NumPy transcription of the spec, both code paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.oracle.optim_reference import Reference
from tests.registry import CASE_IDS, CASES
from tests.test_optim.conftest import examplewise_sq, grad_sequence, make_params, run_torch


def _run_reference(info, cfg, grads, sq):
    # the oracle sees every hyperparameter, defaults included
    hp = dict(info.cls([torch.zeros(1, requires_grad=True)], **cfg).defaults, **cfg)
    ref = Reference(info.ref, [p.numpy() for p in make_params()], **hp)
    xs, us = [], []
    for t, step in enumerate(grads):
        ref.step(step, sq_mean=None if sq is None else sq[t], batch=4)
        xs.append([x.copy() for x in ref.x])
        us.append([np.asarray(u, dtype=np.float64).copy() for u in ref.last_u])
    return xs, us


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_matches_float64_reference(info, cfg, foreach):
    grads = grad_sequence()
    sq = examplewise_sq(grads) if info.examplewise else None
    _, _, xs, us = run_torch(info.cls, cfg, grads, foreach=foreach, sq=sq)
    rxs, rus = _run_reference(info, cfg, grads, sq)
    for t, (x_t, r_t, u_t, ru_t) in enumerate(zip(xs, rxs, us, rus)):
        for x, r in zip(x_t, r_t):
            np.testing.assert_allclose(
                x.numpy(), r.reshape(x.shape), rtol=info.rtol, atol=1e-14, err_msg=f"step {t + 1}"
            )
        for u, ru in zip(u_t, ru_t):
            # a 0-d reported stepsize means one value for the whole layer
            got = np.broadcast_to(u.numpy(), np.shape(ru)) if u.dim() == 0 else u.numpy()
            np.testing.assert_allclose(
                got,
                np.broadcast_to(ru, got.shape).reshape(got.shape),
                rtol=info.rtol,
                err_msg=f"stepsize, step {t + 1}",
            )


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_foreach_matches_loop_with_missing_grads(info, cfg):
    """The multi-tensor path equals the per-tensor loop, also when some grads are None."""
    grads = grad_sequence(seed=5)
    sq = examplewise_sq(grads) if info.examplewise else None
    results = []
    for foreach in (False, True):
        params = [p.requires_grad_() for p in make_params()]
        opt = info.cls(params, **cfg, foreach=foreach)
        for t, step in enumerate(grads):
            for i, (p, g) in enumerate(zip(params, step)):
                skip = t == 2 and i == 1
                p.grad = None if skip else torch.as_tensor(g).reshape(p.shape)
            if sq is not None:
                opt.set_examplewise(
                    {p: torch.as_tensor(s).reshape(p.shape) for p, s in zip(params, sq[t])}, 4
                )
            opt.step()
        results.append([p.detach().clone() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_untracked_step_equals_tracked(info, cfg):
    """Tracking only observes: the trajectory is bit-identical with it off."""
    grads = grad_sequence(seed=3)
    sq = examplewise_sq(grads) if info.examplewise else None
    _, _, xs_on, _ = run_torch(info.cls, cfg, grads, sq=sq, track=True)
    _, _, xs_off, _ = run_torch(info.cls, cfg, grads, sq=sq, track=False)
    for a_t, b_t in zip(xs_on, xs_off):
        for a, b in zip(a_t, b_t):
            assert torch.equal(a, b)
