"""Frozen result records of the analyzers (scipy-style named results).

Time-series records hold ``steps`` ``(T,)`` and per-layer arrays ``(T, L)``; the names in
``_ROWS`` run along the step axis, so a long run is analysed chunk by chunk and the parts
joined with :func:`concat_rows` (counts in ``_SUMS`` add up) or thinned with
:func:`take_rows`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

R = TypeVar("R")


@dataclass(frozen=True)
class StepsizeProfile:
    """Layerwise adaptive stepsizes over time (Aida paper, Figs. 1, 2, 6).

    ``mean``/``std`` are the within-layer mean and std of the elementwise stepsize u;
    ``compactness`` is the std across layers of ``log10`` of the layer means (0: every layer
    uses the same mean stepsize); ``layerwise`` marks layers whose std is zero (one
    stepsize per layer).
    """

    layers: tuple[str, ...]
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    compactness: np.ndarray
    layerwise: np.ndarray
    _ROWS: ClassVar[tuple[str, ...]] = ("steps", "mean", "std", "compactness")
    _SUMS: ClassVar[tuple[str, ...]] = ()

    @property
    def relative_std(self) -> np.ndarray:
        """Within-layer coefficient of variation ``std / mean``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.std / self.mean

    @property
    def geometric_band(self) -> tuple[np.ndarray, np.ndarray]:
        """The one-sigma band ``(lo, hi)`` of the log-normal law with this mean and std.

        ``(lo, hi)`` = ``mean / f`` and ``mean * f`` with ``f = exp(sigma)``,
        ``sigma^2 = log(1 + (std/mean)^2)``. It stays above 0 when std > mean, where
        ``mean - std`` would not, so it can be drawn on a log axis (a geometric error bar).
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.exp(np.sqrt(np.log1p(np.square(self.std / self.mean))))
            return self.mean / f, self.mean * f


@dataclass(frozen=True)
class StepsizeRange:
    """Per-layer stepsize range over time (SET-Adam): min, max and ``log10(max/min)``.

    ``eps_capped`` marks rows where the layer's max stepsize is at the eps cap
    ``u >= 1/(1.01 eps)``: eps-dominated coordinates set the spread there.
    """

    layers: tuple[str, ...]
    steps: np.ndarray
    min: np.ndarray
    max: np.ndarray
    spread: np.ndarray
    eps_capped: np.ndarray
    _ROWS: ClassVar[tuple[str, ...]] = ("steps", "min", "max", "spread", "eps_capped")
    _SUMS: ClassVar[tuple[str, ...]] = ()

    @property
    def max_spread(self) -> np.ndarray:
        """Largest ``log10(max/min)`` of each layer over the run."""
        s = np.where(np.isfinite(self.spread), self.spread, -np.inf).max(axis=0, initial=-np.inf)
        return np.where(np.isfinite(s), s, np.nan)

    @property
    def max_spread_eps_capped(self) -> np.ndarray:
        """Per layer: is the max stepsize at the eps cap on the row of the largest spread?"""
        out = np.zeros(len(self.layers), dtype=bool)
        for i in range(len(self.layers)):
            col = self.spread[:, i]
            if np.any(np.isfinite(col)):
                out[i] = bool(self.eps_capped[int(np.nanargmax(col)), i])
        return out


@dataclass(frozen=True)
class RandomnessResult:
    """Cosine randomness test of successive recorded vectors, per layer and step.

    ``pvalue`` is exact under "independent, isotropic" (n = layer size), ``qvalue`` the
    BH-adjusted value across layers at each step, ``nonrandom = qvalue < alpha``.
    ``n_tested``/``n_nonrandom`` count finite rows per layer (summed over chunks), and
    ``cosine_sum`` the signed cosines behind :attr:`mean_cosine`.
    ``null_applies`` is per layer: False for updates of a momentum method (that layer's own
    group momentum at some row > 0): cos(m_t, m_{t-1}) is near beta1 for pure noise, so a
    small p-value there says nothing (``note`` says so); such layers are never flagged.
    ``sqrt_log_threshold`` is the rule ``|cos| > sqrt(log n / n)`` of Zhang et al.
    ("Understanding Stochastic Optimization Behavior at the Layer Update Level", AAAI
    student abstract), with its exact false-positive rate ``sqrt_log_threshold_fpr``.
    """

    quantity: str
    layers: tuple[str, ...]
    sizes: np.ndarray
    steps: np.ndarray
    cosine: np.ndarray
    pvalue: np.ndarray
    log10_pvalue: np.ndarray
    qvalue: np.ndarray
    nonrandom: np.ndarray
    n_tested: np.ndarray
    n_nonrandom: np.ndarray
    n_sqrt_log_nonrandom: np.ndarray
    cosine_sum: np.ndarray
    alpha: float
    critical_value: np.ndarray
    sqrt_log_threshold: np.ndarray
    sqrt_log_threshold_fpr: np.ndarray
    null_applies: np.ndarray
    note: str
    _ROWS: ClassVar[tuple[str, ...]] = (
        "steps",
        "cosine",
        "pvalue",
        "log10_pvalue",
        "qvalue",
        "nonrandom",
    )
    _SUMS: ClassVar[tuple[str, ...]] = (
        "n_tested",
        "n_nonrandom",
        "n_sqrt_log_nonrandom",
        "cosine_sum",
    )
    _ALL: ClassVar[tuple[str, ...]] = ("null_applies",)

    @property
    def fraction_nonrandom(self) -> np.ndarray:
        """Fraction of tested steps flagged non-random, per layer (NaN: null not applied)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            f = self.n_nonrandom / self.n_tested
        return np.where(np.asarray(self.null_applies, dtype=bool), f, np.nan)

    @property
    def fraction_sqrt_log_nonrandom(self) -> np.ndarray:
        """Fraction of steps with ``|cos| > sqrt(log n / n)`` (Zhang et al.'s rule), per layer."""
        with np.errstate(divide="ignore", invalid="ignore"):
            f = self.n_sqrt_log_nonrandom / self.n_tested
        return np.where(np.asarray(self.null_applies, dtype=bool), f, np.nan)

    @property
    def cosine_over_critical(self) -> np.ndarray:
        """``(T, L)`` signed cosine in units of the layer's exact 5% critical value.

        ``|x| > 1``: that step alone would be flagged at 5% before the FDR correction.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.cosine / np.asarray(self.critical_value, dtype=float)[None, :]

    @property
    def mean_cosine(self) -> np.ndarray:
        """Signed mean cosine over every tested row, per layer (negative: anti-correlated)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.cosine_sum / self.n_tested


