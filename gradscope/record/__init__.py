"""Recording: a :class:`Recorder` over torch's optimizer hooks, plus step schedules."""

from __future__ import annotations

from gradscope.record.recorder import Recorder
from gradscope.record.schedules import (
    all_of,
    any_of,
    default_hist,
    default_samples,
    every,
    first,
    log_spaced,
    never,
    pairs,
)

__all__ = [
    "Recorder",
    "all_of",
    "any_of",
    "default_hist",
    "default_samples",
    "every",
    "first",
    "log_spaced",
    "never",
    "pairs",
]
