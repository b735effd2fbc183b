"""First steps derived by hand from the spec's equations (float64, no oracle code).

Each expected value below is written out from the update rule for t = 1 (and t = 2 where
the rule has a new ingredient then), so a wrong placement of eps, a wrong bias
correction or a wrong statistic shows up as a plain number mismatch.
"""

from __future__ import annotations

import math

import pytest
import torch

import gradscope.optim as O

LR, B1, B2, EPS = 0.1, 0.9, 0.99, 1e-3
G1 = torch.tensor([0.5, -2.0, 0.0, 3.0], dtype=torch.float64)
G2 = torch.tensor([1.0, 1.0, -1.0, 0.5], dtype=torch.float64)


def _steps(cls, grads, **cfg):
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = cls([x], **cfg)
    opt.track()
    out = []
    for g in grads:
        x.grad = g.clone()
        opt.step()
        out.append((x.detach().clone(), opt.last_step()[0].stepsize.clone()))
    return out


def test_adam_first_step_is_a_sign_step():
    # m1 = (1-b1) g, v1 = (1-b2) g^2  =>  m_hat = g, v_hat = g^2, u = 1/(|g| + eps)
    ((x1, u1),) = _steps(O.Adam, [G1], lr=LR, betas=(B1, B2), eps=EPS)
    torch.testing.assert_close(u1, 1 / (G1.abs() + EPS))
    torch.testing.assert_close(x1, -LR * G1 / (G1.abs() + EPS))


def test_adam_second_step():
    (_, _), (x2, u2) = _steps(O.Adam, [G1, G2], lr=LR, betas=(B1, B2), eps=EPS)
    m2 = B1 * (1 - B1) * G1 + (1 - B1) * G2
    v2 = B2 * (1 - B2) * G1**2 + (1 - B2) * G2**2
    u = 1 / (torch.sqrt(v2 / (1 - B2**2)) + EPS)
    torch.testing.assert_close(u2, u)
    torch.testing.assert_close(x2, -LR * G1 / (G1.abs() + EPS) - LR * u * m2 / (1 - B1**2))


def test_adabelief_first_step_has_eps_twice():
    # s1 = (1-b2)(g - (1-b1) g)^2 + eps = (1-b2) b1^2 g^2 + eps
    # s_hat = b1^2 g^2 + eps/(1-b2);  u = 1/(sqrt(s_hat) + eps)
    ((x1, u1),) = _steps(O.AdaBelief, [G1], lr=LR, betas=(B1, B2), eps=EPS)
    u = 1 / (torch.sqrt(B1**2 * G1**2 + EPS / (1 - B2)) + EPS)
    torch.testing.assert_close(u1, u)
    torch.testing.assert_close(x1, -LR * u * G1)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_aida_first_step_equals_adabelief_without_outer_eps(k):
    # at t = 1, m = (1-b1) g is parallel to g: projections leave the pair's difference
    # at -b1 g (up to xi), so s_hat = b1^2 g^2 + eps/(1-b2) and u = 1/sqrt(s_hat).
    ((x1, u1),) = _steps(O.Aida, [G1], lr=LR, betas=(B1, B2), eps=EPS, k=k, xi=0.0)
    u = 1 / torch.sqrt(B1**2 * G1**2 + EPS / (1 - B2))
    torch.testing.assert_close(u1, u)
    torch.testing.assert_close(x1, -LR * u * G1)


def test_aida_second_step_by_explicit_projection():
    # t = 2 with K = 1: m2 and g2 are not parallel, so the projection matters.
    (_, _), (x2, u2) = _steps(O.Aida, [G1, G2], lr=LR, betas=(B1, B2), eps=EPS, k=1, xi=0.0)
    m1 = (1 - B1) * G1
    m2 = B1 * m1 + (1 - B1) * G2
    dot = float(m2 @ G2)
    r = dot / float(G2 @ G2) * G2 - dot / float(m2 @ m2) * m2  # m^(1) - g^(1)
    v1 = (1 - B2) * (B1 * G1) ** 2 + EPS
    v2 = B2 * v1 + (1 - B2) * r**2 + EPS
    u = 1 / torch.sqrt(v2 / (1 - B2**2))
    torch.testing.assert_close(u2, u)


def test_ladam_first_step_uses_the_layer_mean():
    # v1 = (1-b2) mean(g^2) + eps; u = 1/sqrt(mean(g^2) + eps/(1-b2)), one value per layer
    ((x1, u1),) = _steps(O.LAdam, [G1], lr=LR, betas=(B1, B2), eps=EPS)
    u = 1 / math.sqrt(float((G1**2).mean()) + EPS / (1 - B2))
    assert u1.dim() == 0
    assert math.isclose(float(u1), u, rel_tol=1e-14)
    torch.testing.assert_close(x1, -LR * u * G1)