@dataclass(frozen=True)
class NoncentralFit:
    """The same updates against the law with a per-coordinate gradient mean.

    Each sampled coordinate's gradient signal-to-noise ratio ``snr_i = mu_i / sigma_i`` is
    estimated from its recorded gradients over a window of ``window`` sample rows (the
    squared mean less its sampling variance, ``mu^2 ~ mbar^2 - s^2/W``, so pure noise gives
    snr near 0); the model is the mixture over coordinates of the exact non-central law
    (:data:`gradscope.theory.ema_update_nc`) at each coordinate's snr. ``ks_distance`` and
    ``var_ratio`` read as in :class:`UpdateFit`; ``grid``/``pdf`` draw the mixture.
    """

    window: int
    n: int
    median_abs_snr: float
    ks_distance: float
    var_ratio: float
    grid: np.ndarray
    pdf: np.ndarray


@dataclass(frozen=True)
class UpdateFit:
    """One layer's normalized update at one step against the exact law.

    ``z = -update/lr`` (= m_hat/(sqrt(v_hat)+eps) for Adam) is compared with ``law``, the
    zero-mean law ``k C_t`` (``C_t`` the cosine law in R^t, ``k = sqrt(t) ||w||`` from the
    layer's own beta1 at every step up to t: a beta1 schedule changes ``k``); the histogram
    (``edges``, ``density``) and the law's pdf on ``grid`` are ready to draw. Effect sizes
    come from :func:`gradscope.theory.goodness_of_fit`. ``n_dead`` sampled coordinates were
    dead (stepsize at the eps cap or a gradient exactly zero at every sampled row so far)
    and, when ``dead_excluded``, left out; ``ks_with_dead`` is the KS distance with them
    kept. ``rejected`` says whether the zero-mean law is rejected (KS above both its 1 %
    critical value ``1.63/sqrt(n)`` and 0.02); ``noncentral`` is then the fit of the
    per-coordinate-mean law (when the gradients were subsampled). ``n_sparse`` live
    coordinates had an exactly zero gradient at some earlier sampled step (gated, e.g. by a
    ReLU: the laws assume a Gaussian gradient at every step, and such a coordinate puts a
    point mass at ``+-k_s``); ``ks_without_sparse`` is the KS distance without them.
    """

    layer: str
    step: int
    t: int
    law: str
    scale: float
    n: int
    n_dead: int
    dead_excluded: bool
    edges: np.ndarray
    density: np.ndarray
    grid: np.ndarray
    pdf: np.ndarray
    ks_distance: float
    ks_with_dead: float
    cvm_omega2: float
    pit_tv_distance: float
    var_ratio: float
    magnitude_var_ratio: float
    skewness: float
    excess_kurtosis: float
    bimodal: bool
    skewed: bool
    heavy_tailed: bool
    rejected: bool
    noncentral: NoncentralFit | None = None
    n_sparse: int = 0
    ks_without_sparse: float = float("nan")


