"""merge_ranks: per-rank files of one run read as one run through HDF5 virtual datasets."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from gradscope.errors import RunFileError
from gradscope.runfile import RunFile, RunWriter, merge_ranks
from gradscope.runfile import schema as S
from tests.helpers.runfiles import make_layout, make_row


def rank_layout(**kw) -> S.Layout:
    return dataclasses.replace(make_layout(), sample_quantities=("grad",), **kw)


def write_rank(
    path: Path, rank: int, world: int = 2, steps: int = 7, layout: S.Layout | None = None
) -> Path:
    """A rank file: the same (all-reduced) numbers on every rank, a per-rank loss."""
    lay = layout or rank_layout()
    rng = np.random.default_rng(0)  # identical statistics on every rank, as under DDP
    w = RunWriter(path, lay, {"rank": rank, "world_size": world, "seed": 1}, block=3)
    for t in range(1, steps + 1):
        row = make_row(lay, t, rng, with_hist=t % 2 == 1)
        w.write_summary(dataclasses.replace(row, loss=float(t + 10 * rank)))
        w.write_samples(t, {q: rng.standard_normal(11).astype(np.float32) for q in ("grad",)})
        if t == 2:
            w.write_full(t, {"grad": [rng.standard_normal(x.numel) for x in lay.layers]})
    w.close()
    return path


@pytest.fixture
def ranks(tmp_path):
    return [write_rank(tmp_path / f"run.rank{r:05d}.h5", r) for r in (0, 1)]


def test_merged_reads_rank0_and_per_rank_losses(ranks, tmp_path):
    out = merge_ranks(list(reversed(ranks)), tmp_path / "out" / "run.merged.h5")
    with h5py.File(out) as f:  # virtual, not copied
        for name in ("stats/grad", "hist/update", "cosine/grad", "samples/grad", "ranks/loss"):
            assert f[name].is_virtual, name
        assert {s.file_name for s in f["stats/grad"].virtual_sources()} == {"../run.rank00000.h5"}
    with RunFile(out) as m, RunFile(ranks[0]) as r0:
        assert m.layers == r0.layers and m.shapes == r0.shapes
        np.testing.assert_array_equal(m.steps, r0.steps)
        for q in m.quantities:
            np.testing.assert_array_equal(m.summary(q, "mean"), r0.summary(q, "mean"))
            np.testing.assert_array_equal(m.histogram(q), r0.histogram(q))  # not summed
            assert m.hist_spec(q) == r0.hist_spec(q)
        np.testing.assert_array_equal(m.cosine("grad"), r0.cosine("grad"))
        np.testing.assert_array_equal(m.lr, r0.lr)
        np.testing.assert_array_equal(m.hist_recorded, r0.hist_recorded)
        np.testing.assert_array_equal(m.subsample("grad", 0), r0.subsample("grad", 0))
        np.testing.assert_array_equal(m.full("grad", 2), r0.full("grad", 2))
        assert m.sample_quantities == ["grad"]
        assert m.metadata["merged"]["ranks"] == [0, 1]
        t = np.arange(1, 8, dtype=float)
        np.testing.assert_array_equal(m.loss, t + 5.0)  # mean of t and t + 10
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["ranks/loss"][()], np.stack([t, t + 10], axis=1))


def test_relative_sources_survive_a_move(ranks, tmp_path):
    merge_ranks(ranks, tmp_path / "run.merged.h5")
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    shutil.move(tmp_path, moved)
    try:
        with RunFile(moved / "run.merged.h5") as m, RunFile(moved / "run.rank00000.h5") as r0:
            np.testing.assert_array_equal(m.summary("grad", "norm"), r0.summary("grad", "norm"))
    finally:
        shutil.move(moved, tmp_path)


def test_merged_file_without_its_rank_files_is_an_error_not_fill_values(ranks, tmp_path):
    out = merge_ranks(ranks, tmp_path / "out" / "run.merged.h5")
    alone = tmp_path / "a" / "b" / "run.merged.h5"  # ../run.rank*.h5 is not there
    alone.parent.mkdir(parents=True)
    shutil.copy(out, alone)
    with pytest.raises(RunFileError, match="rank files are missing"):
        RunFile(alone)


def test_common_rows_up_to_the_shortest(tmp_path):
    a = write_rank(tmp_path / "a.rank00000.h5", 0, steps=7)
    b = write_rank(tmp_path / "a.rank00001.h5", 1, steps=4)
    with RunFile(merge_ranks([a, b], tmp_path / "m.h5")) as m:
        assert m.n_rows == 4
        np.testing.assert_array_equal(m.steps, [1, 2, 3, 4])
        assert m.summary("grad", "mean").shape == (4, 3)


def test_incompatible_files_are_refused(tmp_path):
    a = write_rank(tmp_path / "a.rank00000.h5", 0)
    other = rank_layout(layers=(*make_layout().layers[:2], S.LayerInfo("x", (2, 3), 1, 2, 2)))
    cases = {
        "layers differ": write_rank(tmp_path / "b.h5", 1, layout=other),
        "rank 0 again": write_rank(tmp_path / "c.h5", 0),
        "world_size": write_rank(tmp_path / "d.h5", 1, world=4),
        "no such run file": tmp_path / "missing.h5",
    }
    for msg, b in cases.items():
        with pytest.raises(RunFileError, match=msg):
            merge_ranks([a, b], tmp_path / "m.h5")
    with h5py.File(tmp_path / "v2.h5", "w") as f:
        f.attrs["format"], f.attrs["format_version"] = S.FORMAT, 99
    with pytest.raises(RunFileError, match="schema version 99"):
        merge_ranks([a, tmp_path / "v2.h5"], tmp_path / "m.h5")
    with pytest.raises(RunFileError, match="no rank files"):
        merge_ranks([], tmp_path / "m.h5")


def test_different_steps_are_refused(tmp_path):
    lay = rank_layout()
    a = write_rank(tmp_path / "a.rank00000.h5", 0, layout=lay)
    w = RunWriter(tmp_path / "a.rank00001.h5", lay, {"rank": 1, "world_size": 2})
    rng = np.random.default_rng(0)
    for t in (1, 3):
        w.write_summary(make_row(lay, t, rng, with_hist=False))
    w.close()
    with pytest.raises(RunFileError, match="summary row 1 is step 3"):
        merge_ranks([a, tmp_path / "a.rank00001.h5"], tmp_path / "m.h5")


@pytest.mark.slow
def test_merge_real_gloo_rank_files(tmp_path):
    """Two gloo processes with per_rank=True (tests/test_record/record_child.py)."""
    from tests.helpers.processes import free_port, spawn

    port = free_port()
    procs = [spawn("ddp", tmp_path / "ddp.h5", rank, 2, port) for rank in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    files = sorted(tmp_path.glob("per_rank.rank*.h5"))
    out = merge_ranks(files, tmp_path / "rep" / "per_rank.merged.h5")
    with RunFile(out) as m, RunFile(files[0]) as r0:
        assert m.layers == r0.layers == ["0.weight", "0.bias", "2.weight", "2.bias"]
        np.testing.assert_array_equal(m.steps, [1, 2, 3])
        for q in m.quantities:
            np.testing.assert_array_equal(m.summary(q, "norm"), r0.summary(q, "norm"))
            np.testing.assert_array_equal(m.histogram(q), r0.histogram(q))
        np.testing.assert_array_equal(m.subsample("grad", 0), r0.subsample("grad", 0))
        assert m.metadata["merged"]["ranks"] == [0, 1] and m.metadata["world_size"] == 2
    with h5py.File(out) as f:
        assert f["ranks/loss"].shape == (3, 2)  # these recorders got no loss: NaN
