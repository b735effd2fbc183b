"""Monte Carlo of the literal recursion (seeded, 1e5 samples) against every closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import gradscope.theory as th

N = 100_000
KS_MAX = 0.006  # about 1.4 times the 1% critical value sqrt(-log(0.005)/2N)


@pytest.fixture(scope="module")
def simple():
    return th.simulate_adam(N, 20, beta1=None, beta2=None, record=[1, 2, 3, 5, 10, 20], seed=1)


@pytest.mark.parametrize("t", [2, 3, 5, 10, 20])
def test_simple_averaging(simple, t):
    u = simple.at(t)
    assert th.ks_distance(u, th.adam_update(t).cdf) < KS_MAX
    s = np.sqrt(t) * u
    assert np.var(s) == pytest.approx(1, abs=5 * np.sqrt(2 / N))
    assert np.var(np.abs(s)) == pytest.approx(th.var_abs_scaled_update(t), abs=0.01)


def test_t1_is_two_point(simple):
    np.testing.assert_allclose(np.abs(simple.at(1)), 1.0, rtol=1e-15)


def test_ema_with_uniform_v():
    sim = th.simulate_adam(N, 30, beta1=0.9, beta2=None, record=[2, 5, 30], seed=2)
    for t in [2, 5, 30]:
        u = sim.at(t)
        assert th.ks_distance(u, th.ema_update(t, 0.9).cdf) < KS_MAX
        assert np.var(u) == pytest.approx(th.ema_var_update(t, 0.9), rel=0.02)
        assert np.var(np.abs(u)) == pytest.approx(th.ema_var_abs_update(t, 0.9), rel=0.03)
    # the exact support exceeds 1: 3.3% of the mass at t = 2 lies beyond it
    assert np.mean(np.abs(sim.at(2)) > 1) == pytest.approx(
        2 * th.ema_update.sf(1, 2, 0.9), abs=3e-3
    )


def test_real_adam_against_imhof():
    t = 5
    sim = th.simulate_adam(N, t, 0.9, 0.999, record=[t], seed=3)
    w, a = th.adam_weights(t, 0.9, 0.999)
    grid = np.linspace(-1, 1, 41)
    emp = np.searchsorted(np.sort(sim.at(t)), grid) / N
    assert np.max(np.abs(emp - th.imhof_cdf(grid, w, a))) < KS_MAX
    assert np.var(sim.at(t)) == pytest.approx(th.laplace_even_moment(1, w, a), rel=0.02)
    assert np.max(np.abs(sim.at(t))) <= th.adam_update_bound(t, 0.9, 0.999) + 1e-12


def test_nonzero_mean_noncentral_t():
    sim = th.simulate_scenario(
        "nonzero_mean", N, 10, beta1=None, beta2=None, record=[5, 10], seed=4
    )
    for t in [5, 10]:
        assert th.ks_distance(sim.at(t), th.adam_update_nc(t, -0.5).cdf) < KS_MAX


def test_nonzero_mean_adam_skews_right():
    """Spec 7.2: the median moves left and the moment skewness is positive (t = 2, 5)."""
    sim = th.simulate_scenario("nonzero_mean", N, 5, record=[2, 5], seed=5)
    assert np.median(sim.at(2)) == pytest.approx(-0.676, abs=0.01)
    assert np.median(sim.at(5)) == pytest.approx(-0.513, abs=0.01)
    assert stats.skew(sim.at(2)) == pytest.approx(0.98, abs=0.05)


def test_heavy_tails_peaks_at_one_over_sqrt_t():
    sim = th.simulate_scenario("heavy_tails", N, 10, beta1=None, beta2=None, record=[10], seed=6)
    hist, edges = np.histogram(np.abs(sim.at(10)), bins=100, range=(0, 1))
    peak = edges[np.argmax(hist)] + 0.005
    assert peak == pytest.approx(1 / np.sqrt(10), abs=0.015)


def test_scenarios_and_validation():
    assert set(th.SCENARIOS) >= {
        "variance_jump",
        "growing",
        "shrinking",
        "nonzero_mean",
        "heavy_tails",
    }
    a = th.simulate_scenario("growing", 1000, 12, seed=7)
    b = th.simulate_scenario("growing", 1000, 12, seed=7)
    np.testing.assert_array_equal(a.updates, b.updates)
    assert a.updates.shape == (12, 1000)
    assert np.all(np.isfinite(th.simulate_adam(100, 5, noise="student:3", belief=True).updates))
    with pytest.raises(ValueError, match="beta1"):
        th.simulate_adam(10, 5, beta1=1.0)
    with pytest.raises(ValueError, match="noise"):
        th.simulate_adam(10, 5, noise="laplace")
    with pytest.raises(ValueError, match="unknown scenario"):
        th.scenario("nope")
    with pytest.raises(KeyError):
        a.at(99)


def test_eps_shrinks_small_gradients():
    """Spec 7.4: eps = 1e-8 outside the root; common random numbers isolate its effect."""

    def var(scale, eps):
        return np.var(
            th.simulate_adam(20_000, 10, eps=eps, sigma=scale, record=[10], seed=8).at(10)
        )

    assert var(1.0, 1e-8) / var(1.0, 0.0) == pytest.approx(1, abs=1e-6)
    assert var(1e-8, 1e-8) / var(1e-8, 0.0) == pytest.approx(0.24, abs=0.02)


def test_ema_nonzero_mean_one_dimensional_integral():
    """Spec 9: uniform v, EMA m (0.9), mean -0.5 against the exact 1-D integral."""
    sim = th.simulate_adam(N, 20, beta1=0.9, beta2=None, mu=-0.5, record=[5, 20], seed=10)
    for t in [5, 20]:
        k = float(th.ema_scale(t, 0.9))
        grid = np.linspace(-k, k, 41)
        emp = np.searchsorted(np.sort(sim.at(t)), grid) / N
        assert np.max(np.abs(emp - th.ema_update_nc.cdf(grid, t, 0.9, -0.5))) < KS_MAX