@dataclass(frozen=True)
class TwoPointCheck:
    """Step t = 1: the normalized update of Adam is ``g/(|g| + eps) = +-1`` up to eps.

    ``fraction_unit`` of the ``n`` live sampled coordinates have ``|u|`` within ``tol`` of
    ``|g|/(|g| + eps)`` (or of 1 without the gradients); ``max_deviation`` is the largest
    distance among them.
    """

    layer: str
    step: int
    n: int
    n_dead: int
    tol: float
    fraction_unit: float
    max_deviation: float

    @property
    def passed(self) -> bool:
        """Every live coordinate is at +-1 within ``tol``."""
        return self.n > 0 and self.fraction_unit == 1.0


@dataclass(frozen=True)
class FitMisfit:
    """The update fits of a run as a table.

    KS distance per fit step ``t`` (rows) and layer (columns, NaN where the layer was not
    fitted at that step); ``rejected`` marks cells where the zero-mean law is rejected
    (:attr:`UpdateFit.rejected`).
    """

    layers: tuple[str, ...]
    t: np.ndarray
    ks: np.ndarray
    rejected: np.ndarray


@dataclass(frozen=True)
class UpdateMoments:
    """Scaled variance and magnitude variance of the update against t (Corollaries 1, 2).

    ``scaled_var = Var(z) t_eff`` (theory 1) and ``scaled_var_abs = Var|z| t_eff`` (theory
    ``Var|sqrt(t) C_t|``, rising to 1 - 2/pi), per sample row and layer.
    """

    layers: tuple[str, ...]
    steps: np.ndarray
    scaled_var: np.ndarray
    scaled_var_abs: np.ndarray
    theory_var: np.ndarray
    theory_var_abs: np.ndarray
    _ROWS: ClassVar[tuple[str, ...]] = (
        "steps",
        "scaled_var",
        "scaled_var_abs",
        "theory_var",
        "theory_var_abs",
    )
    _SUMS: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class EpsilonCheck:
    """Per layer: the fraction of coordinates whose stepsize is set by eps, not by v.

    A coordinate is eps-dominated when ``u >= 1/(1.01 eps)`` (``sqrt(v_hat) <= 0.01 eps``).
    ``fraction_last`` is that fraction at the last row with a value, ``fraction_max`` the
    largest over the rows; ``flagged`` marks layers whose ``fraction_max > threshold``.
    ``source`` is ``"recorded"`` (exact counts over all coordinates) or ``"subsample"``
    (estimated from the recorded stepsizes of the sampled coordinates).
    """

    layers: tuple[str, ...]
    fraction_last: np.ndarray
    fraction_max: np.ndarray
    threshold: float
    flagged: np.ndarray
    source: str

    @property
    def flagged_layers(self) -> tuple[str, ...]:
        """Names of the flagged layers."""
        return tuple(n for n, f in zip(self.layers, self.flagged) if f)


