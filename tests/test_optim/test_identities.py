"""Identities from the papers that pin the family together (optax's test_rms_match_adam)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import gradscope.optim as O
from gradscope.optim._functional import aida_coefficients
from tests.oracle.optim_reference import Reference, aida_projected_residual
from tests.test_optim.conftest import grad_sequence

CFG = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3)
SCALARS = [(1,), (1,), ()]  # one-element layers


def _trajectory(cls, shapes, grads, **cfg):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]
    opt = cls(params, **cfg)
    out = []
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.as_tensor(np.asarray(g)).reshape(p.shape)
        opt.step()
        out.append(torch.cat([p.detach().reshape(-1).clone() for p in params]))
    return torch.stack(out)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_aida_on_one_element_layers_is_its_k0_form(k):
    """d = 1: projections are void, so Aida(K) = the AdaBelief statistic with Aida's eps."""
    grads = grad_sequence(shapes=SCALARS)
    got = _trajectory(O.Aida, SCALARS, grads, k=k, xi=0.0, **CFG)
    ref = Reference("aida", [np.zeros(s) for s in SCALARS], k=0, xi=0.0, **CFG)
    gen = torch.Generator().manual_seed(0)
    ref.x = [torch.randn(s, generator=gen, dtype=torch.float64).numpy() for s in SCALARS]
    for t, step in enumerate(grads):
        ref.step(step)
        np.testing.assert_allclose(
            got[t].numpy(), np.concatenate([x.ravel() for x in ref.x]), rtol=1e-13
        )


@pytest.mark.parametrize(
    ("layerwise", "elementwise"),
    [
        (O.LAida, O.LAdaBelief),
        (O.AdamL, O.LAdam),
        (O.AdaBeliefL, O.LAdaBelief),
        (O.AidaGrad, O.LAdam),
    ],
)
def test_one_element_layers_collapse_layerwise_variants(layerwise, elementwise):
    grads = grad_sequence(shapes=SCALARS)
    extra = {"xi": 0.0} if layerwise in (O.LAida, O.AidaGrad) else {}
    a = _trajectory(layerwise, SCALARS, grads, **CFG, **extra)
    b = _trajectory(elementwise, SCALARS, grads, **CFG)
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_ladam_equals_adam_with_its_eps_placement_on_equal_magnitudes():
    """|g_i| equal within the layer at every step => LAdam's layer mean = Adam's elements."""
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (7,)]
    grads = [
        [rng.choice([-1.0, 1.0], size=s) * rng.uniform(0.1, 3) for s in shapes] for _ in range(8)
    ]
    a = _trajectory(O.LAdam, shapes, grads, **CFG)
    b = _trajectory(O.AdamL, shapes, grads, **CFG)  # elementwise v, eps in state, no outer eps
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_eve_with_batch_one_equals_torch_adam():
    shapes = [(3, 4), (5,)]
    grads = grad_sequence(shapes=shapes)
    gen = torch.Generator().manual_seed(0)
    x = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]
    y = [p.detach().clone().requires_grad_() for p in x]
    eve = O.Eve(x, **CFG, weight_decay=0.1)
    adam = torch.optim.AdamW(y, **CFG, weight_decay=0.1)
    for step in grads:
        for p, q, g in zip(x, y, step):
            p.grad = torch.as_tensor(g).reshape(p.shape)
            q.grad = p.grad.clone()
        eve.set_examplewise({p: p.grad**2 for p in x}, batch_size=1)
        eve.step()
        adam.step()
        for p, q in zip(x, y):
            torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)


def test_adamw_with_zero_decay_is_adam():
    shapes = [(3, 4), (5,), ()]
    grads = grad_sequence(shapes=shapes)
    a = _trajectory(O.AdamW, shapes, grads, weight_decay=0.0, **CFG)
    b = _trajectory(O.Adam, shapes, grads, **CFG)
    assert torch.equal(a, b)


def test_setadam_tau_rescales_like_the_learning_rate_on_scalars():
    """d = 1: cos^2 = 1 and w~ = (1 - tau) w, so SET(tau, lr) = SET(0, lr / (1 - tau))."""
    grads = grad_sequence(shapes=SCALARS)
    cfg = dict(betas=(0.8, 0.95), eps=1e-3)
    a = _trajectory(O.SETAdam, SCALARS, grads, lr=0.05, tau=0.5, **cfg)
    b = _trajectory(O.SETAdam, SCALARS, grads, lr=0.1, tau=0.0, **cfg)
    torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)


def test_setadam_suppresses_the_stepsize_range():
    """Within a layer, max/min of SET-Adam's stepsizes is below Adam's on the same grads."""
    rng = np.random.default_rng(4)
    shape = (64, 32)
    x1 = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    x2 = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    set_adam, adam = O.SETAdam([x1], eps=1e-8), O.Adam([x2], eps=1e-8)
    set_adam.track()
    adam.track()
    scales = rng.lognormal(sigma=2.0, size=shape)  # heterogeneous coordinates
    for _ in range(20):
        g = torch.as_tensor(rng.normal(size=shape) * scales)
        x1.grad, x2.grad = g.clone(), g.clone()
        set_adam.step()
        adam.step()
        us, ua = set_adam.last_step()[0].stepsize, adam.last_step()[0].stepsize
        assert float(us.max() / us.min()) < float(ua.max() / ua.min())


finite = arrays(np.float64, 6, elements=st.floats(-1e3, 1e3, allow_nan=False))


@given(m=finite, g=finite, k=st.integers(1, 6))
@settings(max_examples=200, deadline=None)
def test_projections_shrink_and_recurrence_is_exact(m, g, k):
    """Projected vectors never grow; |m^(k) - g^(k)| is non-increasing in k; the scalar
    recurrence gives the literal projections' residual."""
    xi = 1e-20
    norms, res = [np.linalg.norm(m), np.linalg.norm(g)], [np.linalg.norm(m - g)]
    mk, gk = m.copy(), g.copy()
    for _ in range(k):
        dot = mk @ gk
        mk, gk = dot / (gk @ gk + xi) * gk, dot / (mk @ mk + xi) * mk
        assert np.linalg.norm(mk) <= norms[0] * (1 + 1e-12) + 1e-300
        assert np.linalg.norm(gk) <= norms[1] * (1 + 1e-12) + 1e-300
        norms = [np.linalg.norm(mk), np.linalg.norm(gk)]
        res.append(np.linalg.norm(mk - gk))
    assert all(b <= a * (1 + 1e-9) + 1e-9 for a, b in zip(res, res[1:]))
    a, b = aida_coefficients(
        *(torch.tensor(v, dtype=torch.float64) for v in (m @ m, g @ g, m @ g)), k, xi
    )
    r = a.item() * m - b.item() * g if k % 2 == 0 else a.item() * g - b.item() * m
    np.testing.assert_allclose(
        r, aida_projected_residual(m, g, k, xi), atol=1e-9 * (1 + np.abs(m).max() + np.abs(g).max())
    )
