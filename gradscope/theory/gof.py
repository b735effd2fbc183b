"""Goodness of fit of recorded updates to a theoretical law, effect sizes first.

With 1e5-1e7 samples per layer every p-value rejects, so the record leads with effect sizes
(docs/theory.md, section 8.3, item 4): the KS distance, the Cramer-von Mises ``omega^2``, the
total-variation distance of the PIT histogram from uniform, and the variance and
magnitude-variance ratios to theory (1 when the law fits). Flags mark bimodality, skew and
heavy tails relative to theory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["GoodnessOfFit", "goodness_of_fit", "ks_distance", "pit_histogram"]


class _Law(Protocol):
    def cdf(self, x: Any) -> Any: ...


@dataclass(frozen=True)
class GoodnessOfFit:
    """Effect sizes of the misfit between samples and a law, then flags, then p-values.

    ``var_ratio = Var(samples)/Var(law)`` and ``magnitude_var_ratio = Var|samples|/Var|law|``
    are 1 under the law. ``pit_tv_distance`` is ``1/2 sum |p_k - 1/bins|`` for the PIT
    histogram; its sampling-noise level is about ``sqrt(bins/(2 pi n))``. Skewness is the
    signed moment skewness (positive: long right tail). ``center_dip`` is
    ``f(median)/max f`` of the samples' histogram (below 1 for a dip at the centre).
    """

    ks_distance: float
    cvm_omega2: float
    pit_tv_distance: float
    var_ratio: float
    magnitude_var_ratio: float
    skewness: float
    excess_kurtosis: float
    center_dip: float
    bimodal: bool
    skewed: bool
    heavy_tailed: bool
    n: int
    pit_histogram: np.ndarray
    ks_pvalue: float | None = None
    cvm_pvalue: float | None = None


def _ks_sorted(f: np.ndarray) -> float:
    n = f.size
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def ks_distance(samples: npt.ArrayLike, cdf: Callable[[np.ndarray], npt.ArrayLike]) -> float:
    """Exact two-sided KS distance ``sup |F_n - F|`` between samples and a CDF."""
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    return _ks_sorted(np.asarray(cdf(x), dtype=float))


def pit_histogram(pit: npt.ArrayLike, bins: int = 20) -> np.ndarray:
    """Probability mass of the PIT values ``F(x)`` in ``bins`` equal bins of [0, 1]."""
    counts, _ = np.histogram(np.clip(np.asarray(pit, dtype=float), 0, 1), bins=bins, range=(0, 1))
    return counts / max(1, counts.sum())


def _center_dip(x: np.ndarray, bins: int) -> float:
    lo, hi = np.quantile(x, [0.005, 0.995])
    if hi <= lo:
        return 1.0
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    centre = np.searchsorted(edges, np.median(x)) - 1
    centre = int(np.clip(centre, 0, bins - 1))
    return float(smooth[centre] / smooth.max()) if smooth.max() > 0 else 1.0


def _law_abs_var(law: Any) -> float | None:
    try:
        e_abs = float(law.expect(np.abs))
        return float(law.var() + law.mean() ** 2 - e_abs**2)
    except (AttributeError, TypeError, ValueError):
        return None


def goodness_of_fit(
    samples: npt.ArrayLike,
    law: _Law,
    *,
    bins: int = 20,
    law_var: float | None = None,
    law_abs_var: float | None = None,
    law_skewness: float = 0.0,
    law_excess_kurtosis: float | None = None,
    skew_threshold: float = 0.1,
    kurtosis_threshold: float = 0.5,
    dip_threshold: float = 0.8,
    pvalues: bool = False,
) -> GoodnessOfFit:
    """Compare samples of one layer's update at one step with a law (frozen scipy or similar).

    ``law`` needs ``cdf``; ``var``, ``expect`` and ``stats`` are used when present, and the
    ``law_*`` keywords override them (e.g. ``law_abs_var`` from
    :func:`gradscope.theory.ema_var_abs_update`, cheaper than numerical ``expect``). Flags:
    ``bimodal`` when the samples' centre dips below ``dip_threshold`` of the peak while the law
    does not (law density at 0 vs its maximum, when ``pdf`` is available); ``skewed`` when
    ``|skewness - law_skewness| > skew_threshold``; ``heavy_tailed`` when the excess kurtosis
    exceeds the law's by ``kurtosis_threshold``. ``pvalues=True`` adds KS and CvM p-values
    (they reject at any visible misfit for large n; read the effect sizes).
    """
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    x = x[np.isfinite(x)]
    n = x.size
    if n < 2:
        raise ValueError(f"need at least 2 finite samples, got {n}")
    f = np.clip(np.asarray(law.cdf(x), dtype=float), 0, 1)
    d = _ks_sorted(f)
    i = np.arange(1, n + 1)
    omega2 = float((1 / (12 * n) + np.sum((f - (2 * i - 1) / (2 * n)) ** 2)) / n)
    pit = pit_histogram(f, bins)
    tv = float(0.5 * np.sum(np.abs(pit - 1 / bins)))

    # the law's methods beyond cdf are optional: each use checks hasattr or catches the error
    opt: Any = law
    if law_var is None:
        law_var = float(opt.var()) if hasattr(law, "var") else float("nan")
    if law_abs_var is None:
        law_abs_var = _law_abs_var(law)
    if law_excess_kurtosis is None:
        try:
            law_excess_kurtosis = float(opt.stats(moments="k"))
        except (AttributeError, TypeError, ValueError):
            law_excess_kurtosis = 0.0
    var_ratio = float(np.var(x) / law_var) if law_var else float("nan")
    mag_ratio = float(np.var(np.abs(x)) / law_abs_var) if law_abs_var else float("nan")
    skew = float(stats.skew(x))
    kurt = float(stats.kurtosis(x))

    dip = _center_dip(x, bins=max(20, min(200, int(np.sqrt(n) / 2))))
    law_dip = 1.0
    if hasattr(law, "pdf") and hasattr(law, "ppf"):
        grid = np.asarray(opt.ppf(np.linspace(0.01, 0.99, 99)), dtype=float)
        dens = np.asarray(opt.pdf(grid), dtype=float)
        if np.all(np.isfinite(dens)) and dens.max() > 0:
            law_dip = float(opt.pdf(opt.ppf(0.5)) / dens.max())
    bimodal = dip < dip_threshold and law_dip >= dip_threshold

    ks_p = cvm_p = None
    if pvalues:
        ks_p = float(stats.kstwo.sf(d, n))
        cvm_p = float(stats.cramervonmises(x, law.cdf).pvalue)

    return GoodnessOfFit(
        ks_distance=d,
        cvm_omega2=omega2,
        pit_tv_distance=tv,
        var_ratio=var_ratio,
        magnitude_var_ratio=mag_ratio,
        skewness=skew,
        excess_kurtosis=kurt,
        center_dip=dip,
        bimodal=bool(bimodal),
        skewed=bool(abs(skew - law_skewness) > skew_threshold),
        heavy_tailed=bool(kurt - law_excess_kurtosis > kurtosis_threshold),
        n=n,
        pit_histogram=pit,
        ks_pvalue=ks_p,
        cvm_pvalue=cvm_p,
    )