@dataclass(frozen=True)
class StepLength:
    """Length of the parameter step ``||x_t - x_{t-1}||`` per layer and for the network.

    ``layer_norm`` (T, L) are the recorded update norms, ``global_norm`` (T,) their root sum
    of squares. The window series hold non-overlapping windows of consecutive recorded rows
    (``window_steps``: the last step of each window): mean, std and coefficient of variation
    ``cv = std/mean`` per layer (``window_*``) and of the global length (``global_window_*``).
    ``count``/``total``/``total_sq`` (per layer, and ``global_*``) cover every row and give
    :attr:`cv` of the whole run; sums are taken about ``shift`` (per layer) for accuracy.
    """

    layers: tuple[str, ...]
    window: int
    steps: np.ndarray
    layer_norm: np.ndarray
    global_norm: np.ndarray
    window_steps: np.ndarray
    window_mean: np.ndarray
    window_std: np.ndarray
    window_cv: np.ndarray
    global_window_mean: np.ndarray
    global_window_std: np.ndarray
    global_window_cv: np.ndarray
    shift: np.ndarray
    count: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray
    _ROWS: ClassVar[tuple[str, ...]] = ("steps", "layer_norm", "global_norm")
    _WINDOWS: ClassVar[tuple[str, ...]] = (
        "window_steps",
        "window_mean",
        "window_std",
        "window_cv",
        "global_window_mean",
        "global_window_std",
        "global_window_cv",
    )
    _SUMS: ClassVar[tuple[str, ...]] = ("count", "total", "total_sq")

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = self.total / self.count
            var = np.maximum(self.total_sq / self.count - d**2, 0.0)
            var = var * self.count / np.maximum(self.count - 1, 1)
        return self.shift + d, np.sqrt(var)

    @property
    def mean(self) -> np.ndarray:
        """Mean step length over every row: per layer, then the global length last."""
        return self._moments()[0]

    @property
    def std(self) -> np.ndarray:
        """Std (n - 1) of the step length over every row, per layer then global."""
        return self._moments()[1]

    @property
    def cv(self) -> np.ndarray:
        """Coefficient of variation std/mean over every row, per layer then global."""
        m, s = self._moments()
        with np.errstate(divide="ignore", invalid="ignore"):
            return s / m


@dataclass(frozen=True)
class NonfiniteSummary:
    """Non-finite (NaN or infinite) values the recorder counted, per quantity and layer.

    ``total[q, l]`` sums the per-row counts of quantity ``quantities[q]`` in layer ``l``
    (coordinate-rows); ``rows[q, l]`` counts rows with any; ``first_step[q, l]`` is the first
    step with one (``-1``: none). ``loss_total``/``loss_first_step`` do the same for the loss.
    """

    quantities: tuple[str, ...]
    layers: tuple[str, ...]
    total: np.ndarray
    rows: np.ndarray
    first_step: np.ndarray
    # 0-d counts: NumPy integers (np.int64) as the analyzer builds them
    loss_total: np.ndarray | np.integer
    loss_first_step: np.ndarray | np.integer
    _ROWS: ClassVar[tuple[str, ...]] = ()
    _SUMS: ClassVar[tuple[str, ...]] = ("total", "rows", "loss_total")
    _FIRST: ClassVar[tuple[str, ...]] = ("first_step", "loss_first_step")

    @property
    def any(self) -> bool:
        """Whether anything was non-finite."""
        return bool(np.sum(self.total) > 0 or int(self.loss_total) > 0)


@dataclass(frozen=True)
class SignificanceTrend:
    """Does the non-random fraction follow layer size or depth? (Spearman rank correlations).

    ``rho_size``/``p_size``: correlation of each layer's non-random fraction with its size n;
    ``rho_depth``/``p_depth``: with its depth (0 = input). NaN with fewer than 3 layers or a
    constant fraction.
    """

    quantity: str
    n_layers: int
    rho_size: float
    p_size: float
    rho_depth: float
    p_depth: float


