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
    raw = sm.raw_moments(x, n).double().numpy()[None]
    out, redo = sm.finalize_moments(raw, np.array([n]), np.array([True]))
    if redo[0]:
        out[0] = sm.finite_moments(x, n).numpy()[:5]
    return out[0], bool(redo[0])


@pytest.mark.parametrize(
    ("x", "flagged"),
    [
        (torch.randn(1000) * 1e-3, False),
        (torch.randn(64, 32) * 5 + 1, False),
        (1.0 + 1e-5 * torch.randn(512), True),  # BatchNorm-like: |mean| >> std
        (torch.rand(300) * 1e-6, False),
        (torch.tensor([3.0]), True),  # std 0: all cancellation
    ],
    ids=["gauss", "offset", "bn", "tiny", "single"],
)
def test_moments_match_numpy(x, flagged):
    got, redo = pipeline(x, x.numel())
    assert redo == flagged
    want = np_moments(x.double().numpy())
    # The mean cancels (its size can be anything below the coordinates' own): a float32 sum
    # is exact to a few ulps of sum|x|, so its error is bounded relative to mean|x|.
    scale = float(np.abs(x.double().numpy()).mean())
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-6 * scale + 1e-30)
    np.testing.assert_allclose(got[[2, 3, 4]], want[[2, 3, 4]], rtol=2e-6, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-12)


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
    torch.testing.assert_close(rows[:, 2:], ref[:, 2:], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(rows[:, :2], ref[:, :2], rtol=1e-6, atol=0, equal_nan=True)
    assert torch.isnan(rows[3]).all() and not torch.isfinite(rows[4, :2]).any()
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
