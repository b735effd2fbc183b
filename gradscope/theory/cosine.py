"""Exact cosine randomness tests: the student abstract's test, corrected.

The test is that of J. Zhang, Qiao, Lopotenco & Pan, "Understanding Stochastic Optimization
Behavior at the Layer Update Level" (AAAI student abstract); ``docs/theory.md``, section 8,
derives its exact null and shows that the abstract's bound is false.

Under the null "independent, at least one isotropic", ``c = cos(x, y)`` in ``R^n`` has the law
``C_n`` of :data:`gradscope.theory.cosine_null`, and ``T = c sqrt((n-1)/(1-c^2))`` is exactly
Student t with ``n-1`` degrees of freedom. The abstract's threshold ``sqrt(log n / n)`` does not
control the false-positive rate at ``1/n``; :func:`sqrt_log_threshold_fpr` gives its true rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import integrate, special, stats

from gradscope.theory import exact

__all__ = [
    "CosineTestResult",
    "combine_pvalues",
    "cosine_critical_value",
    "cosine_log10_pvalue",
    "cosine_pvalue",
    "cosine_similarity",
    "cosine_test",
    "effective_dimension",
    "estimate_effective_dimension",
    "fdr_control",
    "sqrt_log_threshold",
    "sqrt_log_threshold_fpr",
    "valid_threshold",
]

Alternative = Literal["two-sided", "greater", "less"]
FloatArray = npt.NDArray[np.float64]


def cosine_similarity(x: npt.ArrayLike, y: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """``<x, y>/(|x| |y|)`` along ``axis``, computed in float64."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    num = np.sum(x * y, axis=axis)
    return num / np.sqrt(np.sum(x * x, axis=axis) * np.sum(y * y, axis=axis))


def _log_tail(c: FloatArray, n: FloatArray, alternative: Alternative) -> FloatArray:
    """Natural log of the p-value, via the exact t statistic (log-space: no underflow)."""
    big_t = exact.t_statistic_from_update(c, n)
    df = n - 1
    if alternative == "greater":
        out, x = stats.t.logsf(big_t, df), c
    elif alternative == "less":
        out, x = stats.t.logsf(-big_t, df), -c
    elif alternative == "two-sided":
        out, x = np.log(2.0) + stats.t.logsf(np.abs(big_t), df), np.abs(c)
    else:
        raise ValueError(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}"
        )
    out, x, n = np.broadcast_arrays(out, x, n)
    far = (out < -600) & (x < 1)  # scipy's logsf underflows to -inf beyond about 1e-300
    if np.any(far):
        out = np.array(out, copy=True)
        extra = np.log(2.0) if alternative == "two-sided" else 0.0
        out[far] = extra + np.vectorize(_log_upper_tail)(x[far], n[far])
    return out


def _log_upper_tail(x: float, n: float) -> float:
    """``log P(C_n > x)`` for ``x > 0`` deep in the tail, by a rescaled 1-D integral.

    ``P = exp(h(x)) / B * int_x^1 exp(h(c) - h(x)) dc`` with ``h = ((n-3)/2) log(1-c^2)``;
    the remaining integral is O(scale) and well conditioned.
    """
    k = (n - 3) / 2

    def h(c: float) -> float:
        return k * np.log1p(-c * c)

    hx = h(x)
    scale = (1 - x * x) / max((n - 3) * x, 1e-300)
    upper = min(1.0 - x, 80 * scale)
    val, _ = integrate.quad(
        lambda c: np.exp(h(x + c) - hx), 0, upper, epsabs=0, epsrel=1e-11, limit=200
    )
    return float(hx + np.log(val) - special.betaln(0.5, (n - 1) / 2))


