"""Stepsize range per layer over time (SET-Adam paper): max, min and their spread."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gradscope.analysis.results import StepsizeRange

__all__ = ["stepsize_range"]


def stepsize_range(
    steps: npt.ArrayLike,
    lo: npt.ArrayLike,
    hi: npt.ArrayLike,
    layers: Sequence[str],
    *,
    eps: npt.ArrayLike | None = None,
) -> StepsizeRange:
    """Per-layer min and max of the elementwise stepsize and ``log10(max/min)`` per step.

    A large spread means the adaptive method treats coordinates of one layer very
    differently (what SET-Adam's range suppression targets); NaN where min <= 0.
    ``eps`` (scalar, ``(L,)`` or ``(T, L)``: each layer's own group eps per row; NaN where
    none) marks rows whose max is at the eps cap ``1/(1.01 eps)``: there eps-dominated
    coordinates, not the gradients, set the spread.
    """
    lo = np.atleast_2d(np.asarray(lo, dtype=float))
    hi = np.atleast_2d(np.asarray(hi, dtype=float))
    if lo.shape != hi.shape or lo.shape[1] != len(layers):
        raise ValueError(f"min {lo.shape} and max {hi.shape} must be (T, {len(layers)})")
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where((lo > 0) & (hi > 0), np.log10(hi) - np.log10(lo), np.nan)
    capped = np.zeros(lo.shape, dtype=bool)
    if eps is not None:
        e = np.broadcast_to(np.asarray(eps, dtype=float), lo.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            capped = np.isfinite(e) & (e > 0) & (hi >= 1.0 / (1.01 * e))
    return StepsizeRange(
        layers=tuple(layers),
        steps=np.asarray(steps, dtype=np.int64).reshape(-1),
        min=lo,
        max=hi,
        spread=spread,
        eps_capped=capped,
    )