@dataclass(frozen=True)
class ExamplewiseProfile:
    """Per-example gradient statistics over time, per layer and for the network (Eve, Cockpit).

    The series are the recorded ones (``gradscope.examplewise.layer_stats`` /
    ``network_stats``): ``variance`` = sum over coordinates of the unbiased per-example
    variance, ``grad_norm_sq`` = ``||gbar||^2``, ``gsnr`` = mean over coordinates of
    ``gbar_i^2 / Var_b g_b,i``, and the three batch-size tests as the smallest constant for
    which each passes: ``norm_test`` = ``sqrt(variance / (B ||gbar||^2))`` (Byrd et al.,
    2012), ``inner_product_test`` and ``orthogonality_test`` (Bollapragada et al., 2018).
    Per-layer arrays are ``(T, L)``; ``network_*`` and ``batch_size`` are ``(T,)``.

    ``n_tested``/``n_too_small`` count, per layer over every row (summed over chunks), the
    rows with a defined norm test and those where it exceeds ``theta``: the batch is then
    too small by Byrd et al.'s criterion with constant theta.
    """

    layers: tuple[str, ...]
    steps: np.ndarray
    batch_size: np.ndarray
    variance: np.ndarray
    grad_norm_sq: np.ndarray
    gsnr: np.ndarray
    norm_test: np.ndarray
    inner_product_test: np.ndarray
    orthogonality_test: np.ndarray
    network_variance: np.ndarray
    network_grad_norm_sq: np.ndarray
    network_gsnr: np.ndarray
    network_norm_test: np.ndarray
    network_inner_product_test: np.ndarray
    network_orthogonality_test: np.ndarray
    n_tested: np.ndarray
    n_too_small: np.ndarray
    # 0-d counts: NumPy integers (np.int64) as the analyzer builds them
    network_n_tested: np.ndarray | np.integer
    network_n_too_small: np.ndarray | np.integer
    theta: float
    _ROWS: ClassVar[tuple[str, ...]] = (
        "steps",
        "batch_size",
        "variance",
        "grad_norm_sq",
        "gsnr",
        "norm_test",
        "inner_product_test",
        "orthogonality_test",
        "network_variance",
        "network_grad_norm_sq",
        "network_gsnr",
        "network_norm_test",
        "network_inner_product_test",
        "network_orthogonality_test",
    )
    _SUMS: ClassVar[tuple[str, ...]] = (
        "n_tested",
        "n_too_small",
        "network_n_tested",
        "network_n_too_small",
    )

    @property
    def fraction_too_small(self) -> np.ndarray:
        """Per layer: fraction of rows with ``norm_test > theta`` (NaN: nothing tested)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.n_too_small / self.n_tested

    @property
    def network_fraction_too_small(self) -> float:
        """Fraction of rows whose whole-network norm test exceeds ``theta``."""
        n = int(self.network_n_tested)
        return int(self.network_n_too_small) / n if n else float("nan")

    @property
    def median_gsnr(self) -> np.ndarray:
        """Per layer: median GSNR over the record's rows (finite values only; else NaN)."""
        return _nanmedian_columns(self.gsnr)

    @property
    def network_median_gsnr(self) -> float:
        """Median whole-network GSNR over the record's rows (finite values only)."""
        return float(_nanmedian_columns(np.asarray(self.network_gsnr)[:, None])[0])


def _nanmedian_columns(x: np.ndarray) -> np.ndarray:
    """Column medians of the finite entries of ``(T, L)``; NaN where none (no warning)."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        col = x[:, j][np.isfinite(x[:, j])]
        if col.size:
            out[j] = np.median(col)
    return out


@dataclass(frozen=True)
class LawCurves:
    """Theoretical densities on grids, one curve per (t, betas) case, for ``gradscope theory``."""

    labels: tuple[str, ...]
    grids: tuple[np.ndarray, ...]
    pdfs: tuple[np.ndarray, ...]
    variances: np.ndarray


def concat_rows(parts: list[R]) -> R:
    """Join chunk results of one record type along the step axis.

    Fields in ``_ROWS`` (and ``_WINDOWS``) are concatenated, counts in ``_SUMS`` add up,
    flags in ``_ALL`` hold where they hold in every part, first steps in ``_FIRST`` (-1:
    none) take the earliest; anything else is taken from the first part.
    """
    if not parts:
        raise ValueError("nothing to combine")
    first: Any = parts[0]
    cls = type(first)
    rows = cls._ROWS + getattr(cls, "_WINDOWS", ())
    sums, alls, firsts = cls._SUMS, getattr(cls, "_ALL", ()), getattr(cls, "_FIRST", ())
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        vals = [getattr(p, f.name) for p in parts]
        if f.name in rows:
            kw[f.name] = np.concatenate(vals, axis=0)
        elif f.name in sums:
            kw[f.name] = np.sum(vals, axis=0)
        elif f.name in alls:
            kw[f.name] = np.logical_and.reduce([np.asarray(v, dtype=bool) for v in vals])
        elif f.name in firsts:
            big = np.iinfo(np.int64).max
            st = np.stack([np.where(np.asarray(v) < 0, big, v) for v in vals])
            low = st.min(axis=0)
            kw[f.name] = np.where(low == big, -1, low).astype(np.int64)
        else:
            kw[f.name] = vals[0]
    return cls(**kw)


def take_rows(record: R, index: np.ndarray) -> R:
    """The same record restricted to the given step rows (counts unchanged)."""
    rec: Any = record
    return dataclasses.replace(rec, **{n: getattr(rec, n)[index] for n in type(rec)._ROWS})


def thin_index(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced row indices of ``n`` rows, the last included."""
    if n <= max_points:
        return np.arange(n)
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    return idx
