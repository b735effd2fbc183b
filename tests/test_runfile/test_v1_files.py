"""Version 1 run files (written by gradscope 0.1 before the schema gained the optimizer's
own t, per-row hyperparameters and the zero counts) still open and read sensibly."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from typer.testing import CliRunner

from gradscope.cli import app
from gradscope.runfile import RunFile
from gradscope.runfile import schema as S

V1 = Path(__file__).parent.parent / "data" / "v1_run.h5"


def test_v1_file_reads_with_fallbacks():
    with h5py.File(V1) as f:
        assert int(f.attrs["format_version"]) == 1
        raw_std = f["stats/grad"][:, :, 1]
        raw_q50 = f["stats/stepsize"][:, :, S.STATS_V1.index("q50")]
    with RunFile(V1) as run:
        assert run.version == 1
        np.testing.assert_array_equal(run.steps, np.arange(1, 7))
        np.testing.assert_array_equal(run.recorder_steps, run.steps)
        np.testing.assert_array_equal(run.layer_steps(), np.tile(run.steps[:, None], (1, 4)))
        # columns are read by name through the file's own list of statistics
        np.testing.assert_array_equal(run.summary("grad", "std"), raw_std)
        np.testing.assert_array_equal(run.summary("stepsize", "q50"), raw_q50)
        assert np.isnan(run.summary("exp_avg_sq", "zeros")).all()
        assert np.isnan(run.eps_dominated()).all()
        # hyperparameters come from the metadata's param groups (constant over rows)
        assert {"lr", "betas.0", "betas.1", "eps"} <= set(run.hparam_names)
        np.testing.assert_array_equal(run.hparam("betas.0"), np.tile([0.9, 0.8], (6, 1)))
        np.testing.assert_array_equal(run.layer_hparam("betas.1")[0], [0.999, 0.999, 0.99, 0.99])


def test_v1_file_info_and_analyze_exit_zero(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["info", str(V1)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["analyze", str(V1), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