def cosine_pvalue(
    c: npt.ArrayLike, n: npt.ArrayLike, alternative: Alternative = "two-sided"
) -> FloatArray:
    """Exact p-value of a cosine ``c`` between vectors in ``R^n`` under the isotropic null."""
    c = np.asarray(c, dtype=float)
    n = np.asarray(n, dtype=float)
    return np.minimum(np.exp(_log_tail(c, n, alternative)), 1.0)


def cosine_log10_pvalue(
    c: npt.ArrayLike, n: npt.ArrayLike, alternative: Alternative = "two-sided"
) -> FloatArray:
    """``log10`` of the exact p-value; finite even when the p-value underflows (huge n)."""
    c = np.asarray(c, dtype=float)
    n = np.asarray(n, dtype=float)
    return np.minimum(_log_tail(c, n, alternative) / np.log(10.0), 0.0)


def cosine_critical_value(
    n: npt.ArrayLike, alpha: float = 0.05, alternative: Alternative = "two-sided"
) -> FloatArray:
    """Exact critical value ``c* = T*/sqrt(T*^2 + n - 1)``, ``T*`` the t quantile.

    Two-sided: reject when ``|c| > c*``; one-sided: when ``c > c*`` (or ``c < -c*``).
    """
    n = np.asarray(n, dtype=float)
    q = alpha / 2 if alternative == "two-sided" else alpha
    big_t = -special.stdtrit(n - 1, q)
    return big_t / np.sqrt(big_t * big_t + n - 1)


def sqrt_log_threshold(n: npt.ArrayLike, eps: npt.ArrayLike | None = None) -> FloatArray:
    """Return the student abstract's threshold ``sqrt(-log(eps)/n)`` (eps = 1/n: ``sqrt(log n/n)``).

    It does NOT bound the false-positive rate by ``eps``: see :func:`sqrt_log_threshold_fpr`.
    """
    n = np.asarray(n, dtype=float)
    e = 1.0 / n if eps is None else np.asarray(eps, dtype=float)
    return np.sqrt(-np.log(e) / n)


def valid_threshold(n: npt.ArrayLike, eps: npt.ArrayLike | None = None) -> FloatArray:
    """Return a threshold that holds for all n: ``sqrt(2 log(2/eps)/n)`` (sphere concentration)."""
    n = np.asarray(n, dtype=float)
    e = 1.0 / n if eps is None else np.asarray(eps, dtype=float)
    return np.sqrt(2 * np.log(2 / e) / n)


def sqrt_log_threshold_fpr(
    n: npt.ArrayLike,
    eps: npt.ArrayLike | None = None,
    *,
    two_sided: bool = True,
    threshold: npt.ArrayLike | None = None,
) -> FloatArray:
    """Exact false-positive rate ``P(|c| > tau)`` of a threshold (default the student abstract's).

    For ``eps = 1/n`` it is 0.1353 at n = 10, 0.03116 at 100 and 0.00852 at 1000: of order
    ``sqrt(eps)``, not ``eps``. The one-sided rule has half the rate.
    """
    n = np.asarray(n, dtype=float)
    tau = sqrt_log_threshold(n, eps) if threshold is None else np.asarray(threshold, dtype=float)
    p = exact.cosine_abs_sf(tau, n)
    return p if two_sided else p / 2


def effective_dimension(cov_or_eigenvalues: npt.ArrayLike) -> float:
    """Participation ratio ``n_eff = tr(S)^2 / tr(S^2)`` of a covariance (or its eigenvalues).

    Under an anisotropic Gaussian null ``Var c ~ 1/n_eff``, so the exact law with ``n_eff``
    in place of ``n`` is approximately calibrated.
    """
    s = np.asarray(cov_or_eigenvalues, dtype=float)
    if s.ndim == 1:
        return float(np.sum(s) ** 2 / np.sum(s * s))
    if s.ndim == 2 and s.shape[0] == s.shape[1]:
        return float(np.trace(s) ** 2 / np.sum(s * s))
    raise ValueError(f"expected eigenvalues (1-D) or a square matrix, got shape {s.shape}")


