"""On-device reductions against brute-force NumPy float64 recomputations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradscope.record import summaries as sm
from gradscope.runfile import schema as S

from .record_oracles import np_bins, np_moments


def pipeline(x, n):
    """What the recorder does: raw sums on device, moments on host, exact redo if flagged."""
    raw = sm.raw_moments(x, n).numpy()[None]
    out, redo = sm.finalize_moments(raw, np.array([n]), np.array([True]))
    if redo[0]:
        out[0] = sm.finite_moments(x, n).numpy()[:5]
    return out[0], bool(redo[0])


def fused_pipeline(x, n, shift):
    """The compiled one-pass kernel (``shift=None``: the first coordinate), then the host."""
    row = torch.empty(5, dtype=torch.float64)
    sm.fused_moments(x, shift, out=row)
    out, redo = sm.finalize_moments(row.numpy()[None], np.array([n]), np.array([True]))
    if redo[0]:
        out[0] = sm.finite_moments(x, n).numpy()[:5]
    return out[0], bool(redo[0])


def segmented_pipeline(x):
    """The small-layer path: ``x`` reduced together with two other segments."""
    others = [torch.linspace(-3, 5, 7), torch.full((3,), 2.5)]
    vals = [others[0], x.reshape(-1), others[1]]
    lengths = torch.tensor([v.numel() for v in vals])
    rows, _ = sm.segmented_moments(vals, lengths)
    out, redo = sm.finalize_moments(rows.numpy(), lengths.numpy(), np.ones(3, bool))
    return out[1], bool(redo[1])


def adversarial(kind, n, ratio, scale, rng):
    """float32 data with mean**2/var = ratio: Gaussian, heavy-tailed (t, 1.5 d.o.f.), capped
    stepsize-like (1/(|g| + 1e-3) capped at 1e3) and skewed (log-normal)."""
    z = {
        "gauss": lambda: rng.standard_normal(n),
        "t15": lambda: rng.standard_t(1.5, n),
        "capped": lambda: np.minimum(1.0 / (np.abs(rng.standard_normal(n)) + 1e-3), 1e3),
        "skewed": lambda: rng.lognormal(0.0, 2.0, n),
    }[kind]()
    z = z - z.mean()
    sd = z.std() if n > 1 else 1.0
    return torch.from_numpy((z + np.sqrt(ratio) * sd) * scale).float()


SIZES = (1, 2, 3, 1000, sm.CPU_CHUNK - 1, sm.CPU_CHUNK, sm.CPU_CHUNK + 1, 3 * sm.CPU_CHUNK + 7)


@pytest.mark.parametrize("scale", [1e-20, 1.0, 1e18])
@pytest.mark.parametrize("kind", ["gauss", "t15", "capped", "skewed"])
def test_moments_exact_on_adversarial_inputs(kind, scale):
    """Mean, std, norm, min and max within 1e-6 relative of NumPy float64 (std relative to
    itself, the mean relative to max(|mean|, 1e-6 std)) for mean**2/var from 0 to 1e12, on
    both paths and on both sides of every size threshold (the CPU chunk; 65,536, the
    recorder's small-layer bound).

    The compiled kernel runs with both of its shifts: the first coordinate (a recorder's
    first step) and a previous step's mean (here the mean moved by 0.3 std and 1e-7 of
    itself); it may send a layer to the exact recomputation (a first coordinate far in a
    heavy tail, a constant layer), never a Gaussian one, and its result is within the same
    bound either way.
    """
    rng = np.random.default_rng([len(kind), int(np.log10(scale)) + 20])
    worst = 0.0
    for n in SIZES:
        for ratio in (0.0, 1.0, 1e4, 1e8, 1e12):
            x = adversarial(kind, n, ratio, scale, rng)
            xd = x.double().numpy()
            want = np_moments(xd)
            paths = [pipeline(x, n)]
            if n <= 1 << 16:
                paths.append(segmented_pipeline(x))
            moved = torch.tensor(want[0] * (1 + 1e-7) + 0.3 * want[1], dtype=torch.float64)
            fused = [fused_pipeline(x, n, None), fused_pipeline(x, n, moved)]
            for k, (got, redo) in enumerate(paths + fused):
                # (a constant layer, n = 1, is recomputed whenever its shift is not its value)
                assert not redo or (k >= len(paths) and (kind != "gauss" or want[1] == 0))
                err = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
                # a mean of 1e-10 std (ratio 0) is known to float64 rounding of the spread
                err[0] = abs(got[0] - want[0]) / max(abs(want[0]), 1e-6 * want[1], 1e-300)
                if want[1] == 0:  # n = 1: the std must come out exactly 0
                    err[1] = got[1]
                worst = max(worst, float(err.max()))
                assert err.max() <= 1e-6, (n, ratio, got, want)
    assert worst < 1e-7  # float64 accumulation: far inside the target


@pytest.mark.parametrize("n", [65_537, 3 * sm.CPU_CHUNK + 7])
def test_fused_kernel_dot_and_copy(n):
    """With ``prev``, the kernel's inner product is the float64 dot of the two float32
    vectors (to 1e-12) and ``prev`` holds ``x`` afterwards, bit for bit."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g) * 3 + 1
    prev = torch.randn(n, generator=g)
    want_dot = float(np.dot(x.double().numpy(), prev.double().numpy()))
    row = torch.empty(5, dtype=torch.float64)
    dot = torch.empty((), dtype=torch.float64)
    sm.fused_moments(x, None, out=row, prev=prev, dot_out=dot)
    assert dot.item() == pytest.approx(want_dot, rel=1e-12)
    assert torch.equal(prev, x)
    got, _ = sm.finalize_moments(row.numpy()[None], np.array([n]), np.array([True]))
    np.testing.assert_allclose(got[0], np_moments(x.double().numpy()), rtol=1e-12)


