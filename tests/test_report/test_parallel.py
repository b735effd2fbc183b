"""Work spread over forked workers gives what one process gives."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest

from gradscope.report import _parallel as P
from gradscope.report.build import build
from gradscope.report.compare import compare_runs

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is used on Linux")


def test_workers_rule():
    assert P.workers(1, 10) == 1
    assert P.workers(4, 1) == 1  # one task: nothing to spread
    assert P.workers(None, 100) == (
        min(P.usable_cpus(), P.MAX_JOBS) if sys.platform.startswith("linux") else 1
    )
    with pytest.raises(ValueError, match="at least 1"):
        P.workers(0, 3)


@linux
def test_fork_map_runs_a_closure_in_other_processes_in_order():
    data = np.arange(12.0) ** 2  # a closure over this array: never pickled on the way in
    parent = os.getpid()

    def task(i: int):
        return i, float(data[i]), os.getpid(), P.workers(None, 5)

    out = P.fork_map(task, 12, jobs=2)
    assert [o[0] for o in out] == list(range(12))
    assert [o[1] for o in out] == data.tolist()
    assert all(o[2] != parent for o in out)  # computed in workers
    assert len({o[2] for o in out}) <= 2
    assert all(o[3] == 1 for o in out)  # a worker does not fork workers of its own
    serial = P.fork_map(task, 12, jobs=1)
    assert [o[2] for o in serial] == [parent] * 12


@linux
def test_fork_map_raises_the_tasks_error_and_a_dead_worker():
    def bad(i: int) -> int:
        if i == 3:
            raise KeyError("layer 3")
        return i

    with pytest.raises(KeyError, match="layer 3"):
        P.fork_map(bad, 6, jobs=2)

    def killed(i: int) -> int:
        if i == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    with pytest.raises(RuntimeError, match=r"worker process died.*jobs=1"):
        P.fork_map(killed, 4, jobs=2)


def _tree(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@linux
def test_report_and_comparison_do_not_depend_on_jobs(adam_run, layerwise_run, tmp_path):
    one = build(adam_run, tmp_path / "one", formats=("png", "svg", "pdf"), jobs=1)
    two = build(adam_run, tmp_path / "two", formats=("png", "svg", "pdf"), jobs=2)
    a, b = _tree(one.out), _tree(two.out)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:  # rendered in workers: byte for byte the in-process files (no dates, fixed ids)
        assert a[name] == b[name], name
    assert len(one.analysis.fits) >= 2
    for f1, f2 in zip(one.analysis.fits, two.analysis.fits):
        assert (f1.layer, f1.step, f1.ks_distance) == (f2.layer, f2.step, f2.ks_distance)
    c1 = compare_runs([adam_run, layerwise_run], tmp_path / "c1", jobs=1)
    c2 = compare_runs([adam_run, layerwise_run], tmp_path / "c2", jobs=2)
    assert _tree(c1.out) == _tree(c2.out)
    assert json.loads((c1.out / "comparison.json").read_text())["labels"] == ["adam", "lw"]
