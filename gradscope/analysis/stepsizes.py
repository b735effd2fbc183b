"""Layerwise adaptive stepsizes (Aida paper, Figs. 1, 2, 6) from per-layer summaries.

The stepsize u is the one the optimizer reports (update = -lr u m_hat); its per-layer mean
and std per recorded step come from the run file's ``stepsize`` statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gradscope.analysis.results import StepsizeProfile

__all__ = ["layer_compactness", "stepsize_profile"]


def layer_compactness(mean: npt.ArrayLike) -> np.ndarray:
    """Std across layers of ``log10`` of the layer mean stepsizes, per step (0 = compact)."""
    m = np.asarray(mean, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.where(m > 0, np.log10(m), np.nan)
        ok = np.isfinite(logm)
        count = ok.sum(axis=1)
        mu = np.where(ok, logm, 0.0).sum(axis=1) / count
        var = np.where(ok, (logm - mu[:, None]) ** 2, 0.0).sum(axis=1) / count
    return np.where(count > 0, np.sqrt(var), np.nan)


def stepsize_profile(
    steps: npt.ArrayLike,
    mean: npt.ArrayLike,
    std: npt.ArrayLike,
    layers: Sequence[str],
    *,
    rtol: float = 1e-6,
) -> StepsizeProfile:
    """Per-layer mean/std of the elementwise stepsize over time and their compactness.

    Args:
        steps: optimizer step of each row, ``(T,)``.
        mean: within-layer mean of u, ``(T, L)``, layers input -> output.
        std: within-layer std of u, ``(T, L)``.
        layers: layer names.
        rtol: a layer is "layerwise" (one stepsize per layer) when ``std <= rtol * mean``
            on every finite row (float32 summaries of a constant are not exactly 0).
    """
    mean = np.atleast_2d(np.asarray(mean, dtype=float))
    std = np.atleast_2d(np.asarray(std, dtype=float))
    if mean.shape != std.shape or mean.shape[1] != len(layers):
        raise ValueError(f"mean {mean.shape} and std {std.shape} must be (T, {len(layers)})")
    ok = np.isfinite(mean) & np.isfinite(std)
    small = np.where(ok, std <= rtol * np.abs(mean), True)
    layerwise = np.asarray(small.all(axis=0) & ok.any(axis=0))  # per layer (typed as a union)
    return StepsizeProfile(
        layers=tuple(layers),
        steps=np.asarray(steps, dtype=np.int64).reshape(-1),
        mean=mean,
        std=std,
        compactness=layer_compactness(mean),
        layerwise=layerwise,
    )
