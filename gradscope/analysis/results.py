"""Frozen result records of the analyzers (scipy-style named results, Rule 6).

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


@dataclass(frozen=True)
class StepsizeRange:
    """Per-layer stepsize range over time (SET-Adam): min, max and ``log10(max/min)``."""

    layers: tuple[str, ...]
    steps: np.ndarray
    min: np.ndarray
    max: np.ndarray
    spread: np.ndarray
    _ROWS: ClassVar[tuple[str, ...]] = ("steps", "min", "max", "spread")
    _SUMS: ClassVar[tuple[str, ...]] = ()

    @property
    def max_spread(self) -> np.ndarray:
        """Largest ``log10(max/min)`` of each layer over the run."""
        s = np.where(np.isfinite(self.spread), self.spread, -np.inf).max(axis=0, initial=-np.inf)
        return np.where(np.isfinite(s), s, np.nan)


@dataclass(frozen=True)
class RandomnessResult:
    """Cosine randomness test of successive recorded vectors, per layer and step.

    ``pvalue`` is exact under "independent, isotropic" (n = layer size), ``qvalue`` the
    BH-adjusted value across layers at each step, ``nonrandom = qvalue < alpha``.
    ``n_tested``/``n_nonrandom`` count finite rows per layer (summed over chunks).
    ``null_applies`` is False for updates of momentum methods: cos(m_t, m_{t-1}) is near
    beta1 for pure noise, so a small p-value there says nothing (``note`` says so).
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
    n_seed_nonrandom: np.ndarray
    alpha: float
    critical_value: np.ndarray
    seed_threshold: np.ndarray
    seed_fpr: np.ndarray
    null_applies: bool
    note: str
    _ROWS: ClassVar[tuple[str, ...]] = (
        "steps",
        "cosine",
        "pvalue",
        "log10_pvalue",
        "qvalue",
        "nonrandom",
    )
    _SUMS: ClassVar[tuple[str, ...]] = ("n_tested", "n_nonrandom", "n_seed_nonrandom")

    @property
    def fraction_nonrandom(self) -> np.ndarray:
        """Fraction of tested steps flagged non-random, per layer (input -> output)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.n_nonrandom / self.n_tested

    @property
    def fraction_seed_nonrandom(self) -> np.ndarray:
        """Fraction of steps with ``|cos| > sqrt(log n / n)`` (the seed's rule), per layer."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.n_seed_nonrandom / self.n_tested


@dataclass(frozen=True)
class UpdateFit:
    """One layer's normalized update at one step against the exact law (seed 003).

    ``u = -update/lr`` (= m_hat/(sqrt(v_hat)+eps) for Adam) is compared with ``law``; the
    histogram (``edges``, ``density``) and the law's pdf on ``grid`` are ready to draw.
    Goodness-of-fit effect sizes come from :func:`gradscope.theory.goodness_of_fit`.
    """

    layer: str
    step: int
    t: int
    law: str
    n: int
    edges: np.ndarray
    density: np.ndarray
    grid: np.ndarray
    pdf: np.ndarray
    ks_distance: float
    cvm_omega2: float
    pit_tv_distance: float
    var_ratio: float
    magnitude_var_ratio: float
    skewness: float
    excess_kurtosis: float
    bimodal: bool
    skewed: bool
    heavy_tailed: bool


@dataclass(frozen=True)
class UpdateMoments:
    """Scaled variance and magnitude variance of the update against t (Corollaries 1, 2).

    ``scaled_var = Var(u) t_eff`` (theory 1) and ``scaled_var_abs = Var|u| t_eff`` (theory
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
    """Layers whose gradient RMS is so small that eps dominates the update (spec 7.4)."""

    layers: tuple[str, ...]
    median_rms: np.ndarray
    threshold: float
    flagged: np.ndarray

    @property
    def flagged_layers(self) -> tuple[str, ...]:
        """Names of the flagged layers."""
        return tuple(n for n, f in zip(self.layers, self.flagged) if f)


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
    network_n_tested: np.ndarray
    network_n_too_small: np.ndarray
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
    """Join chunk results of one record type along the step axis; counts add up."""
    if not parts:
        raise ValueError("nothing to combine")
    first: Any = parts[0]
    rows, sums = type(first)._ROWS, type(first)._SUMS
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        vals = [getattr(p, f.name) for p in parts]
        if f.name in rows:
            kw[f.name] = np.concatenate(vals, axis=0)
        elif f.name in sums:
            kw[f.name] = np.sum(vals, axis=0)
        else:
            kw[f.name] = vals[0]
    return type(first)(**kw)


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
