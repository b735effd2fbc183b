"""Analyzers against synthetic arrays whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import gradscope.analysis as A
from gradscope import theory


def test_stepsize_profile_layerwise_and_compactness():
    mean = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]])
    std = np.array([[0.0, 1.0, 1e-9], [0.0, 2.0, 0.0]])
    p = A.stepsize_profile([1, 2], mean, std, ["a", "b", "c"])
    np.testing.assert_array_equal(p.layerwise, [True, False, True])
    # log10 means are (0, 1, 2) + const: population std sqrt(2/3)
    np.testing.assert_allclose(p.compactness, np.sqrt(2 / 3))
    np.testing.assert_allclose(p.relative_std[:, 1], 0.1)
    equal = A.stepsize_profile([1], [[3.0, 3.0]], [[1.0, 1.0]], ["a", "b"])
    assert equal.compactness[0] == 0


def test_stepsize_profile_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must be"):
        A.stepsize_profile([1], [[1.0, 2.0]], [[1.0]], ["a", "b"])


def test_stepsize_range_spread():
    r = A.stepsize_range([1, 2], [[1e-2, 0.0]], [[1e3, 5.0]], ["a", "b"])
    np.testing.assert_allclose(r.spread[0, 0], 5.0)
    assert np.isnan(r.spread[0, 1])
    np.testing.assert_allclose(r.max_spread, [5.0, np.nan])


def test_randomness_constant_direction_is_nonrandom_everywhere():
    steps = np.arange(1, 21)
    cos = np.ones((20, 4))
    cos[0] = np.nan
    r = A.cosine_randomness(steps, cos, [10, 100, 1000, 10**6], list("abcd"))
    np.testing.assert_array_equal(r.fraction_nonrandom, 1.0)
    np.testing.assert_array_equal(r.n_tested, 19)
    assert r.null_applies.all() and r.note == ""


def test_randomness_null_calibrated_and_matches_theory():
    rng = np.random.default_rng(0)
    n = np.array([50, 500, 5000])
    cos = np.stack([theory.cosine_null(k).rvs(4000, random_state=rng) for k in n], axis=1)
    r = A.cosine_randomness(np.arange(4000), cos, n, ["a", "b", "c"], alpha=0.05)
    # exact p-values are uniform under the null
    for i in range(3):
        assert stats.kstest(r.pvalue[:, i], "uniform").pvalue > 1e-3
    np.testing.assert_allclose(r.pvalue, theory.cosine_pvalue(cos, n), rtol=1e-9)
    # BH across 3 layers at 5 %: per-layer rejection rate at most alpha
    assert np.all(r.fraction_nonrandom < 0.05)
    # the sqrt(log n / n) rule rejects more often than 1/n, as its exact FPR says
    np.testing.assert_allclose(r.fraction_sqrt_log_nonrandom, r.sqrt_log_threshold_fpr, atol=0.015)
    np.testing.assert_allclose(r.sqrt_log_threshold, np.sqrt(np.log(n) / n))
    np.testing.assert_allclose(r.critical_value, theory.cosine_critical_value(n, 0.05))


def test_randomness_bh_matches_scipy_and_skips_nan():
    p_c = np.array([[0.9, 0.001, np.nan], [0.5, 0.04, 0.03]])
    r = A.cosine_randomness([1, 2], p_c, [1000, 1000, 1000], list("abc"))
    row = r.pvalue[1]
    np.testing.assert_allclose(r.qvalue[1], stats.false_discovery_control(row))
    assert np.isnan(r.qvalue[0, 2]) and r.n_tested.tolist() == [2, 2, 1]


def test_randomness_momentum_updates_not_tested():
    cos = np.full((5, 2), 0.9)
    r = A.cosine_randomness(
        range(5), cos, [1000, 1000], ["a", "b"], quantity="update", momentum=0.9
    )
    assert not r.null_applies.any() and "beta1=0.9" in r.note
    np.testing.assert_array_equal(r.n_nonrandom, 0)


def test_concat_and_take_rows_equal_one_pass():
    rng = np.random.default_rng(1)
    cos = rng.uniform(-0.2, 0.2, (30, 2))
    whole = A.cosine_randomness(np.arange(30), cos, [100, 200], ["a", "b"])
    parts = [
        A.cosine_randomness(np.arange(30)[s], cos[s], [100, 200], ["a", "b"])
        for s in (slice(0, 7), slice(7, 30))
    ]
    joined = A.concat_rows(parts)
    np.testing.assert_array_equal(joined.qvalue, whole.qvalue)
    np.testing.assert_array_equal(joined.n_nonrandom, whole.n_nonrandom)
    thin = A.take_rows(joined, A.thin_index(30, 5))
    assert thin.steps.tolist() == [0, 7, 14, 22, 29] and thin.cosine.shape == (5, 2)


def test_update_fit_exact_law_samples_fit():
    law = A.reference_law(10, 0.9)
    x = law.rvs(20000, random_state=np.random.default_rng(2))
    f = A.update_fit(A.normalized_update(-1e-3 * x, 1e-3), 10, 0.9, layer="w")
    assert f.ks_distance < 0.015 and abs(f.var_ratio - 1) < 0.05
    assert abs(f.magnitude_var_ratio - 1) < 0.06
    assert not (f.bimodal or f.heavy_tailed)
    # histogram is a density; the pdf grid integrates to about 1
    assert np.sum(f.density * np.diff(f.edges)) == pytest.approx(1.0)
    assert np.trapezoid(f.pdf, f.grid) == pytest.approx(1.0, abs=0.02)


def test_update_fit_flags_heavy_tails_and_misfit():
    x = stats.t(df=3).rvs(20000, random_state=3) * 0.2
    f = A.update_fit(x, 50, 0.9)
    assert f.heavy_tailed and f.ks_distance > 0.02
    with pytest.raises(ValueError, match="t = 2"):
        A.update_fit(x, 1, 0.9)


def test_update_moments_corollaries():
    rng = np.random.default_rng(4)
    steps = np.array([2, 5, 20])
    x = np.stack(
        [A.reference_law(int(t), 0.9).rvs((2, 20000), random_state=rng) for t in steps]
    )  # (T, L, k)
    m = A.update_moments(steps, x, 0.9, ["a", "b"])
    np.testing.assert_allclose(m.scaled_var, 1.0, atol=0.04)
    np.testing.assert_allclose(m.scaled_var_abs - m.theory_var_abs[:, None], 0, atol=0.02)
    np.testing.assert_allclose(m.theory_var_abs, theory.var_abs_scaled_update(steps))


def test_epsilon_check_fraction_per_layer():
    # counts of eps-dominated coordinates out of n = (100, 1000, 10): last and max fractions
    counts = np.array([[0.0, 900.0, np.nan], [1.0, 890.0, np.nan]])
    e = A.epsilon_check(counts, [100, 1000, 10], ["a", "b", "c"])
    np.testing.assert_allclose(e.fraction_last, [0.01, 0.89, np.nan])
    np.testing.assert_allclose(e.fraction_max, [0.01, 0.9, np.nan])
    # 0.01 is not above the 1 % threshold; 0.9 is
    assert e.flagged_layers == ("b",) and e.source == "recorded"


def _examplewise_rows():
    """Two rows, layers a (2 coordinates) and b (2 coordinates), B = 16, values by hand.

    Norm test sqrt(variance / (B ||gbar||^2)), row 1: a sqrt(4 / (16 * 1)) = 0.5,
    b sqrt(16 / (16 * 0.25)) = 2, network sqrt(20 / (16 * 1.25)) = 1 (not above theta = 1).
    Row 2: a has a zero gradient and zero variance (0/0: NaN, not tested); b and the network
    a zero gradient with variance 2 (+inf: too small for any theta).
    GSNR, row 1: per-coordinate ratios a (1, 1), b (2, 6): a 1, b 4, network 10/4 = 2.5.
    Row 2: a has no coordinate with positive variance (NaN), b's means are 0 (GSNR 0).
    """
    return {
        "steps": [10, 20],
        "batch_size": [16, 16],
        "layers": ["a", "b"],
        "variance": [[4.0, 16.0], [0.0, 2.0]],
        "grad_norm_sq": [[1.0, 0.25], [0.0, 0.0]],
        "gsnr": [[1.0, 4.0], [np.nan, 0.0]],
        "norm_test": [[0.5, 2.0], [np.nan, np.inf]],
        "inner_product_test": [[0.1, 0.2], [0.3, 0.4]],
        "orthogonality_test": [[1.1, 1.2], [1.3, 1.4]],
        "network": {
            "variance": [20.0, 2.0],
            "grad_norm_sq": [1.25, 0.0],
            "gsnr": [2.5, 0.0],
            "norm_test": [1.0, np.inf],
        },
    }


def test_examplewise_profile_hand_values():
    kw = _examplewise_rows()
    p = A.examplewise_profile(kw.pop("steps"), kw.pop("batch_size"), kw.pop("layers"), **kw)
    assert p.layers == ("a", "b") and p.theta == 1.0
    np.testing.assert_array_equal(p.steps, [10, 20])
    np.testing.assert_array_equal(p.batch_size, [16, 16])
    # the recorded series pass through unchanged
    np.testing.assert_array_equal(p.norm_test, [[0.5, 2.0], [np.nan, np.inf]])
    # the hand values obey the recorder's definition (gradscope.examplewise._stats)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(np.sqrt(p.variance / (16 * p.grad_norm_sq)), p.norm_test)
        net = np.sqrt(p.network_variance / (16 * p.network_grad_norm_sq))
    np.testing.assert_array_equal(net, p.network_norm_test)
    np.testing.assert_array_equal(p.orthogonality_test[:, 1], [1.2, 1.4])
    np.testing.assert_array_equal(p.network_variance, [20.0, 2.0])
    # not given for the network: NaN
    assert np.isnan(p.network_inner_product_test).all()
    # a: one defined row (0.5 <= 1); b: 2 > 1 and +inf > 1
    np.testing.assert_array_equal(p.n_tested, [1, 2])
    np.testing.assert_array_equal(p.n_too_small, [0, 2])
    np.testing.assert_allclose(p.fraction_too_small, [0.0, 1.0])
    # network: 1.0 is not > 1, +inf is
    assert int(p.network_n_tested) == 2 and int(p.network_n_too_small) == 1
    assert p.network_fraction_too_small == 0.5
    # medians of the finite GSNRs: a (1, NaN) -> 1; b (4, 0) -> 2; network (2.5, 0) -> 1.25
    np.testing.assert_allclose(p.median_gsnr, [1.0, 2.0])
    assert p.network_median_gsnr == 1.25
    # a stricter theta of 0.25: a's 0.5 also counts
    q = A.examplewise_profile(
        [10, 20], [16, 16], ["a", "b"], **_examplewise_rows_only(), theta=0.25
    )
    np.testing.assert_array_equal(q.n_too_small, [1, 2])
    assert int(q.network_n_too_small) == 2


def _examplewise_rows_only():
    kw = _examplewise_rows()
    for k in ("steps", "batch_size", "layers"):
        kw.pop(k)
    return kw


def test_examplewise_profile_chunks_join_and_edge_cases():
    kw = _examplewise_rows_only()
    whole = A.examplewise_profile([10, 20], [16, 16], ["a", "b"], **kw)
    parts = []
    for r in (0, 1):
        part = {
            k: ({n: [v[r]] for n, v in x.items()} if k == "network" else [x[r]])
            for k, x in kw.items()
        }
        parts.append(A.examplewise_profile([[10, 20][r]], [16], ["a", "b"], **part))
    joined = A.concat_rows(parts)
    np.testing.assert_array_equal(joined.n_too_small, whole.n_too_small)
    np.testing.assert_array_equal(joined.n_tested, whole.n_tested)
    assert int(joined.network_n_too_small) == 1
    np.testing.assert_array_equal(joined.gsnr, whole.gsnr)
    np.testing.assert_array_equal(joined.steps, [10, 20])
    # thinning keeps the counts of every row
    thin = A.take_rows(whole, np.array([1]))
    np.testing.assert_array_equal(thin.steps, [20])
    np.testing.assert_array_equal(thin.n_too_small, [0, 2])
    # no rows: counts zero, fractions and medians NaN without warnings
    empty = A.examplewise_profile(
        [],
        [],
        ["a"],
        variance=np.zeros((0, 1)),
        grad_norm_sq=np.zeros((0, 1)),
        gsnr=np.zeros((0, 1)),
        norm_test=np.zeros((0, 1)),
    )
    assert empty.n_tested.tolist() == [0] and np.isnan(empty.fraction_too_small).all()
    assert np.isnan(empty.median_gsnr).all() and np.isnan(empty.network_fraction_too_small)
    with pytest.raises(ValueError, match="expected"):
        A.examplewise_profile(
            [1],
            [4],
            ["a", "b"],
            variance=[[1.0]],
            grad_norm_sq=[[1.0]],
            gsnr=[[1.0]],
            norm_test=[[1.0]],
        )
    with pytest.raises(ValueError, match="unknown network"):
        A.examplewise_profile(
            [1],
            [4],
            ["a"],
            variance=[[1.0]],
            grad_norm_sq=[[1.0]],
            gsnr=[[1.0]],
            norm_test=[[1.0]],
            network={"mean_sq": [1.0]},
        )
    with pytest.raises(ValueError, match="theta"):
        A.examplewise_profile(
            [1],
            [4],
            ["a"],
            variance=[[1.0]],
            grad_norm_sq=[[1.0]],
            gsnr=[[1.0]],
            norm_test=[[1.0]],
            theta=0.0,
        )


def test_law_curves_scaled_unit_variance():
    c = A.law_curves([2, 10], [0.9, None], scaled=True)
    assert len(c.labels) == 4
    np.testing.assert_allclose(c.variances, 1.0)
    for _g, p in zip(c.grids, c.pdfs):
        assert np.all(np.isfinite(p)) and np.all(p >= 0)


def test_missing_values_and_untestable_layers():
    mean = np.array([[1.0, np.nan], [1.0, 2.0]])
    p = A.stepsize_profile([1, 2], mean, np.zeros((2, 2)), ["a", "b"])
    np.testing.assert_allclose(p.compactness, [0.0, np.log10(2) / 2])
    assert p.layerwise.all()
    # a layer of size 1 has no cosine null: never tested, never flagged
    r = A.cosine_randomness([1, 2], [[1.0, 0.5], [1.0, 0.5]], [1, 100], ["s", "w"])
    assert r.n_tested.tolist() == [0, 2] and np.isnan(r.critical_value[0])
    assert np.isnan(r.fraction_nonrandom[0])
