"""What a run file holds, without analysing it (``gradscope info``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from gradscope.errors import MissingDataError  # noqa: F401 - part of this module's namespace
from gradscope.runfile.reader import RunFile

__all__ = ["RunInfo", "has_samples", "run_info"]


def has_samples(run: RunFile, quantity: str) -> bool:
    """Whether the run stored a coordinate subsample of ``quantity``."""
    return quantity in run.sample_quantities


@dataclass(frozen=True)
class RunInfo:
    """Schema version, layers, steps, what was recorded and the metadata of one run."""

    path: str
    format_version: int
    layers: tuple[str, ...]
    sizes: tuple[int, ...]
    forward_rank: tuple[int, ...]
    n_rows: int
    first_step: int | None
    last_step: int | None
    quantities: tuple[str, ...]
    sample_quantities: tuple[str, ...]
    n_sample_rows: int
    n_full_dumps: int
    hist_rows: int
    optimizer: str
    metadata: dict[str, Any]
    #: core quantities the run lacks, with the reason (e.g. no stepsize for Lion)
    unavailable: dict[str, str] = field(default_factory=dict)


def run_info(path: str | os.PathLike[str]) -> RunInfo:
    """Read only the static facts and row counts of a run file (fast, no analysis)."""
    with RunFile(path) as run:
        steps = run.steps
        meta = run.metadata
        opt = meta.get("optimizer", {}) if isinstance(meta, dict) else {}
        return RunInfo(
            path=str(run.path),
            format_version=int(run.attrs.get("format_version", -1)),
            layers=tuple(run.layers),
            sizes=tuple(int(n) for n in run.sizes),
            forward_rank=tuple(int(r) for r in run.forward_rank),
            n_rows=run.n_rows,
            first_step=int(steps[0]) if len(steps) else None,
            last_step=int(steps[-1]) if len(steps) else None,
            quantities=tuple(run.quantities),
            sample_quantities=tuple(run.sample_quantities),
            n_sample_rows=len(run.sample_steps),
            n_full_dumps=len(run.full_steps),
            hist_rows=int(run.hist_recorded.sum()),
            optimizer=str(opt.get("class", "unknown")) if isinstance(opt, dict) else "unknown",
            metadata=meta,
            unavailable=run.unavailable,
        )
