"""The recorder across processes: SIGKILL, live (SWMR) reading, DDP on gloo."""

from __future__ import annotations

import signal
import time

import h5py
import numpy as np
import pytest

from gradscope.runfile import RunFile
from tests.helpers.processes import free_port, spawn

pytestmark = pytest.mark.slow  # starts other Python processes


@pytest.mark.parametrize("mode", ["kill", "kill-live"])
def test_sigkill_leaves_readable_file_with_flushed_steps(tmp_path, mode):
    path = tmp_path / "run.h5"
    proc = spawn(mode, path)
    try:
        line = proc.stdout.readline().strip()
        assert line == "flushed 12", proc.stderr.read()
        time.sleep(0.3)  # keep training (and writing) for a while, then kill mid-flight
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    with RunFile(path) as run:  # a crashed SWMR file needs the SWMR fallback
        n = run.n_rows
        assert n >= 12
        np.testing.assert_array_equal(run.steps, np.arange(1, n + 1))
        assert np.isfinite(run.summary("grad", "norm")).all()
        assert np.isfinite(run.loss).all()
        assert run.subsample("grad", 0).shape[0] >= 12
    if mode == "kill":  # default libver: plain h5py opens the crashed file too
        with h5py.File(path, "r") as f:
            assert f["step"].shape[0] == n


def test_live_reader_follows_training(tmp_path):
    path = tmp_path / "live.h5"
    proc = spawn("live", path)
    try:
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        counts = []
        with RunFile(path, swmr=True) as run:
            while proc.poll() is None and time.monotonic() < deadline:
                run.refresh()
                counts.append(run.n_rows)
                time.sleep(0.1)
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert counts == sorted(counts)
    assert len(set(counts)) >= 3, counts
    with RunFile(path) as run:
        assert run.n_rows == 60


def test_ddp_gloo_rank0_records_and_per_rank_files(tmp_path):
    path = tmp_path / "ddp.h5"
    port = free_port()
    procs = [spawn("ddp", path, rank, 2, port) for rank in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "ddp.h5",
        "per_rank.rank00000.h5",
        "per_rank.rank00001.h5",
    ]
    with RunFile(path) as run:
        assert run.metadata["rank"] == 0 and run.metadata["world_size"] == 2
        assert run.layers == ["0.weight", "0.bias", "2.weight", "2.bias"]  # "module." unwrapped
        np.testing.assert_array_equal(run.steps, [1, 2, 3])
        assert np.isfinite(run.loss).all()
        g0 = run.summary("grad", "norm")
    r0, r1 = (
        RunFile(tmp_path / "per_rank.rank00000.h5"),
        RunFile(tmp_path / "per_rank.rank00001.h5"),
    )
    assert r1.metadata["rank"] == 1
    # gradients are all-reduced before the step: identical on both ranks
    np.testing.assert_allclose(r0.summary("grad", "norm"), r1.summary("grad", "norm"), rtol=1e-6)
    np.testing.assert_allclose(r0.summary("grad", "norm"), g0, rtol=1e-6)
    np.testing.assert_allclose(r0.summary("param", "mean"), r1.summary("param", "mean"), rtol=1e-6)