def test_fused_many_equals_one_call_per_value():
    """One call for a layer's five values (two with previous values) gives what five
    single-value calls give: the same rows and products (float64 sums, added in another
    order by the generated loops: to 1e-13), the
    previous values overwritten, and the moments within 1e-12 of NumPy float64."""
    n = 70_001
    g = torch.Generator().manual_seed(3)
    xs = [
        torch.randn(n, generator=g) * s + m for s, m in [(1, 0), (1e-3, 5), (7, -2), (1, 1), (2, 0)]
    ]
    prev_a = [torch.randn(n, generator=g) for _ in range(2)]
    prev_b = [p.clone() for p in prev_a]
    shifts = torch.tensor([0.0, 5.0, -2.1, float(xs[3][0]), 0.3], dtype=torch.float64)
    rows = torch.empty(5, 5, dtype=torch.float64)
    dots = torch.empty(2, dtype=torch.float64)
    sm.fused_moments_many(xs, shifts, rows, prev_a, dots)
    for i, x in enumerate(xs):
        row = torch.empty(5, dtype=torch.float64)
        dot = torch.empty((), dtype=torch.float64)
        prev = prev_b[i - 3] if i >= 3 else None
        sm.fused_moments(
            x, shifts[i], out=row, prev=prev, dot_out=dot if prev is not None else None
        )
        torch.testing.assert_close(rows[i], row, rtol=1e-13, atol=0)
        got, _ = sm.finalize_moments(rows[i].numpy()[None], np.array([n]), np.array([True]))
        want = np_moments(x.double().numpy())  # a mean near 0: to 1e-12 of the std
        np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-12 * want[1])
        if prev is not None:
            torch.testing.assert_close(dots[i - 3], dot, rtol=1e-13, atol=0)
            assert torch.equal(prev_a[i - 3], x) and torch.equal(prev, x)


