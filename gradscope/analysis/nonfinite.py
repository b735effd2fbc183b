"""Where the recorder counted NaN or infinite values, per quantity, layer and first step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from gradscope.analysis.results import NonfiniteSummary

__all__ = ["nonfinite_summary"]


def nonfinite_summary(
    steps: npt.ArrayLike,
    counts: Mapping[str, npt.ArrayLike],
    layers: Sequence[str],
    *,
    loss: npt.ArrayLike | None = None,
) -> NonfiniteSummary:
    """Totals, rows with any, and the first step per quantity and layer.

    Args:
        steps: ``(T,)`` optimizer steps.
        counts: quantity -> ``(T, L)`` recorded non-finite counts (the ``nonfinite``
            statistic); NaN entries (not recorded) count as 0.
        layers: names.
        loss: ``(T,)`` recorded loss. An infinite loss counts; a NaN counts only after a
            finite loss was logged (before that NaN means "never logged").
    """
    st = np.asarray(steps, dtype=np.int64).reshape(-1)
    names = tuple(counts)
    total = np.zeros((len(names), len(layers)), dtype=np.int64)
    rows = np.zeros_like(total)
    first = np.full_like(total, -1)
    for qi, q in enumerate(names):
        c = np.atleast_2d(np.asarray(counts[q], dtype=float))
        if c.shape != (st.size, len(layers)):
            raise ValueError(f"{q!r} counts {c.shape} must be ({st.size}, {len(layers)})")
        c = np.where(np.isfinite(c), c, 0.0)
        total[qi] = c.sum(axis=0).astype(np.int64)
        hit = c > 0
        rows[qi] = hit.sum(axis=0)
        first[qi] = np.where(hit.any(axis=0), st[np.argmax(hit, axis=0)] if st.size else -1, -1)
    lt, lf = 0, -1
    if loss is not None:
        lo = np.asarray(loss, dtype=float).reshape(-1)
        logged = np.logical_or.accumulate(np.isfinite(lo)) if lo.size else lo.astype(bool)
        bad = np.isinf(lo) | (np.isnan(lo) & logged)
        lt = int(bad.sum())
        lf = int(st[np.argmax(bad)]) if lt else -1
    return NonfiniteSummary(
        quantities=names,
        layers=tuple(layers),
        total=total,
        rows=rows,
        first_step=first,
        loss_total=np.int64(lt),
        loss_first_step=np.int64(lf),
    )
