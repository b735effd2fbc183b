"""Cosine randomness test of successive gradients and updates (seed 001, corrected, spec 8).

Under "independent, one of them isotropic" the cosine of two vectors in R^n has the exact
law C_n; the p-values come from :mod:`gradscope.theory` (t_{n-1} tails, log-space for huge
n), are adjusted across layers per step by Benjamini-Hochberg, and the seed's threshold
``sqrt(log n / n)`` is reported beside the exact critical value with its true FPR.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import integrate

from gradscope import theory
from gradscope.analysis.results import RandomnessResult

__all__ = ["cosine_randomness", "momentum_note"]

_MOMENTUM_NOTE = (
    "updates of a momentum method: cos(m_t, m_(t-1)) is near beta1={beta1:g} for pure noise, "
    "so the isotropic null does not apply; p-values are shown for reference only"
)


def momentum_note(beta1: float) -> str:
    """Why the isotropic null is not applied to updates of a momentum method."""
    return _MOMENTUM_NOTE.format(beta1=beta1)


def _bh_rows(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values across layers (axis 1), NaN entries left out of each row."""
    q = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    full = finite.all(axis=1)
    if full.any():
        q[full] = theory.fdr_control(p[full], method="bh", axis=1)
    for i in np.flatnonzero(~full & finite.any(axis=1)):
        q[i, finite[i]] = theory.fdr_control(p[i, finite[i]], method="bh")
    return q


def cosine_randomness(
    steps: npt.ArrayLike,
    cosine: npt.ArrayLike,
    sizes: npt.ArrayLike,
    layers: Sequence[str],
    *,
    quantity: str = "grad",
    alpha: float = 0.05,
    momentum: float = 0.0,
) -> RandomnessResult:
    """Exact test of each recorded cosine between successive rows, FDR across layers.

    Args:
        steps: ``(T,)`` optimizer steps.
        cosine: ``(T, L)`` cosine of each layer's vector with the previous recorded one
            (NaN where none, e.g. the first row).
        sizes: ``(L,)`` layer sizes n.
        layers: names, input -> output.
        quantity: ``"grad"`` or ``"update"``.
        alpha: FDR level per step.
        momentum: beta1 of the optimizer; for ``quantity="update"`` and ``momentum > 0`` the
            result has ``null_applies=False`` and nothing is flagged.

    Returns:
        A :class:`RandomnessResult`; combine chunks with ``concat_rows``.
    """
    c = np.atleast_2d(np.asarray(cosine, dtype=float))
    n = np.asarray(sizes, dtype=float).reshape(-1)
    if c.shape[1] != n.size or n.size != len(layers):
        raise ValueError(f"cosine {c.shape} must be (T, {len(layers)}) with one size per layer")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    testable = n > 1
    cc = np.where(testable, np.clip(c, -1.0, 1.0), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # cosines near 1 in huge layers: the deep-tail quadrature warns about roundoff at
        # p-values far below any alpha; the verdict is unaffected
        warnings.simplefilter("ignore", category=integrate.IntegrationWarning)
        log10p = np.where(np.isfinite(cc), theory.cosine_log10_pvalue(cc, n), np.nan)
    p = np.where(np.isnan(log10p), np.nan, 10.0**log10p)
    q = _bh_rows(p)
    applies = not (quantity == "update" and momentum > 0)
    nonrandom = (q < alpha) & applies
    tested = np.isfinite(p)
    nn = np.where(testable, n, 2.0)
    seed_tau = np.where(testable, theory.seed_threshold(nn), np.nan)
    seed_hit = (np.abs(cc) > seed_tau) & tested & applies
    return RandomnessResult(
        quantity=quantity,
        layers=tuple(layers),
        sizes=n.astype(np.int64),
        steps=np.asarray(steps, dtype=np.int64).reshape(-1),
        cosine=c,
        pvalue=p,
        log10_pvalue=log10p,
        qvalue=q,
        nonrandom=nonrandom,
        n_tested=tested.sum(axis=0),
        n_nonrandom=nonrandom.sum(axis=0),
        n_seed_nonrandom=seed_hit.sum(axis=0),
        alpha=float(alpha),
        critical_value=np.where(testable, theory.cosine_critical_value(nn, alpha), np.nan),
        seed_threshold=seed_tau,
        seed_fpr=np.where(testable, theory.seed_threshold_fpr(nn), np.nan),
        null_applies=applies,
        note="" if applies else momentum_note(momentum),
    )