def test_fused_unavailable_falls_back_with_a_warning(monkeypatch):
    """A compile that fails (no C++ compiler) makes ``auto`` take the eager path with one
    warning naming the reason; ``reduce="compiled"`` then refuses with that reason."""
    from gradscope.errors import GradscopeError
    from gradscope.record import reducer

    def broken(*_a, **_k):
        raise RuntimeError("no C++ compiler found\nmore lines")

    monkeypatch.setattr(sm, "_COMPILED", {})
    monkeypatch.setattr(sm, "_AVAILABLE", set())
    monkeypatch.setattr(sm, "_UNAVAILABLE", {})
    monkeypatch.setattr(torch, "compile", broken)
    big = [1 << 21]
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler found"):
        assert not reducer.resolve_backend("auto", big, torch.device("cpu"))
    assert sm.fused_unavailable_reason(torch.device("cpu")) == (
        "RuntimeError: no C++ compiler found"
    )
    with pytest.raises(GradscopeError, match=r"compiled.*no C\+\+ compiler"):
        reducer.resolve_backend("compiled", big, torch.device("cpu"))
    assert not reducer.resolve_backend("eager", big, torch.device("cpu"))


def test_moments_large_layer_cancellation_regression():
    """The case that was 0.5% off: mean 310, std 9.74 over 32,768 coordinates (and the
    stepsize-like fc1 layer of a CNN, mean**2/var ~ 1e3): std now exact to 1e-9."""
    g = torch.Generator().manual_seed(0)
    x = (310.0 + 9.74 * torch.randn(32_768, generator=g)).float()
    for got, _ in (
        pipeline(x, x.numel()),
        segmented_pipeline(x),
        fused_pipeline(x, x.numel(), None),
    ):
        np.testing.assert_allclose(got[1], x.double().std(unbiased=False).item(), rtol=1e-9)


def test_zero_dim_value_broadcasts():
    v, n = torch.tensor(-0.25), 37
    np.testing.assert_allclose(pipeline(v, n)[0], np_moments(np.full(n, -0.25)), rtol=1e-6)
    spec = S.HIST_SPECS["stepsize"]
    h = sm.histogram(v, n, spec).numpy()
    assert h.sum() == n and h[0] == n  # negative -> the "below 2**e_lo" bin of a positive quantity
    h = sm.histogram(torch.tensor(3.0), n, S.HIST_SPECS["grad"]).numpy()
    np.testing.assert_array_equal(
        h, np.bincount(np_bins(np.full(n, 3.0), S.HIST_SPECS["grad"]), minlength=len(h))
    )
    np.testing.assert_array_equal(sm.gather(v, torch.arange(4)).numpy(), [-0.25] * 4)


def test_finite_moments_skip_nonfinite():
    x = torch.randn(200)
    x[[3, 50, 51]] = float("nan")
    x[7] = float("inf")
    got = sm.finite_moments(x, 200).numpy()
    fin = x.double().numpy()[np.isfinite(x.numpy())]
    np.testing.assert_allclose(got[:5], np_moments(fin), rtol=1e-6)
    assert got[5] == pytest.approx(4 / 200)
    allbad = sm.finite_moments(torch.full((5,), float("nan")), 5).numpy()
    assert np.isnan(allbad[:5]).all() and allbad[5] == 1.0


@pytest.mark.parametrize("name", list(S.HIST_SPECS))
def test_histogram_matches_numpy_oracle(name):
    spec = S.HIST_SPECS[name]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=g) * torch.logspace(-14, 8, 5000).float()
    x[:7] = 0.0
    x[7] = -0.0
    x[8:11] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    x[11:15] = torch.tensor([2.0**spec.e_lo, -(2.0**spec.e_lo), 2.0**spec.e_hi, 1e30])
    x[15:18] = torch.tensor([1e-44, -1e-40, 1.5])  # subnormals and an exact edge
    got = sm.histogram(x, x.numel(), spec).numpy()
    want = np.bincount(np_bins(x.numpy(), spec), minlength=spec.n_bins)
    np.testing.assert_array_equal(got, want)
    fast = sm.Histogrammer()
    np.testing.assert_array_equal(fast(x, x.numel(), spec).numpy(), want)
    np.testing.assert_array_equal(
        fast(x[:100].reshape(10, 10), 100, spec).numpy(),
        np.bincount(np_bins(x[:100].numpy(), spec), minlength=spec.n_bins),
    )
    assert got.sum() == x.numel()
    assert got[-1] == 3


