"""Cosine randomness test of successive gradients and updates (docs/analysis.md, section 2).

Under "independent, one of them isotropic" the cosine of two vectors in R^n has the exact
law C_n; the p-values come from :mod:`gradscope.theory` (t_{n-1} tails, log-space for huge
n), are adjusted across layers per step by Benjamini-Hochberg, and the rule
``|cos| > sqrt(log n / n)`` of Zhang, Qiao, Lopotenco and Pan ("Understanding Stochastic
Optimization Behavior at the Layer Update Level", AAAI student abstract) is reported beside
the exact critical value with its true false-positive rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import integrate, stats

from gradscope import theory
from gradscope.analysis.results import RandomnessResult, SignificanceTrend

__all__ = ["cosine_randomness", "momentum_note", "significance_trend", "sqrt_log_threshold"]


def sqrt_log_threshold(n: npt.ArrayLike) -> np.ndarray:
    """Zhang et al.'s rule: ``|cos| > sqrt(log n / n)`` calls two vectors in R^n non-random."""
    n = np.asarray(n, dtype=float)
    return np.sqrt(np.log(n) / n)


def momentum_note(beta1: float, layers: Sequence[str] = ()) -> str:
    """Why the isotropic null is not applied to updates of a momentum method."""
    where = f" in {', '.join(layers)}" if layers else ""
    return (
        f"updates of a momentum method{where}: cos(m_t, m_(t-1)) is near beta1={beta1:g} for "
        "pure noise, so the isotropic null does not apply there; p-values are shown for "
        "reference only"
    )


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
    momentum: float | npt.ArrayLike = 0.0,
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
        momentum: beta1 (or SGD momentum) of each layer's own group: a scalar, ``(L,)``,
            or ``(T, L)`` per row (NaN counts as 0). For ``quantity="update"`` a layer with
            momentum > 0 at a row is not tested there (left out of the FDR, never flagged);
            ``null_applies`` is False for layers where that happens at any row.

    Returns:
        A :class:`RandomnessResult`; combine chunks with ``concat_rows``.
    """
    c = np.atleast_2d(np.asarray(cosine, dtype=float))
    n = np.asarray(sizes, dtype=float).reshape(-1)
    if c.shape[1] != n.size or n.size != len(layers):
        raise ValueError(f"cosine {c.shape} must be (T, {len(layers)}) with one size per layer")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    try:
        mom = np.broadcast_to(np.asarray(momentum, dtype=float), c.shape)
    except ValueError:
        raise ValueError(
            f"momentum {np.shape(momentum)} must be a scalar, (L,) or (T, L) for {c.shape}"
        ) from None
    mom = np.where(np.isfinite(mom), mom, 0.0)
    applies_row = np.ones(c.shape, dtype=bool) if quantity != "update" else mom <= 0
    testable = n > 1
    cc = np.where(testable, np.clip(c, -1.0, 1.0), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # cosines near 1 in huge layers: the deep-tail quadrature warns about roundoff at
        # p-values far below any alpha; the verdict is unaffected
        warnings.simplefilter("ignore", category=integrate.IntegrationWarning)
        log10p = np.where(np.isfinite(cc), theory.cosine_log10_pvalue(cc, n), np.nan)
    p = np.where(np.isnan(log10p), np.nan, 10.0**log10p)
    q = _bh_rows(np.where(applies_row, p, np.nan))
    nonrandom = (q < alpha) & applies_row
    tested = np.isfinite(p)
    nn = np.where(testable, n, 2.0)
    tau = np.where(testable, sqrt_log_threshold(nn), np.nan)
    rule_hit = (np.abs(cc) > tau) & tested & applies_row
    applies = np.asarray(applies_row.all(axis=0))  # a per-layer array (typed as a union)
    off = [name for name, ok in zip(layers, applies) if not ok]
    note = ""
    if off:
        top = float(np.max(np.where(applies_row, 0.0, mom)))
        note = momentum_note(top, off if len(off) < len(layers) else ())
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
        n_sqrt_log_nonrandom=rule_hit.sum(axis=0),
        cosine_sum=np.where(tested, cc, 0.0).sum(axis=0),
        alpha=float(alpha),
        critical_value=np.where(testable, theory.cosine_critical_value(nn, alpha), np.nan),
        sqrt_log_threshold=tau,
        # exact two-sided false-positive rate of the rule: P(|C_n| > tau) under the null
        sqrt_log_threshold_fpr=np.where(testable, theory.cosine_pvalue(tau, nn), np.nan),
        null_applies=applies,
        note=note,
    )


def significance_trend(res: RandomnessResult) -> SignificanceTrend:
    """Spearman rank correlation of each layer's non-random fraction with size and depth.

    Only layers where the null applies and something was tested take part; with fewer than
    3 such layers, or a constant fraction or size, the correlation is NaN.
    """
    f = np.asarray(res.fraction_nonrandom, dtype=float)
    depth = np.arange(f.size, dtype=float)
    ok = np.isfinite(f) & np.asarray(res.null_applies, dtype=bool) & (res.n_tested > 0)
    out = {"size": (np.nan, np.nan), "depth": (np.nan, np.nan)}
    if ok.sum() >= 3 and np.ptp(f[ok]) > 0:
        for key, other in (("size", res.sizes.astype(float)), ("depth", depth)):
            if np.ptp(other[ok]) > 0:
                # scipy types the result as a private class without its two fields
                r: Any = stats.spearmanr(f[ok], other[ok])
                out[key] = (float(r.statistic), float(r.pvalue))
    return SignificanceTrend(
        quantity=res.quantity,
        n_layers=int(ok.sum()),
        rho_size=out["size"][0],
        p_size=out["size"][1],
        rho_depth=out["depth"][0],
        p_depth=out["depth"][1],
    )
