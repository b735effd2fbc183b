"""Writes that fail are seen: a real full disk (a 2 MiB tmpfs), an injected I/O error, a
second writer on the same path, and a failed creation that must leave the old file."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from gradscope.errors import RunFileError
from gradscope.runfile import RunFile, RunWriter
from tests.test_runfile.test_runfile import make_layout, make_row

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpfs(tmp_path):
    """A real 2 MiB tmpfs (CI runs as root); skipped where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or 'not root'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


CHILD = textwrap.dedent(
    """
    import sys, warnings
    import torch
    from torch import nn
    from gradscope.errors import RunFileError
    from gradscope.record import Recorder

    torch.manual_seed(0)
    strict = sys.argv[2] == "1"
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(32, 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Recorder(model, opt, sys.argv[1], strict=strict, flush_every=8, hist_every="same",
                          sample_every="same") as rec:
                for t in range(1, 301):
                    opt.zero_grad()
                    loss = model(x).pow(2).mean()
                    loss.backward()
                    opt.step()
            print("finished")
        except RunFileError as exc:
            print("raised at step", t, ":", exc)
    ours = [w for w in caught if "gradscope" in str(w.message)]
    print("warnings", len(ours))
    for w in ours:
        print("warning:", w.message)
    """
)


def _check_published_rows(path: Path) -> int:
    """Every row the file claims holds real data; return the row count."""
    with RunFile(path) as run:
        n = run.n_rows
        assert np.array_equal(run.steps, np.arange(1, n + 1))
        assert np.all(run.wall_time > 0)
        for q in run.quantities:
            assert np.all(run.histogram(q).sum(axis=2) == run.sizes), q
        for layer in run.layers:
            x = run.subsample("grad", layer)
            assert x.shape[0] == len(run.sample_steps)
            assert np.all(np.any(x != 0, axis=1)), "a published subsample row is all zeros"
    return n


@pytest.mark.slow
@pytest.mark.parametrize("strict", [False, True])
def test_full_disk_warns_once_or_raises_and_keeps_only_complete_rows(tmpfs, strict):
    path = tmpfs / "run.h5"
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "1" if strict else "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]  # no crash at exit (it was SIGSEGV)
    assert "Exception ignored" not in res.stderr, res.stderr[-2000:]
    if strict:
        assert "raised at step" in res.stdout and "No space left on device" in res.stdout
    else:
        assert "finished" in res.stdout
        assert "warnings 1" in res.stdout, res.stdout
        assert "No space left on device" in res.stdout
    n = _check_published_rows(path)
    assert 1 <= n < 300  # the disk filled before the end; the rows it kept are whole
    assert sorted(p.name for p in tmpfs.iterdir()) == ["run.h5"]  # no temporary file left


def _fill(mnt: Path) -> None:
    with (mnt / "filler").open("wb") as fh, pytest.raises(OSError) as info:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    assert info.value.errno == errno.ENOSPC


def test_creation_on_a_full_disk_leaves_no_file_and_keeps_the_old_one(tmpfs):
    old = tmpfs / "old.h5"
    w = RunWriter(old, make_layout(), {})
    rng = np.random.default_rng(0)
    for t in range(1, 5):
        w.write_summary(make_row(w.layout, t, rng, True))
    w.close()
    _fill(tmpfs)
    new = tmpfs / "new.h5"
    with pytest.raises(RunFileError, match="No space left on device"):
        RunWriter(new, make_layout(), {"tags": {"x": "y" * 100_000}})
    assert not new.exists()
    with pytest.raises(RunFileError, match="No space left on device"):
        RunWriter(old, make_layout(), {"tags": {"x": "y" * 100_000}}, overwrite=True)
    with RunFile(old) as run:  # the old file is intact
        assert list(run.steps) == [1, 2, 3, 4]
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler", "old.h5"]


def test_an_injected_write_error_raises_and_the_file_keeps_whole_blocks(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    lay, rng = make_layout(), np.random.default_rng(1)
    w = RunWriter(path, lay, {}, block=4)
    rows = [make_row(lay, t, rng, True) for t in range(1, 21)]
    for r in rows[:8]:
        w.write_summary(r)
    w.flush()
    calls = {"n": 0}
    setitem = h5py.Dataset.__setitem__

    def failing(self, key, value):
        calls["n"] += 1
        if calls["n"] == 3:  # in the middle of the third block's data
            raise OSError(errno.EIO, "Input/output error")
        return setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    with pytest.raises(RunFileError, match="Input/output error"):
        for r in rows[8:]:
            w.write_summary(r)
        w.flush()
    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    with pytest.raises(RunFileError):
        w.close()
    with RunFile(path) as run:
        assert list(run.steps) == list(range(1, 9))  # the two flushed blocks, nothing torn
        np.testing.assert_array_equal(
            run.summary("grad", "mean"), np.stack([r.stats["grad"][:, 0] for r in rows[:8]])
        )


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from gradscope.runfile import RunWriter
    from tests.test_runfile.test_runfile import make_layout, make_row
    lay, rng = make_layout(), np.random.default_rng(0)
    w = RunWriter(sys.argv[1], lay, {}, block=2, live=sys.argv[2] == "1")
    w.flush()
    print("ready", flush=True)
    for t in range(1, 41):
        w.write_summary(make_row(lay, t, rng, True))
        time.sleep(0.05)
    w.close()
    print("closed", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("live", [False, True])
def test_overwrite_refuses_a_file_another_process_is_writing(tmp_path, live):
    path = tmp_path / "run.h5"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(path), "1" if live else "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        with pytest.raises(RunFileError, match="being written by another process"):
            RunWriter(path, make_layout(), {}, overwrite=True)
        assert child.stdout.readline().strip() == "closed"
    finally:
        child.wait(60)
    assert child.returncode == 0
    with RunFile(path) as run:  # the first run is whole
        assert list(run.steps) == list(range(1, 41))
    RunWriter(path, make_layout(), {}, overwrite=True).close()  # free again: replaced
    with RunFile(path) as run:
        assert run.n_rows == 0


def test_a_second_writer_in_this_process_is_refused(tmp_path):
    path = tmp_path / "run.h5"
    first = RunWriter(path, make_layout(), {})
    with pytest.raises(RunFileError, match="being written by another"):
        RunWriter(path, make_layout(), {}, overwrite=True)
    first.close()
    RunWriter(path, make_layout(), {}, overwrite=True).close()


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(RunFileError, match="does not exist"):
        RunWriter(tmp_path / "nope" / "run.h5", make_layout(), {})
