"""Step length ``||x_t - x_{t-1}||`` per layer and for the network, and its variability.

The Eve paper argues about how steady the step is; the run file holds the norm of every
layer's applied update per recorded row, which is exactly the layer's step length. The
network's step length is the root sum of squares over layers (of the selected layers when
the analysis is restricted to some).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gradscope.analysis.results import StepLength

__all__ = ["step_length"]


def _window_stats(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std (n - 1) and cv of consecutive non-overlapping windows of rows (finite only)."""
    n_win = -(-x.shape[0] // window) if x.shape[0] else 0
    mean = np.full((n_win, *x.shape[1:]), np.nan)
    std = np.full_like(mean, np.nan)
    for w in range(n_win):
        blk = x[w * window : (w + 1) * window]
        ok = np.isfinite(blk)
        cnt = ok.sum(axis=0)
        with np.errstate(all="ignore"):
            m = np.where(ok, blk, 0.0).sum(axis=0) / cnt
            v = np.where(ok, (blk - m) ** 2, 0.0).sum(axis=0) / np.maximum(cnt - 1, 1)
        mean[w] = np.where(cnt > 0, m, np.nan)
        std[w] = np.where(cnt > 1, np.sqrt(v), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = std / mean
    return mean, std, cv


def step_length(
    steps: npt.ArrayLike,
    update_norm: npt.ArrayLike,
    layers: Sequence[str],
    *,
    window: int = 50,
    shift: npt.ArrayLike | None = None,
) -> StepLength:
    """Per-layer and global step lengths, window and whole-run mean/std/cv.

    Args:
        steps: ``(T,)`` optimizer steps.
        update_norm: ``(T, L)`` recorded ``||update||`` per layer (non-finite values are left
            out of every statistic, and a row with one is left out of the global length).
        layers: names.
        window: rows per window of the windowed statistics (windows restart with each call:
            pass chunks whose length is a multiple of ``window``).
        shift: ``(L + 1,)`` values the whole-run sums are taken about (per layer, then the
            global length); default: this chunk's first finite values. Pass the same shift
            to every chunk of one run so :func:`concat_rows` adds them up.
    """
    x = np.atleast_2d(np.asarray(update_norm, dtype=float))
    st = np.asarray(steps, dtype=np.int64).reshape(-1)
    if x.shape != (st.size, len(layers)):
        raise ValueError(f"update_norm {x.shape} must be ({st.size}, {len(layers)})")
    if window < 2:
        raise ValueError(f"the window must hold at least 2 rows, got {window}")
    with np.errstate(over="ignore", invalid="ignore"):
        glob = np.sqrt(np.sum(x**2, axis=1))
    glob = np.where(np.isfinite(glob), glob, np.nan)
    both = np.column_stack([x, glob])
    both = np.where(np.isfinite(both), both, np.nan)
    if shift is None:
        sh = np.zeros(both.shape[1])
        for j in range(both.shape[1]):
            col = both[:, j][np.isfinite(both[:, j])]
            sh[j] = col[0] if col.size else 0.0
    else:
        sh = np.asarray(shift, dtype=float).reshape(-1)
        if sh.size != both.shape[1]:
            raise ValueError(f"shift must have {both.shape[1]} values (layers, then global)")
    d = both - sh
    ok = np.isfinite(d)
    mean, std, cv = _window_stats(both, window)
    wsteps = st[np.minimum(np.arange(1, mean.shape[0] + 1) * window, st.size) - 1]
    return StepLength(
        layers=tuple(layers),
        window=int(window),
        steps=st,
        layer_norm=x,
        global_norm=glob,
        window_steps=wsteps,
        window_mean=mean[:, :-1],
        window_std=std[:, :-1],
        window_cv=cv[:, :-1],
        global_window_mean=mean[:, -1],
        global_window_std=std[:, -1],
        global_window_cv=cv[:, -1],
        shift=sh,
        count=ok.sum(axis=0),
        total=np.where(ok, d, 0.0).sum(axis=0),
        total_sq=np.where(ok, d**2, 0.0).sum(axis=0),
    )
