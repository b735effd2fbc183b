"""xarray (engine="h5netcdf") opens every group of a run file, with the same numbers as
RunFile; the long-format pandas table holds every summary value once."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gradscope.errors import MissingDataError
from gradscope.runfile import RunFile
from tests.helpers.runs import synthetic_run

xr = pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return synthetic_run(
        tmp_path_factory.mktemp("xr") / "run.h5", names=("a.w", "a.b", "b.w"), steps=6
    )


def test_plain_xarray_opens_every_group(run_path):
    with h5py.File(run_path) as f:
        groups = ["/", *(k for k in f if isinstance(f[k], h5py.Group))]
    assert {"stats", "cosine", "hist", "samples", "layers"} <= set(groups)
    for g in groups:
        with xr.open_dataset(run_path, engine="h5netcdf", group=g) as ds:
            for v in ds.data_vars.values():
                assert all(isinstance(d, str) for d in v.dims)
    with xr.open_dataset(run_path, engine="h5netcdf", group="stats") as ds:
        assert ds["grad"].dims == ("step", "layer", "stat")
    with xr.open_dataset(run_path, engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["step"].values, np.arange(1, 7))
        assert ds["loss"].dims == ("step",)


def test_to_xarray_labels_and_values_match_runfile(run_path):
    with RunFile(run_path) as run:
        ds = run.to_xarray("stats")
        assert list(ds["layer"].values) == ["a.w", "a.b", "b.w"]
        assert list(ds["stat"].values) == list(run.stats)
        np.testing.assert_array_equal(ds["step"].values, np.arange(1, 7))
        samples = run.to_xarray("samples")
        np.testing.assert_array_equal(samples["step"].values, run.sample_steps)
        samples.close()
        got = ds["stepsize"].sel(stat="mean").values
        np.testing.assert_array_equal(got, run.summary("stepsize", "mean"))
        cos = run.to_xarray("cosine")["grad"].sel(layer="b.w").values
        np.testing.assert_array_equal(cos, run.cosine("grad")[:, 2])
        ds.close()


def test_summaries_frame_long_format(run_path):
    with RunFile(run_path) as run:
        df = run.summaries_frame(["grad", "stepsize"], ["mean", "std"])
        assert list(df.columns) == ["step", "layer", "quantity", "stat", "value"]
        assert len(df) == 6 * 3 * 2 * 2
        row = df[(df.step == 4) & (df.layer == "a.b") & (df.quantity == "stepsize")]
        v = row[row.stat == "std"].value.item()
        assert v == run.summary("stepsize", "std")[3, 1]


def test_file_without_scales_is_one_clear_error(run_path, tmp_path):
    old = tmp_path / "old.h5"
    with h5py.File(run_path) as src, h5py.File(old, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for k in src:
            if k != "layer":
                src.copy(k, dst)
    with RunFile(old) as run, pytest.raises(MissingDataError, match="no dimension scales"):
        run.to_xarray()