def test_adaml_first_step_averages_the_stepsizes():
    ((x1, u1),) = _steps(O.AdamL, [G1], lr=LR, betas=(B1, B2), eps=EPS)
    u = float((1 / torch.sqrt(G1**2 + EPS / (1 - B2))).mean())
    assert math.isclose(float(u1), u, rel_tol=1e-14)
    torch.testing.assert_close(x1, -LR * u * G1)


def test_setadam_first_step():
    # v1 = (1-b2) g^2 -> v_hat = g^2; cos^2 = (sum g^2)^2 / (4 sum g^4)
    ((x1, u1),) = _steps(O.SETAdam, [G1], lr=LR, betas=(B1, B2), eps=EPS, tau=0.5)
    g2 = G1**2
    cos2 = float(g2.sum()) ** 2 / (4 * float((g2**2).sum()))
    w = torch.sqrt(cos2 * g2 + EPS)
    wt = w - 0.5 * w.min()
    torch.testing.assert_close(u1, 1 / wt)
    torch.testing.assert_close(x1, -LR * G1 / wt)


def test_eve_first_step_with_batch_two():
    # per-example grads g +- d: mean g, sq_mean g^2 + d^2. v_hat = (g^2 + d^2)/2 + g^2/2.
    d = torch.tensor([1.0, 0.5, 2.0, 0.0], dtype=torch.float64)
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = O.Eve([x], lr=LR, betas=(B1, B2), eps=EPS)
    x.grad = G1.clone()
    opt.set_examplewise({x: G1**2 + d**2}, batch_size=2)
    opt.step()
    vhat = (G1**2 + d**2) / 2 + G1**2 / 2
    torch.testing.assert_close(x.detach(), -LR * G1 / (torch.sqrt(vhat) + EPS))


def test_sgd_momentum_three_steps():
    out = _steps(O.SGD, [G1, G2, G1], lr=LR, momentum=0.5, dampening=0.2)
    b1 = G1
    b2 = 0.5 * b1 + 0.8 * G2
    b3 = 0.5 * b2 + 0.8 * G1
    torch.testing.assert_close(out[2][0], -LR * (b1 + b2 + b3))
    assert float(out[2][1]) == 1.0


def test_yogi_first_step():
    # m0 = v0 = 1e-6; v1 = v0 - (1-b2) sign(v0 - g^2) g^2
    ((x1, _),) = _steps(O.Yogi, [G1], lr=LR, betas=(B1, B2), eps=EPS)
    g2 = G1**2
    v1 = 1e-6 - (1 - B2) * torch.sign(1e-6 - g2) * g2
    m1 = B1 * 1e-6 + (1 - B1) * G1
    expected = -LR / (1 - B1) * m1 / (torch.sqrt(v1 / (1 - B2)) + EPS)
    torch.testing.assert_close(x1, expected)


def test_radam_is_momentum_sgd_until_rho_exceeds_five():
    out = _steps(O.RAdam, [G1] * 6, lr=LR, betas=(B1, 0.999), eps=EPS)
    # t = 1..5: rho_t <= 5, u = 1 and m_hat = g for constant g: x_t = -t lr g
    for t in range(5):
        torch.testing.assert_close(out[t][0], -(t + 1) * LR * G1)
    assert float(out[4][1].max()) == 1.0
    assert out[5][1].dim() == 1  # rectified, elementwise from t = 6 on


def test_fromage_step():
    x = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = O.Fromage([x], lr=0.1)
    x.grad = torch.tensor([0.0, 2.0], dtype=torch.float64)
    opt.step()
    # |x| = 5, |g| = 2: x <- (x - 0.1 * g * 5/2) / sqrt(1.01)
    expected = torch.tensor([3.0, 3.5], dtype=torch.float64) / math.sqrt(1.01)
    torch.testing.assert_close(x.detach(), expected)


def test_msvag_first_step_is_sgd_and_then_variance_adapted():
    out = _steps(O.MSVAG, [G1, G2], lr=LR, beta=0.5)
    torch.testing.assert_close(out[0][0], -LR * G1, rtol=1e-8, atol=1e-12)
    b = 0.5
    m = ((1 - b) * b * G1 + (1 - b) * G2) / (1 - b**2)
    v = ((1 - b) * b * G1**2 + (1 - b) * G2**2) / (1 - b**2)
    rho = (1 - b) * (1 + b**2) / ((1 + b) * (1 - b**2))
    s = (v - m**2) / (1 - rho)
    gamma = (m**2 / (m**2 + rho * s)).nan_to_num(0.0).clamp(0, 1)
    torch.testing.assert_close(out[1][1], gamma)
