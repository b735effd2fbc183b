"""The analyzers at the true t, per-layer settings, dead coordinates, verdicts (NumPy oracles)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import gradscope.analysis as A
from gradscope import theory


def adam64(g, beta1=0.9, beta2=0.999, eps=1e-8):
    """Float64 torch-convention Adam on gradient rows ``g`` (T, k); beta1 may vary per step.

    Returns the normalized updates x_t = m_hat/(sqrt(v_hat)+eps) and stepsizes u_t, (T, k).
    """
    T, k = g.shape
    b1 = np.broadcast_to(np.asarray(beta1, dtype=float), (T,))
    m, v = np.zeros(k), np.zeros(k)
    xs, us = np.zeros((T, k)), np.zeros((T, k))
    for t in range(1, T + 1):
        m = b1[t - 1] * m + (1 - b1[t - 1]) * g[t - 1]
        v = beta2 * v + (1 - beta2) * g[t - 1] ** 2
        u = 1.0 / (np.sqrt(v / (1 - beta2**t)) + eps)
        xs[t - 1] = m / (1 - b1[t - 1] ** t) * u
        us[t - 1] = u
    return xs, us


def test_iid_gaussian_adam_fits_at_the_true_t_only():
    rng = np.random.default_rng(0)
    k = 20000
    x, _ = adam64(rng.standard_normal((110, k)))
    for t in (2, 3, 10, 101, 110):
        f = A.update_fit(x[t - 1], t, 0.9)
        # KS at the sampling level: its 1 % critical value is 1.63/sqrt(n) = 0.0115
        assert f.ks_distance < 1.63 / np.sqrt(k) and not f.rejected, t
        assert f.n_dead == 0 and f.ks_with_dead == f.ks_distance
    # a recorder attached after 100 steps counts 1, 2, ...: fitting at that count is wrong
    wrong = A.update_fit(x[101], 2, 0.9)
    assert wrong.rejected and wrong.ks_distance > 0.1


def test_law_scale_matches_torch_weights_and_schedule_is_reflected():
    # constant beta1: k = sqrt(t/t_eff) of the theory
    for t in (1, 2, 7, 50):
        assert A.law_scale(t, 0.9) == pytest.approx(float(theory.ema_scale(t, 0.9)), rel=1e-12)
    assert A.law_scale(5, None) == 1.0
    # hand-derived weights of a schedule 0.5 -> 0.9 over t = 3 (torch bias correction
    # with the current beta1): w = ((1-.5)(.7)(.9), (1-.7)(.9), (1-.9)) / (1 - .9^3)
    w = np.array([0.5 * 0.7 * 0.9, 0.3 * 0.9, 0.1]) / (1 - 0.9**3)
    assert A.law_scale(3, [0.5, 0.7, 0.9]) == pytest.approx(np.sqrt(3 * np.sum(w**2)))
    # Monte Carlo: a OneCycle-like beta1 ramp 0.95 -> 0.5 over 12 steps
    rng = np.random.default_rng(1)
    sched = np.linspace(0.95, 0.5, 12)
    x, _ = adam64(rng.standard_normal((12, 40000)), beta1=sched)
    good = A.update_fit(x[-1], 12, sched)
    const = A.update_fit(x[-1], 12, 0.9)
    assert not good.rejected and abs(good.var_ratio - 1) < 0.03
    assert const.rejected and const.var_ratio > 1.5
    assert "schedule" in good.law
    with pytest.raises(ValueError, match="one value per step"):
        A.law_scale(3, [0.9, 0.9])


def test_dead_coordinates_are_excluded_and_counted():
    rng = np.random.default_rng(2)
    k, dead_k, eps = 10000, 3000, 1e-8
    g = rng.standard_normal((3, k))
    g[:, :dead_k] = 0.0  # never-updated coordinates: v = 0, u = 1/eps, update 0
    x, u = adam64(g, eps=eps)
    assert np.all(u[:, :dead_k] == 1 / eps) and np.all(x[:, :dead_k] == 0)
    nz = A.ever_nonzero(g[:2])
    dead = A.dead_coordinates(u[1], eps, nz)
    assert dead.sum() == dead_k
    f = A.update_fit(x[1], 2, 0.9, dead=dead)
    assert f.n_dead == dead_k and f.n == k - dead_k
    # kept, the 30 % of zeros put a jump of 0.3 at 0 where the law's CDF is 1/2: KS 0.15
    assert f.ks_distance < 0.02 and f.ks_with_dead == pytest.approx(0.15, abs=0.015)
    kept = A.update_fit(x[1], 2, 0.9, dead=dead, exclude_dead=False)
    assert kept.n == k and kept.ks_distance == pytest.approx(f.ks_with_dead)
    # the eps cap: u >= 1/(1.01 eps) is dead, just below is not
    cap = 1 / (1.01 * eps)
    np.testing.assert_array_equal(A.dead_coordinates([cap, cap * (1 - 1e-9)], eps), [True, False])
    # a gradient zero only at the first row: alive from the second row on
    np.testing.assert_array_equal(
        A.ever_nonzero([[0.0, 0.0]], prior=A.ever_nonzero([[0.0, 1.0]])), [False, True]
    )


def test_two_point_law_at_t1():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((1, 5000))
    x, u = adam64(g)
    c = A.two_point_check(x[0])
    # |u| = |g|/(|g| + eps) = 1 - eps/(|g| + eps): within 1e-3 unless |g| < 1e-5
    assert c.passed and c.max_deviation < 1e-8 / np.min(np.abs(g))
    g[0, :10] = 1e-11  # eps-dominated: sqrt(v) <= 0.01 eps, |u| = 1/1001
    x, u = adam64(g)
    bad = A.two_point_check(x[0])
    assert not bad.passed and bad.fraction_unit == pytest.approx(1 - 10 / 5000)
    ok = A.two_point_check(x[0], dead=A.dead_coordinates(u[0], 1e-8))
    assert ok.passed and ok.n_dead == 10
    # small real gradients: |u| = |g|/(|g| + eps) is checked exactly given g and eps
    small = rng.standard_normal((1, 5000)) * 1e-7
    xs, _ = adam64(small)
    assert not A.two_point_check(xs[0]).passed
    exact = A.two_point_check(xs[0], grad=small[0], eps=1e-8)
    assert exact.passed and exact.max_deviation < 1e-12


def test_noncentral_law_explains_a_per_coordinate_mean():
    rng = np.random.default_rng(4)
    k, W, t = 20000, 30, 3
    mu = rng.standard_normal(k)  # per-coordinate means, median |snr| 0.67
    g = rng.standard_normal((W, k)) + mu
    x, _ = adam64(g)
    f = A.update_fit(x[t - 1], t, 0.9, grad=g)
    assert f.rejected and f.ks_distance > 0.08
    nc = f.noncentral
    assert nc is not None and nc.window == W
    assert nc.ks_distance < 1.63 / np.sqrt(k) + 0.005
    assert nc.median_abs_snr == pytest.approx(np.median(np.abs(mu)), rel=0.1)
    # zero-mean gradients: the debiased snr^2 averages well below the naive 1/W
    z = rng.standard_normal((W, k))
    snr = A.gradient_snr(z)
    assert np.mean(snr**2) < 0.6 / W
    x0, _ = adam64(z)
    assert A.update_fit(x0[t - 1], t, 0.9, grad=z).noncentral is None


def test_gradient_snr_against_numpy():
    g = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0], [2.0, 0.0, 2.0]])
    m, s2 = 2.0, 1.0  # first column: mean 2, variance 1 (ddof 1)
    snr = A.gradient_snr(g)
    assert snr[0] == pytest.approx(np.sqrt((m**2 - s2 / 3) / s2))
    assert np.isnan(snr[1]) and np.isnan(snr[2])  # s = 0


def test_fit_layer_and_step_selection():
    names = ["conv1", "conv2", "fc1", "fc2", "bias"]
    sizes = [150, 2400, 40000, 5000, 10]
    np.testing.assert_array_equal(A.select_fit_layers(names, sizes), [1, 2, 3])
    np.testing.assert_array_equal(A.select_fit_layers(names, sizes, 2), [2, 3])
    np.testing.assert_array_equal(A.select_fit_layers(names, sizes, "all"), [1, 2, 3])
    # asked for by name: fitted whatever the size
    np.testing.assert_array_equal(A.select_fit_layers(names, sizes, ["bias", "conv1"]), [0, 4])
    with pytest.raises(ValueError, match="unknown fit layers"):
        A.select_fit_layers(names, sizes, ["fc3"])
    rows, missing = A.select_fit_steps([1, 2, 3, 4, 5, 10, 20, 50, 100])
    np.testing.assert_array_equal(rows, [0, 1, 2, 5, 8])
    rows, missing = A.select_fit_steps([1, 2, 3, 5, 10], [1, 2, 3, 5, 7])
    np.testing.assert_array_equal(rows, [0, 1, 2, 3]) and missing == (7,)
    assert missing == (7,)
    # a run resumed at 101: the default takes its first rows, log-spaced
    rows, _ = A.select_fit_steps(np.arange(101, 201))
    assert rows[0] == 0 and len(rows) == 4


def test_mixed_momentum_groups_are_tested_per_layer():
    rng = np.random.default_rng(5)
    n = np.array([400, 400, 4000, 4000])
    T = 3000
    cos = np.stack([theory.cosine_null(k).rvs(T, random_state=rng) for k in n], axis=1)
    mom = np.array([0.0, 0.9, 0.0, 0.9])
    g = A.cosine_randomness(np.arange(T), cos, n, list("abcd"), momentum=mom)
    # gradient cosines: the null applies in every layer, ~alpha or fewer flagged (BH)
    assert g.null_applies.all() and np.all(g.fraction_nonrandom < 0.05)
    u = A.cosine_randomness(np.arange(T), cos, n, list("abcd"), quantity="update", momentum=mom)
    np.testing.assert_array_equal(u.null_applies, [True, False, True, False])
    np.testing.assert_array_equal(u.n_nonrandom[[1, 3]], 0)
    assert np.isnan(u.fraction_nonrandom[[1, 3]]).all()
    assert np.all(u.fraction_nonrandom[[0, 2]] < 0.05) and "b, d" in u.note
    # BH among the two tested layers only: q = BH of their p-values
    row = u.pvalue[7, [0, 2]]
    np.testing.assert_allclose(u.qvalue[7, [0, 2]], stats.false_discovery_control(row))
    assert np.isnan(u.qvalue[7, [1, 3]]).all()
    # momentum per row: a group switching momentum on at row 10 is untested from then on
    per_row = np.zeros((T, 4))
    per_row[10:, 0] = 0.9
    r = A.cosine_randomness(np.arange(T), cos, n, list("abcd"), quantity="update", momentum=per_row)
    assert not r.null_applies[0] and r.null_applies[1:].all()


def test_signed_mean_cosine_and_chunks():
    rng = np.random.default_rng(6)
    cos = np.clip(rng.normal(-0.24, 0.02, (200, 2)), -1, 1)
    cos[:, 1] *= -1
    cos[0] = np.nan
    r = A.cosine_randomness(np.arange(200), cos, [1000, 1000], ["fc1", "fc2"])
    np.testing.assert_allclose(r.mean_cosine, np.nanmean(cos, axis=0))
    parts = [
        A.cosine_randomness(np.arange(200)[s], cos[s], [1000, 1000], ["fc1", "fc2"])
        for s in (slice(0, 50), slice(50, 200))
    ]
    np.testing.assert_allclose(A.concat_rows(parts).mean_cosine, r.mean_cosine)
    text = A.randomness_verdict(r, A.significance_trend(r))
    assert "negative (anti-correlated successive grads) in 1 of 2 layers" in text
    assert f"most in fc1 ({r.mean_cosine[0]:+.3f})" in text and r.mean_cosine[0] < -0.23


def test_significance_trend_and_verdict_follow_the_numbers():
    T = 100
    n = np.array([100, 1000, 10000, 100000])
    steps = np.arange(T)
    # the fraction of rows with a large cosine rises with size, the depth order is reversed
    cos = np.zeros((T, 4))
    for j, frac in enumerate([0.9, 0.6, 0.3, 0.0]):
        cos[: int(frac * T), 3 - j] = 0.99
    sizes = n[::-1].copy()  # depth 0 is the largest layer
    r = A.cosine_randomness(steps, cos, sizes, list("abcd"))
    tr = A.significance_trend(r)
    want = stats.spearmanr(r.fraction_nonrandom, sizes)
    assert tr.rho_size == pytest.approx(want.statistic) and tr.p_size == pytest.approx(want.pvalue)
    assert tr.rho_size == pytest.approx(-1.0) and tr.rho_depth == pytest.approx(1.0)
    text = A.randomness_verdict(r, tr)
    assert "it falls with layer size n (Spearman rho = -1.00" in text
    assert "it rises with depth" in text
    # fewer than 3 layers: no trend claimed
    r2 = A.cosine_randomness(steps, cos[:, :2], sizes[:2], list("ab"))
    assert np.isnan(A.significance_trend(r2).rho_size)
    assert "Fewer than 3 tested layers" in A.randomness_verdict(r2, A.significance_trend(r2))


def test_step_length_against_numpy_and_chunks():
    rng = np.random.default_rng(7)
    T, L = 230, 3
    x = np.abs(rng.normal(1e-3, 2e-4, (T, L))) * np.array([1.0, 5.0, 0.1])
    x[17, 1] = np.nan
    steps = np.arange(101, 101 + T)
    s = A.step_length(steps, x, ["a", "b", "c"], window=50)
    glob = np.sqrt(np.sum(x**2, axis=1))
    np.testing.assert_allclose(s.global_norm[np.isfinite(glob)], glob[np.isfinite(glob)])
    assert np.isnan(s.global_norm[17])
    for j in range(L):
        col = x[:, j][np.isfinite(x[:, j])]
        assert s.mean[j] == pytest.approx(col.mean(), rel=1e-12)
        assert s.cv[j] == pytest.approx(col.std(ddof=1) / col.mean(), rel=1e-10)
    g = glob[np.isfinite(glob)]
    assert s.cv[-1] == pytest.approx(g.std(ddof=1) / g.mean(), rel=1e-10)
    # windows of 50 rows: 5 windows, the last of 30 rows, labelled by their last step
    np.testing.assert_array_equal(s.window_steps, [150, 200, 250, 300, 330])
    np.testing.assert_allclose(s.window_cv[1, 0], x[50:100, 0].std(ddof=1) / x[50:100, 0].mean())
    # chunks with one shift add up to the one-pass numbers
    parts = [
        A.step_length(steps[a:b], x[a:b], ["a", "b", "c"], window=50, shift=s.shift)
        for a, b in ((0, 100), (100, T))
    ]
    j = A.concat_rows(parts)
    np.testing.assert_allclose(j.cv, s.cv, rtol=1e-10)
    np.testing.assert_array_equal(j.window_steps, s.window_steps)
    assert "coefficient of variation" in A.step_length_verdict(s)


def test_nonfinite_summary_counts_and_first_step():
    steps = np.array([10, 20, 30])
    grad = np.array([[0, 0], [1, 0], [3, 0]])
    upd = np.array([[0, 0], [0, 0], [0, 2]])
    loss = np.array([1.0, np.inf, np.nan])
    nf = A.nonfinite_summary(steps, {"grad": grad, "update": upd}, ["a", "b"], loss=loss)
    np.testing.assert_array_equal(nf.total, [[4, 0], [0, 2]])
    np.testing.assert_array_equal(nf.first_step, [[20, -1], [-1, 30]])
    assert int(nf.loss_total) == 2 and int(nf.loss_first_step) == 20
    parts = [
        A.nonfinite_summary(steps[s], {"grad": grad[s], "update": upd[s]}, ["a", "b"])
        for s in (slice(0, 2), slice(2, 3))
    ]
    j = A.concat_rows(parts)
    np.testing.assert_array_equal(j.first_step, [[20, -1], [-1, 30]])
    np.testing.assert_array_equal(j.total, nf.total)
    text = A.nonfinite_verdict(nf)
    assert "grad: 1 layer from step 20 (a 4 from step 20)" in text
    assert "loss: 2 rows from step 20" in text
    clean = A.nonfinite_summary(steps, {"grad": np.zeros((3, 2))}, ["a", "b"])
    assert not clean.any and A.nonfinite_verdict(clean).startswith("No non-finite")


def test_range_eps_cap_and_verdict():
    eps = 1e-8
    lo = np.array([[1.0, 1.0], [1.0, 1.0]])
    hi = np.array([[1e3, 1 / eps], [1e2, 1e4]])
    r = A.stepsize_range([1, 2], lo, hi, ["a", "b"], eps=[eps, eps])
    np.testing.assert_array_equal(r.eps_capped, [[False, True], [False, False]])
    np.testing.assert_array_equal(r.max_spread_eps_capped, [False, True])
    text = A.range_verdict(r)
    assert "8.00 decades" in text and "in b, driven by eps-dominated" in text
    plain = A.stepsize_range([1, 2], lo, hi, ["a", "b"])
    assert "driven by eps" not in A.range_verdict(plain)


def test_stepsize_and_compare_verdicts():
    layers = ["a", "b", "c"]
    p1 = A.stepsize_profile([1], [[1.0, 1.0, 1.0]], [[0.1, 0.5, 0.2]], layers)
    p2 = A.stepsize_profile([1], [[1.0, 1.0, 1.0]], [[0.3, 0.4, 0.6]], layers)
    (v,) = A.compare_stepsize_verdicts([p1, p2], ["adam", "aida"])
    assert v.startswith("adam vs aida: adam has the lower within-layer spread")
    assert "in 2 of 3 common layers" in v
    s = A.stepsize_verdict(p1)
    assert "median 0.2 over 3 layers (least 0.1 in a, most 0.5 in b)" in s


def test_fit_verdict_says_where_and_why():
    rng = np.random.default_rng(8)
    k = 8000
    mu = rng.standard_normal(k)
    g = rng.standard_normal((20, k)) + mu
    x, _ = adam64(g)
    fits = [A.update_fit(x[t - 1], t, 0.9, grad=g, layer="fc1") for t in (2, 3, 10)]
    z = rng.standard_normal((10, k))
    x0, _ = adam64(z)
    fits += [A.update_fit(x0[t - 1], t, 0.9, grad=z, layer="fc2") for t in (2, 3, 10)]
    text = A.fit_verdict(fits)
    assert "rejected at t = 2..10 in 1 of 2 fitted layers" in text
    nc = [f.noncentral for f in fits[:3]]
    full = sum(not A.fit.rejects(c.ks_distance, c.n) for c in nc)
    assert full >= 2 and f"explains it in {full} of 3 rejected fits" in text
    assert all(c.ks_distance < 0.5 * f.ks_distance for c, f in zip(nc, fits))
    ok = A.fit_verdict(fits[3:])
    assert ok.startswith("The zero-mean law fits at every fitted step (t = 2..10)")


def test_sparse_gradients_counted_and_their_point_mass():
    rng = np.random.default_rng(9)
    k = 20000
    g = rng.standard_normal((2, k))
    g[0, :4000] = 0.0  # gated at step 1 only: x_2 = w_2 sqrt(2) sign(g_2), a point mass
    x, _ = adam64(g)
    # m_hat = 0.1 g_2 / (1 - 0.9^2), sqrt(v_hat) = |g_2| / sqrt(1 + 0.999)
    w2 = 0.1 / (1 - 0.9**2)
    np.testing.assert_allclose(np.abs(x[1, :4000]), w2 * np.sqrt(1.999), rtol=1e-3)  # eps
    sparse = A.ever_zero(g) & A.ever_nonzero(g)
    assert sparse.sum() == 4000
    f = A.update_fit(x[1], 2, 0.9, sparse=sparse)
    assert f.rejected and f.n_sparse == 4000
    assert f.ks_without_sparse < 1.63 / np.sqrt(k - 4000)
    text = A.fit_verdict([f])
    assert "a median 20% of the live coordinates had an exactly zero gradient" in text


def test_sqrt_log_rule_and_its_exact_fpr():
    n = np.array([10.0, 100.0, 1000.0])
    np.testing.assert_allclose(A.sqrt_log_threshold(n), np.sqrt(np.log(n) / n))
    r = A.cosine_randomness([1], [[0.0, 0.0, 0.0]], n, list("abc"))
    # the documented exact rates: 0.1353, 0.03116, 0.00852 (of order sqrt(1/n), not 1/n)
    np.testing.assert_allclose(r.sqrt_log_threshold_fpr, [0.13526, 0.031162, 0.0085174], rtol=1e-4)
    # Monte Carlo under the null
    rng = np.random.default_rng(10)
    c = theory.cosine_null(100).rvs(200000, random_state=rng)
    assert np.mean(np.abs(c) > A.sqrt_log_threshold(100)) == pytest.approx(0.031162, abs=0.0015)
