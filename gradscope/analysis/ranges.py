"""Stepsize range per layer over time (SET-Adam paper): max, min and their spread."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gradscope.analysis.results import StepsizeRange

__all__ = ["stepsize_range"]


def stepsize_range(
    steps: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike, layers: Sequence[str]
) -> StepsizeRange:
    """Per-layer min and max of the elementwise stepsize and ``log10(max/min)`` per step.

    A large spread means the adaptive method treats coordinates of one layer very
    differently (what SET-Adam's range suppression targets); NaN where min <= 0.
    """
    lo = np.atleast_2d(np.asarray(lo, dtype=float))
    hi = np.atleast_2d(np.asarray(hi, dtype=float))
    if lo.shape != hi.shape or lo.shape[1] != len(layers):
        raise ValueError(f"min {lo.shape} and max {hi.shape} must be (T, {len(layers)})")
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where((lo > 0) & (hi > 0), np.log10(hi) - np.log10(lo), np.nan)
    return StepsizeRange(
        layers=tuple(layers),
        steps=np.asarray(steps, dtype=np.int64).reshape(-1),
        min=lo,
        max=hi,
        spread=spread,
    )
