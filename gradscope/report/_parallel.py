"""A report's independent pieces of work spread over processes forked from this one.

A report renders each figure and fits each (layer, step) update law independently of the
others; on a machine with more than one core those pieces run in worker processes. The
workers are forked, so they see the parent's figures, arrays and settings without any
pickling on the way in; only results (PNG bytes, fit records, analyses) come back. With
``jobs=1``, where fork is not available (only Linux is used: macOS's fork is unsafe with
its system libraries) or inside a worker, the same calls run one after another in this
process and give the same results.

What runs in a worker is NumPy, SciPy and matplotlib code only (no torch op, no HDF5
read): the BLAS thread pools a parent holds are re-created after a fork, which is why a
fork from a process with BLAS threads is safe here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

__all__ = ["MAX_JOBS", "fork_map", "workers"]

T = TypeVar("T")

MAX_JOBS = 8
"""Workers used when ``jobs`` is ``None``: the usable cores, at most this many."""

_TASK: Callable[[int], object] | None = None
_IN_WORKER = False


def usable_cpus() -> int:
    """Cores this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers(jobs: int | None, n_tasks: int) -> int:
    """Worker processes for ``n_tasks`` pieces of work: 1 means in this process.

    Raises:
        ValueError: ``jobs`` below 1.
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if n_tasks < 2 or _IN_WORKER or not sys.platform.startswith("linux"):
        return 1
    want = min(usable_cpus(), MAX_JOBS) if jobs is None else jobs
    return max(1, min(want, n_tasks))


def _call(i: int) -> object:
    global _IN_WORKER
    _IN_WORKER = True  # a worker's own work stays in the worker
    assert _TASK is not None
    return _TASK(i)


def fork_map(fn: Callable[[int], T], n_tasks: int, jobs: int | None = None) -> list[T]:
    """``[fn(0), ..., fn(n_tasks - 1)]``, computed by up to ``jobs`` forked workers.

    ``fn`` may be any callable (a closure over figures or arrays): the workers are forked
    after it is set, so it is never pickled; its results are. Results come back in order.
    An exception in ``fn`` is raised here with the worker's traceback as its cause.

    Raises:
        RuntimeError: a worker process died (killed, out of memory); run with ``jobs=1``.
    """
    k = workers(jobs, n_tasks)
    if k == 1:
        return [fn(i) for i in range(n_tasks)]
    global _TASK
    _TASK = fn
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns on any fork of a process with threads (here: BLAS pools)
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(k, mp_context=ctx) as pool:
                return list(pool.map(_call, range(n_tasks)))  # type: ignore[arg-type]
    except BrokenProcessPool as e:
        raise RuntimeError(
            f"a report worker process died ({e}); run again with jobs=1 (--jobs 1)"
        ) from e
    finally:
        _TASK = None