def test_histogram_bins_match_edges():
    """The finite bins are exactly the intervals between consecutive stored edges."""
    spec = S.HIST_SPECS["grad"]
    edges = spec.edges()
    mids = np.concatenate([[edges[1] * 2], (edges[1:-2] + edges[2:-1]) / 2, [edges[-2] * 2]])
    idx = sm.hist_bins(torch.from_numpy(mids.astype(np.float32)), spec).numpy()
    np.testing.assert_array_equal(idx, np.arange(len(mids)))


def test_histograms_add_across_steps():
    spec = S.HIST_SPECS["update"]
    xs = [torch.randn(777) * 10.0**-k for k in range(4)]
    total = sum(sm.histogram(x, x.numel(), spec) for x in xs)
    np.testing.assert_array_equal(total.numpy(), sm.histogram(torch.cat(xs), 4 * 777, spec).numpy())


def test_gather():
    x = torch.randn(4, 5)
    ix = torch.tensor([0, 7, 19])
    np.testing.assert_array_equal(sm.gather(x, ix).numpy(), x.reshape(-1)[ix].numpy())


def test_segmented_equals_per_layer():
    """Small layers reduced together give the per-layer rows and counts exactly (min, max,
    histograms) or to float32 rounding (sums); non-finite layers stay non-finite."""
    vals = [
        torch.randn(7),
        torch.randn(3, 4) * 1e-3,
        torch.rand(20, dtype=torch.float64) + 1,  # converted to float32 like the per-layer path
        torch.tensor([float("nan"), 1.0]),
        torch.tensor([float("inf"), -2.0, 0.0]),
        torch.tensor([5.0]),
        torch.randn(8, 2).t(),  # non-contiguous
    ]
    lengths = torch.tensor([v.numel() for v in vals])
    rows, flat = sm.segmented_moments(vals, lengths)
    ref = torch.stack([sm.raw_moments(v, v.numel()) for v in vals])
    assert flat.dtype == torch.float32 and flat.numel() == int(lengths.sum())
    n, present = lengths.numpy(), np.ones(len(vals), bool)
    seg, seg_redo = sm.finalize_moments(rows.numpy(), n, present)
    per, per_redo = sm.finalize_moments(ref.numpy(), n, present)
    np.testing.assert_array_equal(seg_redo, per_redo)
    np.testing.assert_array_equal(seg_redo, [False, False, False, True, True, False, False])
    np.testing.assert_allclose(seg[~seg_redo], per[~per_redo], rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(rows[:, 3:].numpy(), ref[:, 3:].numpy())  # extremes exact
    hist = sm.Histogrammer()
    for spec in S.HIST_SPECS.values():
        seg = hist.segmented(flat, lengths, spec)
        per = torch.stack([hist(v, v.numel(), spec) for v in vals])
        assert torch.equal(seg, per)
        assert torch.equal(seg.sum(1), lengths)


def test_scatter_count_equals_bincount():
    """The accelerator's counting (fixed-size index_add_, no host sync) equals bincount."""
    g = torch.Generator().manual_seed(3)
    for n, size in ((2048, 10_000), (5 * 2048, 3), (7, 0)):
        key = torch.randint(0, n, (size,), generator=g, dtype=torch.int32)
        want = torch.bincount(key, minlength=n)
        assert torch.equal(sm.scatter_count(key, n), want)
        assert torch.equal(sm.count_keys(key, n), want)


def test_histograms_through_the_accelerator_count(monkeypatch):
    """Forcing the no-sync count on the CPU, per-layer and segmented histograms still equal
    the reference binning (what runs on CUDA, checked where no GPU is lent)."""
    monkeypatch.setattr(sm, "count_keys", sm.scatter_count)
    vals = [
        torch.randn(300) * 10.0 ** torch.randint(-30, 5, (300,)),
        torch.rand(40),
        torch.randn(5),
    ]
    vals[0][7] = float("nan")
    lengths = torch.tensor([v.numel() for v in vals])
    _, flat = sm.segmented_moments(vals, lengths)
    hist = sm.Histogrammer()
    for spec in S.HIST_SPECS.values():
        ref = torch.stack([sm.histogram(v, v.numel(), spec) for v in vals])
        assert torch.equal(torch.stack([hist(v, v.numel(), spec) for v in vals]), ref)
        assert torch.equal(hist.segmented(flat, lengths, spec), ref)
