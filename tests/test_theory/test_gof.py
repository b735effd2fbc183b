"""Goodness-of-fit records: effect sizes against brute-force recomputation, and the flags."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import gradscope.theory as th

N = 100_000


def test_effect_sizes_match_scipy_under_the_law():
    law = th.adam_update(10)
    u = law.rvs(size=N, random_state=np.random.default_rng(0))
    res = th.goodness_of_fit(u, law, pvalues=True)
    ks = stats.kstest(u, law.cdf)
    assert res.ks_distance == pytest.approx(ks.statistic, rel=1e-12)
    assert res.ks_pvalue == pytest.approx(ks.pvalue, rel=1e-6)
    cvm = stats.cramervonmises(u, law.cdf)
    assert res.cvm_omega2 == pytest.approx(cvm.statistic / N, rel=1e-10)
    assert res.var_ratio == pytest.approx(1, abs=0.02)
    assert res.magnitude_var_ratio == pytest.approx(1, abs=0.02)
    assert res.pit_tv_distance < 0.02
    assert res.pit_histogram.sum() == pytest.approx(1)
    assert not (res.bimodal or res.skewed or res.heavy_tailed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.ks_distance = 0.0


def test_flags_on_section6_scenarios():
    jump = th.simulate_scenario("variance_jump", N, 11, record=[11], seed=1).at(11)
    res = th.goodness_of_fit(
        jump, th.ema_update(11, 0.9), law_abs_var=th.ema_var_abs_update(11, 0.9)
    )
    assert res.bimodal
    assert res.ks_distance > 0.1

    mean = th.simulate_scenario("nonzero_mean", N, 5, record=[5], seed=2).at(5)
    res = th.goodness_of_fit(mean, th.ema_update(5, 0.9))
    assert res.skewed
    assert res.skewness > 0  # signed moment skewness (docs/theory.md, section 7.2)

    cauchy = th.simulate_scenario("heavy_tails", N, 100, record=[100], seed=3).at(100)
    res = th.goodness_of_fit(cauchy, th.ema_update(100, 0.9))
    assert res.heavy_tailed
    assert res.magnitude_var_ratio > 1.2


def test_accepts_duck_typed_law_and_validates():
    class Uniform:
        def cdf(self, x):
            return np.clip((np.asarray(x) + 1) / 2, 0, 1)

    u = np.random.default_rng(4).uniform(-1, 1, 1000)
    res = th.goodness_of_fit(u, Uniform(), law_var=1 / 3, law_abs_var=1 / 12)
    assert res.ks_distance < 0.06
    assert res.var_ratio == pytest.approx(1, abs=0.1)
    with pytest.raises(ValueError, match="at least 2"):
        th.goodness_of_fit([np.nan], Uniform())
    assert th.ks_distance(u, Uniform().cdf) == pytest.approx(res.ks_distance)