def estimate_effective_dimension(samples: npt.ArrayLike, min_lag: int = 1) -> float:
    """Estimate ``n_eff`` from zero-mean independent samples (rows), without forming ``S``.

    Uses ``E|g|^2 = tr(S)`` and ``E[(g_i . g_j)^2] = tr(S^2)`` over pairs ``|i - j| >= min_lag``
    (docs/theory.md, section 8.3), so it works for layers far too large for an ``n x n``
    covariance. The ratio is consistent, not unbiased.
    """
    g = np.asarray(samples, dtype=float)
    if g.ndim != 2 or g.shape[0] < 2:
        raise ValueError(f"samples must be 2-D with at least 2 rows, got shape {g.shape}")
    gram = g @ g.T
    k = g.shape[0]
    i, j = np.triu_indices(k, k=max(1, min_lag))
    if i.size == 0:
        raise ValueError(f"no pairs with lag >= {min_lag} among {k} samples")
    tr_s = float(np.mean(np.diag(gram)))
    tr_s2 = float(np.mean(gram[i, j] ** 2))
    return tr_s * tr_s / tr_s2


@dataclass(frozen=True)
class CosineTestResult:
    """Result of :func:`cosine_test`, effect size first (like scipy's result objects)."""

    statistic: FloatArray  # the cosine c
    pvalue: FloatArray
    log10_pvalue: FloatArray
    t_statistic: FloatArray
    critical_value: FloatArray
    reject: npt.NDArray[np.bool_]
    n: float  # the dimension used for the null (n or n_eff)


def cosine_test(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    n_eff: float | None = None,
    axis: int = -1,
) -> CosineTestResult:
    """Exact test of "x and y are independent and isotropic" through their cosine.

    ``n_eff`` replaces the dimension for anisotropic noise (see
    :func:`estimate_effective_dimension`); otherwise the length of ``axis`` is used.
    """
    x = np.asarray(x, dtype=float)
    c = cosine_similarity(x, y, axis=axis)
    n = float(x.shape[axis]) if n_eff is None else float(n_eff)
    if n <= 1:
        raise ValueError(f"the dimension must exceed 1, got {n}")
    crit = cosine_critical_value(n, alpha, alternative)
    if alternative == "two-sided":
        reject = np.abs(c) > crit
    elif alternative == "greater":
        reject = c > crit
    else:
        reject = c < -crit
    return CosineTestResult(
        statistic=c,
        pvalue=cosine_pvalue(c, n, alternative),
        log10_pvalue=cosine_log10_pvalue(c, n, alternative),
        t_statistic=exact.t_statistic_from_update(c, n),
        critical_value=crit,
        reject=np.asarray(reject),
        n=n,
    )


def combine_pvalues(
    pvalues: npt.ArrayLike, method: Literal["fisher", "stouffer"] = "fisher", axis: int = -1
) -> FloatArray:
    """Combine independent p-values (e.g. successive cosines of one layer) along ``axis``.

    Successive cosines ``cos(g_t, g_{t-1})`` are exactly independent under the isotropic
    i.i.d. null (docs/theory.md, section 8.2), so Fisher and Stouffer are exact there. Wraps
    ``scipy.stats.combine_pvalues``.
    """
    p = np.asarray(pvalues, dtype=float)
    # scipy types the result as a private class without its fields
    res: Any = stats.combine_pvalues(p, method=method, axis=axis)
    return np.asarray(res.pvalue)


def fdr_control(
    pvalues: npt.ArrayLike, method: Literal["bh", "by"] = "bh", axis: int = -1
) -> FloatArray:
    """Adjust p-values to control the FDR across layers (Benjamini-Hochberg or -Yekutieli).

    Use ``"by"`` when layers are dependent. Wraps ``scipy.stats.false_discovery_control``.
    """
    return stats.false_discovery_control(np.asarray(pvalues, dtype=float), method=method, axis=axis)
