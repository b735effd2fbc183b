"""Exact cosine randomness tests: null law, p-values, thresholds, n_eff, combining."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import gradscope.theory as th


def test_sqrt_log_threshold_fpr_table():
    n = np.array([10, 100, 1000, 1e4, 1e6, 1e8])
    np.testing.assert_allclose(
        th.sqrt_log_threshold(n), [0.4799, 0.2146, 0.0831, 0.0304, 0.00372, 0.00043], atol=6e-5
    )
    fpr = th.sqrt_log_threshold_fpr(n)
    np.testing.assert_allclose(fpr[:3], [0.1353, 0.03116, 0.00852], rtol=6e-4)
    np.testing.assert_allclose(fpr[3:], [2.40e-3, 2.02e-4, 1.77e-5], rtol=5e-3)
    assert np.all(fpr > 1 / n)
    np.testing.assert_allclose(th.sqrt_log_threshold_fpr(n, two_sided=False), fpr / 2)
    # the asymptotic 2 Phi_bar(sqrt(log 1/eps)) within 0.2% at n = 1e4
    assert fpr[3] == pytest.approx(2 * stats.norm.sf(np.sqrt(np.log(1e4))), rel=2e-3)


def test_valid_threshold_and_critical_value():
    n = np.array([10, 1000, 1e6])
    fpr = th.sqrt_log_threshold_fpr(n, threshold=th.valid_threshold(n))
    np.testing.assert_allclose(fpr, [5.2e-3, 9.2e-5, 7.2e-8], rtol=0.01)
    assert np.all(fpr < 1 / n)
    np.testing.assert_allclose(
        th.cosine_critical_value([100, 1e4, 1e6]), [0.1956, 0.0196, 0.00196], rtol=3e-3
    )
    assert th.cosine_critical_value(100) == pytest.approx(0.1956, abs=5e-5)
    c = th.cosine_critical_value(50)
    assert th.cosine_pvalue(c, 50) == pytest.approx(0.05, rel=1e-10)


def test_pvalues_uniform_under_null():
    rng = np.random.default_rng(11)
    for n in [3, 10, 100]:
        x = rng.standard_normal((100_000, n))
        y = rng.standard_normal((100_000, n))
        c = th.cosine_similarity(x, y)
        assert th.ks_distance(c, th.cosine_null(n).cdf) < 0.006
        p = th.cosine_pvalue(c, n)
        assert th.ks_distance(p, stats.uniform.cdf) < 0.006
        assert np.mean(p < 0.05) == pytest.approx(0.05, abs=0.003)


def test_log_pvalues_deep_tail():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    for c, n in [(0.3, 1e4), (0.05, 1e6), (0.5, 1e6), (0.2, 100)]:
        exact = mpmath.log10(
            mpmath.betainc(
                (mpmath.mpf(n) - 1) / 2, 0.5, 0, 1 - mpmath.mpf(c) ** 2, regularized=True
            )
        )
        assert th.cosine_log10_pvalue(c, n) == pytest.approx(float(exact), rel=1e-12)
    assert th.cosine_pvalue(0.3, 1e4) == pytest.approx(10 ** th.cosine_log10_pvalue(0.3, 1e4))
    assert th.cosine_log10_pvalue(-0.5, 1e6, alternative="less") < -60000


def test_cosine_test_record():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(500)
    res = th.cosine_test(x, x + 0.1 * rng.standard_normal(500))
    assert res.reject
    assert res.n == 500
    assert res.statistic > res.critical_value
    res = th.cosine_test(x, rng.standard_normal(500), alternative="greater", n_eff=100)
    assert res.n == 100


def test_effective_dimension():
    eig = np.arange(1, 1001) ** -1.0
    assert th.effective_dimension(eig) == pytest.approx(34, abs=0.5)
    assert th.effective_dimension(np.diag(eig)) == pytest.approx(th.effective_dimension(eig))
    assert th.effective_dimension(np.ones(1000)) == pytest.approx(1000)
    rng = np.random.default_rng(5)
    g = rng.standard_normal((400, 1000)) * np.sqrt(eig)
    assert th.estimate_effective_dimension(g) == pytest.approx(34, rel=0.1)
    # calibrated test: using n_eff restores the level (docs/theory.md, section 8.2, alpha = 1)
    x = rng.standard_normal((20_000, 1000)) * np.sqrt(eig)
    c = th.cosine_similarity(x[:10_000], x[10_000:])
    assert np.mean(th.cosine_pvalue(c, 1000) < 0.05) > 0.6
    assert np.mean(th.cosine_pvalue(c, th.effective_dimension(eig)) < 0.05) < 0.05


def test_combining_and_fdr():
    p = np.array([0.01, 0.02, 0.5, 0.9])
    assert th.combine_pvalues(p) == pytest.approx(stats.combine_pvalues(p).pvalue)
    assert th.combine_pvalues(p, "stouffer") == pytest.approx(
        stats.combine_pvalues(p, method="stouffer").pvalue
    )
    np.testing.assert_allclose(th.fdr_control(p), stats.false_discovery_control(p))
    assert th.fdr_control(p, "by")[0] >= th.fdr_control(p)[0]
    # successive cosines are independent under the isotropic null (docs/theory.md, section 8.2)
    rng = np.random.default_rng(9)
    g = rng.standard_normal((20_001, 50))
    c = th.cosine_similarity(g[1:], g[:-1])
    assert abs(np.corrcoef(c[1:], c[:-1])[0, 1]) < 0.03
