"""Generic battery over every law in ``_params.DISTCONT`` (scipy's test_continuous_basic)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import integrate, stats

from gradscope.theory import _params, distributions


def _window(dist, args):
    """Integration range: the support, clipped to mean +- 40 sd (narrow laws at huge t)."""
    lo, hi = dist.support(*args)
    m, v = dist.stats(*args, moments="mv")
    return max(lo, m - 40 * np.sqrt(v)), min(hi, m + 40 * np.sqrt(v))


def _expect(dist, args, slow, g=lambda x: 1.0, upper=None):
    """``int g f`` over the support (or up to ``upper``).

    Slow laws (one quadrature per pdf call) use one vectorised Gauss-Legendre rule in
    ``theta`` with ``x = B sin(theta)``, where the integrand is smooth; others use ``quad``.
    """
    if not slow:
        lo, hi = _window(dist, args)
        return integrate.quad(
            lambda x: g(x) * dist.pdf(x, *args), lo, hi if upper is None else upper, limit=200
        )[0]
    bound = dist.support(*args)[1]
    top = np.pi / 2 if upper is None else np.arcsin(upper / bound)
    nodes, weights = np.polynomial.legendre.leggauss(120)
    theta = -np.pi / 2 + (nodes + 1) * (top + np.pi / 2) / 2
    x = bound * np.sin(theta)
    vals = g(x) * dist.pdf(x, *args) * bound * np.cos(theta)
    return float(np.sum(weights * vals) * (top + np.pi / 2) / 2)


CASES = [
    pytest.param(getattr(distributions, name), args, name in _params.SLOW, id=f"{name}{args}")
    for name, args in _params.DISTCONT
]


@pytest.mark.parametrize(("dist", "args", "slow"), CASES)
def test_normalization_and_cdf(dist, args, slow):
    assert _expect(dist, args, slow) == pytest.approx(1, abs=1e-7)
    lo, hi = dist.support(*args)
    x = np.linspace(lo, hi, 9 if slow else 101)
    c = dist.cdf(x, *args)
    assert np.all(np.diff(c) >= -1e-14)
    assert np.all((c >= 0) & (c <= 1))
    assert c[0] == pytest.approx(0, abs=1e-12)
    assert c[-1] == pytest.approx(1, abs=1e-12)
    # the pdf integrates to the cdf
    mid = x[len(x) // 2]
    assert _expect(dist, args, slow, upper=mid) == pytest.approx(dist.cdf(mid, *args), abs=1e-7)


@pytest.mark.parametrize(("dist", "args", "slow"), CASES)
def test_ppf_sf_isf_logpdf(dist, args, slow):
    q = np.array([0.001, 0.1, 0.5, 0.77, 0.999]) if not slow else np.array([0.1, 0.5])
    x = dist.ppf(q, *args)
    np.testing.assert_allclose(dist.cdf(x, *args), q, atol=1e-10)
    np.testing.assert_allclose(dist.isf(q, *args), dist.ppf(1 - q, *args), atol=1e-8)
    np.testing.assert_allclose(dist.sf(x, *args), 1 - q, atol=1e-10)
    np.testing.assert_allclose(dist.logpdf(x, *args), np.log(dist.pdf(x, *args)), rtol=1e-10)


@pytest.mark.parametrize(("dist", "args", "slow"), CASES)
def test_moments_against_numerical_expectation(dist, args, slow):
    m, v = dist.stats(*args, moments="mv")
    e1 = _expect(dist, args, slow, lambda x: x)
    e2 = _expect(dist, args, slow, lambda x: x * x)
    assert m == pytest.approx(e1, abs=1e-7)
    assert v == pytest.approx(e2 - e1**2, rel=1e-6)


@pytest.mark.parametrize(("dist", "args", "slow"), CASES)
def test_rvs_ks_freeze_pickle(dist, args, slow):
    rng = np.random.default_rng(12345)
    sample = dist.rvs(*args, size=500 if slow else 20000, random_state=rng)
    assert stats.kstest(sample, dist(*args).cdf).pvalue > 1e-3
    frozen = dist(*args)
    again = pickle.loads(pickle.dumps(frozen))
    x = np.array([-0.2, 0.0, 0.3]) * frozen.support()[1]
    np.testing.assert_allclose(again.cdf(x), frozen.cdf(x), rtol=1e-12)
    np.testing.assert_allclose(frozen.pdf(x), dist.pdf(x, *args), rtol=1e-12)


def test_bad_shapes_give_nan():
    assert np.isnan(distributions.adam_update.cdf(0.2, 1))
    assert np.isnan(distributions.adam_update.cdf(0.2, 2.5))
    assert np.isnan(distributions.ema_update.cdf(0.2, 5, 1.0))
    assert np.isnan(distributions.ema_update_approx.cdf(0.2, 5, 0.0))
    assert np.isnan(distributions.cosine_null.pdf(0.2, 1.0))


@pytest.mark.parametrize(
    ("dist", "args"),
    [
        (distributions.adam_update, (2,)),
        (distributions.adam_update, (10,)),
        (distributions.adam_update_scaled, (7,)),
        (distributions.adam_update, (10**7,)),
        (distributions.ema_update, (30, 0.9)),
        (distributions.cosine_null, (3.5,)),
    ],
)
def test_fast_path_equals_generic_path(dist, args):
    """Large arrays take a direct path (and a Hermite interpolant for the CDF): same answers."""
    rng = np.random.default_rng(7)
    lo, hi = dist.support(*args)
    x = np.concatenate(
        [
            dist.rvs(*args, size=60_000, random_state=rng),
            rng.uniform(lo * 1.1, hi * 1.1, 10_000),
            [lo, hi, 0.0, np.nan, -np.inf],
        ]
    )
    small = np.array_split(x, 20)  # below the fast-path size: scipy's generic path
    for method in ("pdf", "logpdf", "cdf", "sf"):
        fast = getattr(dist, method)(x, *args)
        slow = np.concatenate([getattr(dist, method)(part, *args) for part in small])
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-13, err_msg=method)
        frozen = getattr(dist(*args), method)(x)
        np.testing.assert_array_equal(frozen, fast)
