"""Run-file writer and reader: round trip, flushing, SWMR, and every way a file can be bad."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradscope.errors import MissingDataError, RunFileError
from gradscope.runfile import RunFile, RunWriter
from gradscope.runfile import schema as S
from tests.helpers.runfiles import make_layout, make_row

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip(tmp_path):
    lay, rng = make_layout(), np.random.default_rng(0)
    path = tmp_path / "run.h5"
    rows, samples, fulls = [], [], []
    w = RunWriter(path, lay, {"tags": {"who": "me"}, "seed": 3}, block=4)
    for t in range(1, 12):
        rows.append(make_row(lay, t, rng, with_hist=t % 3 == 0))
        w.write_summary(rows[-1])
        samples.append(
            {q: rng.standard_normal(11).astype(np.float32) for q in lay.sample_quantities}
        )
        w.write_samples(t, samples[-1])
        if t % 5 == 0:
            fulls.append((t, [rng.standard_normal(x.shape).astype(np.float32) for x in lay.layers]))
            w.write_full(t, {"grad": fulls[-1][1]})
    w.close()
    with RunFile(path) as run:
        assert run.layers == ["fc1.weight", "fc1.bias", "out.weight"]
        assert run.shapes["fc1.weight"] == (3, 4)
        np.testing.assert_array_equal(run.sizes, [12, 3, 6])
        np.testing.assert_array_equal(run.groups, [0, 0, 1])
        assert run.metadata == {"tags": {"who": "me"}, "seed": 3}
        np.testing.assert_array_equal(run.steps, np.arange(1, 12))
        np.testing.assert_array_equal(run.loss, [r.loss for r in rows])
        np.testing.assert_array_equal(run.lr, np.stack([r.lr for r in rows]))
        np.testing.assert_array_equal(run.wall_time, [r.wall_time for r in rows])
        np.testing.assert_array_equal(run.hist_recorded, [t % 3 == 0 for t in range(1, 12)])
        for q in lay.quantities:
            for j, stat in enumerate(S.STATS):
                want = np.stack([r.stats[q][:, j] for r in rows])
                np.testing.assert_array_equal(run.summary(q, stat), want)
                np.testing.assert_array_equal(run.summary(q, stat, "fc1.bias"), want[:, 1])
            h = run.histogram(q)
            for i, r in enumerate(rows):
                np.testing.assert_array_equal(h[i], r.hist[q] if r.hist else 0)
            np.testing.assert_array_equal(run.hist_edges(q), lay.hist_specs[q].edges())
            assert run.hist_spec(q) == lay.hist_specs[q]
        for q in S.COSINE_QUANTITIES:
            np.testing.assert_array_equal(run.cosine(q), np.stack([r.cosine[q] for r in rows]))
        np.testing.assert_array_equal(run.sample_steps, np.arange(1, 12))
        np.testing.assert_array_equal(run.sample_index("fc1.weight"), [1, 5, 7])
        np.testing.assert_array_equal(run.sample_index(1), [0, 2])
        got = run.subsample("update", "fc1.bias")
        np.testing.assert_array_equal(got, np.stack([s["update"][3:5] for s in samples]))
        np.testing.assert_array_equal(run.full_steps, [5, 10])
        np.testing.assert_array_equal(run.full("grad", "out.weight")[1], fulls[1][1][2])
        chunks = list(run.iter_summary("grad", "norm", chunk=4))
        assert [len(s) for s, _ in chunks] == [4, 4, 3]
        np.testing.assert_array_equal(
            np.concatenate([v for _, v in chunks]), run.summary("grad", "norm")
        )
        with pytest.raises(MissingDataError):
            run.summary("grad", "mean", "nope")
        with pytest.raises(MissingDataError):
            run.full("update", 0)
        with pytest.raises(KeyError):
            run.summary("grad", "median")
    # readable with plain h5py, and /step is a dimension scale
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == S.FORMAT
        assert f["stats/grad"].shape == (11, 3, len(S.STATS))
        assert f["stats/grad"].dims[0][0].name == "/step"
        assert f["stats/grad"].chunks[0] == 4


def test_flush_makes_rows_visible_and_close_writes_partial_block(tmp_path):
    lay, rng = make_layout(full=()), np.random.default_rng(1)
    path = tmp_path / "run.h5"
    w = RunWriter(path, lay, {}, block=8, live=True)
    for t in range(1, 4):
        w.write_summary(make_row(lay, t, rng, False))
    w.flush()
    with RunFile(path, swmr=True) as run:
        assert run.n_rows == 3
        for t in range(4, 6):
            w.write_summary(make_row(lay, t, rng, False))
        w.flush()
        run.refresh()
        assert run.n_rows == 5
    w.write_summary(make_row(lay, 6, rng, False))
    w.close()
    w.close()  # idempotent
    with RunFile(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(1, 7))
    with pytest.raises(RunFileError, match="closed"):
        w.write_summary(make_row(lay, 7, rng, False))


def test_time_based_flush(tmp_path):
    lay, rng = make_layout(full=()), np.random.default_rng(2)
    path = tmp_path / "run.h5"
    w = RunWriter(path, lay, {}, block=1000, flush_seconds=0.2, live=True)
    w.write_summary(make_row(lay, 1, rng, False))
    deadline = time.monotonic() + 5
    n = 0
    while time.monotonic() < deadline and n == 0:
        time.sleep(0.1)
        with RunFile(path, swmr=True) as run:
            n = run.n_rows
    w.close()
    assert n == 1


def test_existing_path_refused_unless_overwrite(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RunFileError, match="overwrite=True"):
        RunWriter(path, make_layout(), {})
    assert path.read_bytes() == b"precious"
    RunWriter(path, make_layout(), {}, overwrite=True).close()
    assert RunFile(path).n_rows == 0


def test_unwritable_path_raises_runfile_error(tmp_path):
    with pytest.raises(RunFileError, match="cannot create"):
        RunWriter(tmp_path / "no" / "such" / "dir" / "run.h5", make_layout(), {})


def test_writer_thread_error_reraised_on_next_call(tmp_path, monkeypatch):
    lay, rng = make_layout(full=()), np.random.default_rng(3)
    w = RunWriter(tmp_path / "run.h5", lay, {}, block=2)

    def boom(rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w, "_write_summary_block", boom)
    w.write_summary(make_row(lay, 1, rng, False))
    w.write_summary(make_row(lay, 2, rng, False))
    with pytest.raises(RunFileError, match="No space left"):
        w.flush()
    with pytest.raises(RunFileError):
        w.write_summary(make_row(lay, 3, rng, False))
    with pytest.raises(RunFileError):
        w.close()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.write_text("step,loss\n1,2\n"), id="text"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: h5py.File(p, "w").close(), id="foreign-hdf5"),
    ],
)
def test_bad_files_raise_runfile_error(tmp_path, make):
    path = tmp_path / "bad.h5"
    make(path)
    with pytest.raises(RunFileError, match=str(path.name)):
        RunFile(path)


def test_missing_file(tmp_path):
    with pytest.raises(RunFileError, match="no such"):
        RunFile(tmp_path / "absent.h5")
    assert issubclass(RunFileError, OSError)


def test_other_schema_version(tmp_path):
    path = tmp_path / "run.h5"
    RunWriter(path, make_layout(), {}).close()
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = S.FORMAT_VERSION + 1
    with pytest.raises(RunFileError, match="schema version"):
        RunFile(path)


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_file(tmp_path, keep):
    lay, rng = make_layout(), np.random.default_rng(4)
    path = tmp_path / "run.h5"
    w = RunWriter(path, lay, {}, block=4)
    for t in range(1, 40):
        w.write_summary(make_row(lay, t, rng, True))
    w.close()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(RunFileError):
        with RunFile(path) as run:  # may open if the superblock survives; reading must fail
            run.summary("grad", "mean")
            run.histogram("param")


def test_corrupt_metadata_is_runfile_error(tmp_path):
    path = tmp_path / "run.h5"
    RunWriter(path, make_layout(), {}).close()
    with h5py.File(path, "r+") as f:
        del f["layers/numel"]
    with pytest.raises(RunFileError, match="numel is missing"):
        RunFile(path)


@pytest.mark.slow
def test_live_reader_sees_growing_file(tmp_path):
    """A SWMR reader in this process follows a writer in another one."""
    path = tmp_path / "live.h5"
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_runfile import make_layout, make_row
        from gradscope.runfile import RunWriter
        lay, rng = make_layout(full=()), np.random.default_rng(0)
        w = RunWriter({str(path)!r}, lay, {{}}, block=2, live=True)
        print("open", flush=True)
        for t in range(1, 41):
            w.write_summary(make_row(lay, t, rng, t % 2 == 0))
            time.sleep(0.05)
        w.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        counts = []
        with RunFile(path, swmr=True) as run:
            while proc.poll() is None and len(counts) < 200:
                run.refresh()
                counts.append(run.n_rows)
                steps = run.steps
                np.testing.assert_array_equal(steps, np.arange(1, len(steps) + 1))
                time.sleep(0.1)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    distinct = sorted(set(counts))
    assert len(distinct) >= 3, counts  # saw the file grow while it was written
    assert counts == sorted(counts)
    with RunFile(path) as run:
        assert run.n_rows == 40


def test_histspec_edges_exact_and_ordered():
    for spec in S.HIST_SPECS.values():
        e = spec.edges()
        assert len(e) == spec.n_bins  # n_bins - 1 finite bins + the non-finite bin
        assert np.all(np.diff(e) > 0)
        mag = spec.magnitude_edges()
        assert mag[0] == 2.0**spec.e_lo and mag[-1] == 2.0**spec.e_hi
        assert np.all(mag.astype(np.float32).astype(np.float64) == mag)  # exact float32


def test_quantiles_from_histogram_bracket_numpy():
    rng = np.random.default_rng(5)
    spec = S.HIST_SPECS["grad"]
    edges = spec.edges()
    x = rng.standard_normal(5001) * 1e-3
    counts = np.histogram(x, bins=edges[1:-1])[0]  # finite interior bins
    below, above = np.sum(x < edges[1]), np.sum(x >= edges[-2])
    full = np.concatenate([[below], counts, [above], [0]])
    assert full.sum() == x.size
    est = S.quantiles_from_histogram(full, spec)
    for q, e in zip(S.QUANTILE_LEVELS, est):
        true = np.quantile(x, q, method="lower")
        b = np.searchsorted(edges, true, side="right") - 1
        assert edges[b] <= e <= edges[b + 1]
    assert np.all(np.isnan(S.quantiles_from_histogram(np.zeros(spec.n_bins), spec)))


def test_corrupt_bytes_raise_runfile_error_on_open_or_read(tmp_path):
    lay, rng = make_layout(), np.random.default_rng(6)
    path = tmp_path / "run.h5"
    w = RunWriter(path, lay, {}, block=4)
    for t in range(1, 40):
        w.write_summary(make_row(lay, t, rng, True))
    w.close()
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 4, len(data) // 2, 7):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RunFileError):
        with RunFile(path) as run:
            for q in run.quantities:
                run.histogram(q)
                run.summary(q, "mean")


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    block=st.integers(1, 5),
    hist_pattern=st.lists(st.booleans(), min_size=1, max_size=13),
    flush_at=st.sets(st.integers(0, 12), max_size=3),
)
def test_round_trip_any_block_and_flush_pattern(tmp_path_factory, block, hist_pattern, flush_at):
    """Whatever the block size and flush points, the reader returns exactly what was written."""
    lay, rng = make_layout(full=()), np.random.default_rng(len(hist_pattern))
    path = tmp_path_factory.mktemp("rt") / "run.h5"
    w = RunWriter(path, lay, {}, block=block)
    rows = []
    for t, with_hist in enumerate(hist_pattern, start=1):
        rows.append(make_row(lay, t, rng, with_hist))
        w.write_summary(rows[-1])
        if t - 1 in flush_at:
            w.flush()
    w.close()
    with RunFile(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(1, len(rows) + 1))
        np.testing.assert_array_equal(run.hist_recorded, hist_pattern)
        for q in ("grad", "stepsize"):
            np.testing.assert_array_equal(
                run.summary(q, "q50"), [r.stats[q][:, S.stat_index("q50")] for r in rows]
            )
            h = run.histogram(q, "out.weight")
            for i, r in enumerate(rows):
                np.testing.assert_array_equal(h[i], r.hist[q][2] if r.hist else 0)
