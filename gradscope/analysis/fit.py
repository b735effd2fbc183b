"""Recorded updates against the exact laws of the adaptive update (docs/theory.md).

What the run file allows. The recorder stores, per sampled coordinate, the applied update
``Delta = -lr u m_hat`` (u the optimizer's stepsize) and the learning rate per group. The
theory's variable is ``m_hat / sqrt(v_hat)``; for Adam ``u = 1/(sqrt(v_hat) + eps)``, so

    z = -Delta / lr = m_hat / (sqrt(v_hat) + eps)

is exactly the theory's update up to eps and up to decoupled weight decay (AdamW with
``wd > 0`` adds ``wd * param`` to z). Coordinates whose stepsize sits at the eps cap, or
whose gradient has been exactly zero at every sampled row so far, are *dead*: their z is 0
whatever the law, so they are left out of the fits by default (:func:`dead_coordinates`).

The zero-mean reference law is the exact EMA-m / uniform-v law ``k C_t`` (``C_t`` the cosine
law in R^t, ``k = sqrt(t) ||w||`` with ``w`` the bias-corrected EMA weights of the layer's
own beta1 at every step, so a beta1 schedule is reflected); docs/theory.md gives its
derivation and its distance from real Adam (about 1e-4 in CDF for t >= 3 with
beta2 = 0.999). When it is rejected, :func:`noncentral_fit` fits the mixture of exact
non-central laws at each sampled coordinate's own gradient signal-to-noise ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

from gradscope import theory
from gradscope.analysis.results import (
    EpsilonCheck,
    FitMisfit,
    LawCurves,
    NoncentralFit,
    TwoPointCheck,
    UpdateFit,
    UpdateMoments,
)

if TYPE_CHECKING:
    from scipy.stats._distn_infrastructure import rv_continuous_frozen

__all__ = [
    "dead_coordinates",
    "epsilon_check",
    "ever_nonzero",
    "ever_zero",
    "fit_misfit",
    "gradient_snr",
    "law_curves",
    "law_scale",
    "noncentral_fit",
    "normalized_update",
    "reference_law",
    "select_fit_layers",
    "select_fit_steps",
    "two_point_check",
    "update_fit",
    "update_moments",
]

#: A layer with fewer coordinates is not fitted unless asked for by name.
MIN_FIT_SIZE = 256
#: The stepsize at which eps, not v, sets the step: u >= 1/(EPS_CAP * eps).
EPS_CAP = 1.01
#: Default optimizer steps of the update fits (those recorded in the subsample).
DEFAULT_FIT_STEPS = (1, 2, 3, 10, 100, 1000, 10000)


def normalized_update(update: npt.ArrayLike, lr: npt.ArrayLike) -> np.ndarray:
    """The normalised update ``z = -update / lr`` (per unit learning rate; not the stepsize u)."""
    lr = np.asarray(lr, dtype=float)
    if np.any(lr <= 0):
        raise ValueError("the learning rate must be positive to normalize updates")
    return -np.asarray(update, dtype=float) / lr


def reference_law(t: int, beta1: float | None) -> rv_continuous_frozen:
    """The frozen exact law used as reference at step ``t >= 2`` (EMA m, uniform v)."""
    if t < 2:
        raise ValueError(f"the update law has a density only from t = 2, got t = {t}")
    law = theory.adam_update(t) if beta1 is None else theory.ema_update(t, beta1)
    # scipy types freezing any law as "continuous or discrete"; these laws are continuous
    return cast("rv_continuous_frozen", law)


def law_scale(t: int, beta1: float | None | npt.ArrayLike) -> float:
    """``k = sqrt(t) ||w||`` of the zero-mean law ``k C_t`` at step t.

    ``beta1``: ``None`` (simple averaging, k = 1), a constant, or the beta1 in force at
    each step 1..t (a schedule). ``w`` are torch's bias-corrected EMA weights:
    ``m_t = b_t m_{t-1} + (1 - b_t) g_t`` and ``m_hat = m_t / (1 - b_t^t)``.
    """
    t = int(t)
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    if beta1 is None:
        return 1.0
    b = np.broadcast_to(np.asarray(beta1, dtype=float), (t,)) if np.ndim(beta1) == 0 else None
    if b is None:
        b = np.asarray(beta1, dtype=float).reshape(-1)
        if b.size != t:
            raise ValueError(f"a beta1 schedule needs one value per step 1..{t}, got {b.size}")
    if np.any(~np.isfinite(b)) or np.any((b < 0) | (b >= 1)):
        raise ValueError("beta1 must be in [0, 1) at every step")
    # weight of g_i: (1 - b_i) prod_{j > i} b_j, then bias correction with the current b_t
    later = np.concatenate([np.cumprod(b[::-1])[::-1][1:], [1.0]])
    w = (1.0 - b) * later / (1.0 - b[-1] ** t)
    return float(np.sqrt(t * np.sum(w**2)))


def _equivalent_beta(t: int, k: float) -> float | None:
    """The constant beta1 whose EMA has the same ``k`` at step t (None: simple averaging)."""
    t_eff = t / k**2
    if t_eff >= t * (1 - 1e-12):
        return None
    if t_eff <= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0 - 1e-15
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(theory.t_eff(t, mid)) < t_eff:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _law_name(t: int, beta1: float | None | npt.ArrayLike, k: float) -> str:
    if beta1 is None:
        return f"adam_update(t={t})"
    if np.ndim(beta1) == 0:
        return f"ema_update(t={t}, beta1={float(beta1):g})"  # type: ignore[arg-type]
    b = np.asarray(beta1, dtype=float)
    return f"k C_t (t={t}, beta1 schedule {b[0]:g}..{b[-1]:g}, k={k:.4g})"


def dead_coordinates(
    stepsize: npt.ArrayLike | None = None,
    eps: float | None = None,
    ever_nonzero: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Which sampled coordinates are dead at one row.

    A coordinate is dead when its stepsize is at the eps cap, ``u >= 1/(1.01 eps)``
    (``sqrt(v_hat) <= 0.01 eps``: eps, not the gradient, sets the step), or when its
    gradient has been exactly zero at every sampled row so far (``ever_nonzero`` False; see
    :func:`ever_nonzero`). Either input may be missing (``None``); with neither, nothing is
    dead.
    """
    parts = []
    if stepsize is not None and eps is not None and np.isfinite(eps) and eps > 0:
        u = np.asarray(stepsize, dtype=float)
        parts.append(u >= 1.0 / (EPS_CAP * float(eps)))
    if ever_nonzero is not None:
        parts.append(~np.asarray(ever_nonzero, dtype=bool))
    if not parts:
        return np.zeros(0, dtype=bool)
    shape = np.broadcast_shapes(*(p.shape for p in parts))
    out = np.zeros(shape, dtype=bool)
    for p in parts:
        out |= p
    return out


def ever_zero(grad_rows: npt.ArrayLike, prior: npt.ArrayLike | None = None) -> np.ndarray:
    """Per coordinate: was any recorded gradient sample (rows of ``(T, k)``) exactly zero?"""
    g = np.atleast_2d(np.asarray(grad_rows))
    out = np.any(g == 0, axis=0)
    return out if prior is None else out | np.asarray(prior, dtype=bool)


def ever_nonzero(grad_rows: npt.ArrayLike, prior: npt.ArrayLike | None = None) -> np.ndarray:
    """Per coordinate: was any recorded gradient sample (rows of ``(T, k)``) non-zero?

    ``prior`` carries the answer of earlier row blocks (so long runs go block by block).
    """
    g = np.atleast_2d(np.asarray(grad_rows))
    out = np.any(g != 0, axis=0)
    return out if prior is None else out | np.asarray(prior, dtype=bool)


def gradient_snr(grad: npt.ArrayLike) -> np.ndarray:
    """Per coordinate ``mu/sigma`` from ``(W, k)`` recorded gradients over a window.

    ``mu^2`` is estimated without the sampling bias of the mean (``mbar^2 - s^2/W``, at
    least 0), so i.i.d. zero-mean gradients give snr near 0 rather than ``1/sqrt(W)``; the
    sign is that of ``mbar``. NaN where the window has fewer than 2 finite values or s = 0.
    """
    g = np.atleast_2d(np.asarray(grad, dtype=float))
    g = np.where(np.isfinite(g), g, np.nan)
    with np.errstate(all="ignore"):
        w = np.sum(np.isfinite(g), axis=0).astype(float)
        m = np.nanmean(g, axis=0)
        s2 = np.nanvar(g, axis=0, ddof=1)
        mu2 = np.maximum(m**2 - s2 / w, 0.0)
        snr = np.sign(m) * np.sqrt(mu2 / s2)
    return np.where((w >= 2) & (s2 > 0), snr, np.nan)


class _GridLaw:
    """A law known by its CDF on a grid (a mixture of non-central laws)."""

    def __init__(self, grid: np.ndarray, cdf: np.ndarray) -> None:
        self.grid, self._cdf = grid, np.maximum.accumulate(np.clip(cdf, 0.0, 1.0))

    def cdf(self, x: npt.ArrayLike) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=float), self.grid, self._cdf, left=0.0, right=1.0)

    def pdf_and_var(self) -> tuple[np.ndarray, np.ndarray, float]:
        mid = 0.5 * (self.grid[1:] + self.grid[:-1])
        p = np.diff(self._cdf)
        dens = p / np.diff(self.grid)
        mean = float(np.sum(mid * p))
        return mid, dens, float(np.sum((mid - mean) ** 2 * p))


def noncentral_fit(
    x: npt.ArrayLike,
    t: int,
    beta1: float | None | npt.ArrayLike,
    snr: npt.ArrayLike,
    *,
    window: int,
    bins: int = 8,
    grid_points: int = 201,
) -> NoncentralFit:
    """Updates against the mixture over coordinates of the exact non-central law.

    Args:
        x: normalized updates of the live sampled coordinates.
        t: as in :func:`update_fit`.
        beta1: as in :func:`update_fit` (a schedule is matched by the constant beta1 with
            the same scale k).
        snr: each coordinate's gradient ``mu/sigma`` (:func:`gradient_snr`), aligned with x.
        window: sample rows the snr came from (reported).
        bins: the |snr| values are grouped into this many quantile bins (the law of each
            bin at its median |snr|; the sign enters as ``F(x; -s) = 1 - F(-x; s)``).
        grid_points: points of the CDF grid.
    """
    x = np.asarray(x, dtype=float).ravel()
    snr = np.asarray(snr, dtype=float).ravel()
    if x.shape != snr.shape:
        raise ValueError(f"x {x.shape} and snr {snr.shape} must align")
    ok = np.isfinite(x) & np.isfinite(snr)
    x, snr = x[ok], snr[ok]
    if x.size < 2:
        raise ValueError(f"need at least 2 coordinates with a finite snr, got {x.size}")
    t = int(t)
    k = law_scale(t, beta1)
    b = _equivalent_beta(t, k) if t >= 2 else None
    a = np.abs(snr)
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, a, side="right") - 1, 0, max(len(edges) - 2, 0))
    grid = np.linspace(-k, k, grid_points)
    mix = np.zeros(grid_points)
    for j in np.unique(which):
        sel = which == j
        s_b = float(np.median(a[sel]))
        if s_b == 0.0:  # the central law k C_t, in closed form
            f_pos = np.asarray(theory.cosine_null(t, scale=k).cdf(grid), dtype=float)
        else:
            f_pos = np.asarray(theory.ema_nc_cdf(grid, t, b, s_b), dtype=float)
        f_neg = 1.0 - f_pos[::-1]  # the grid is symmetric: F(x; -s) = 1 - F(-x; s)
        pos = np.sum(sel & (snr >= 0))
        mix += pos * f_pos + (np.sum(sel) - pos) * f_neg
    law = _GridLaw(grid, mix / x.size)
    mid, dens, var = law.pdf_and_var()
    return NoncentralFit(
        window=int(window),
        n=int(x.size),
        median_abs_snr=float(np.median(a)),
        ks_distance=float(theory.ks_distance(x, law.cdf)),
        var_ratio=float(np.var(x) / var) if var > 0 else float("nan"),
        grid=mid,
        pdf=dens,
    )


def rejects(ks: float, n: int) -> bool:
    """The zero-mean law is rejected: KS above its 1 % critical value and above 0.02."""
    return bool(ks > max(1.63 / np.sqrt(max(n, 1)), 0.02))


def update_fit(
    x: npt.ArrayLike,
    t: int,
    beta1: float | None | npt.ArrayLike = 0.9,
    *,
    dead: npt.ArrayLike | None = None,
    exclude_dead: bool = True,
    grad: npt.ArrayLike | None = None,
    sparse: npt.ArrayLike | None = None,
    layer: str = "",
    step: int | None = None,
    bins: int = 60,
    grid_points: int = 201,
) -> UpdateFit:
    """Histogram of one layer's normalized updates at step t with the exact law on a grid.

    Args:
        x: normalized updates (:func:`normalized_update`) of the sampled coordinates.
        t: the optimizer's own step (number of gradients averaged), ``>= 2``.
        beta1: first-moment EMA factor of the layer's group; ``None`` for simple averaging;
            or the values at every step 1..t (a schedule: see :func:`law_scale`).
        dead: boolean mask of dead coordinates aligned with x (:func:`dead_coordinates`).
        exclude_dead: leave the dead coordinates out of the fit (their x is 0 whatever the
            law); ``ks_with_dead`` always keeps them.
        grad: ``(W, k)`` recorded gradients of the same coordinates over a window: when the
            zero-mean law is rejected, the non-central law is fitted (:func:`noncentral_fit`).
        sparse: mask of coordinates whose gradient was exactly zero at some earlier step
            (but not at all): counted, and the KS distance without them is recorded.
        layer: label stored in the record.
        step: label stored in the record (defaults to ``t``).
        bins: histogram bins.
        grid_points: points of the pdf grid.
    """
    x = np.asarray(x, dtype=float).ravel()
    t = int(t)
    if t < 2:
        raise ValueError(f"the update law has a density only from t = 2, got t = {t}")
    d = np.zeros(x.shape, dtype=bool) if dead is None else np.asarray(dead, dtype=bool).ravel()
    if d.shape != x.shape:
        raise ValueError(f"dead mask {d.shape} must align with the updates {x.shape}")
    finite = np.isfinite(x)
    keep = finite & ~d if exclude_dead else finite
    xa, xk = x[finite], x[keep]
    if xk.size < 2:
        raise ValueError(f"need at least 2 finite live updates, got {xk.size}")
    k = law_scale(t, beta1)
    # scipy types freezing any law as "continuous or discrete"; this one is continuous
    law = cast("rv_continuous_frozen", theory.cosine_null(t, scale=k))
    var = k**2 / t
    var_abs = k**2 * float(theory.var_abs_update(t))
    gof = theory.goodness_of_fit(xk, law, law_var=var, law_abs_var=var_abs)
    ks_all = float(theory.ks_distance(xa, law.cdf)) if xa.size else float("nan")
    # the histogram's range follows the data (late in training the updates fill a small
    # part of the law's support [-k, k]); the law is drawn over the same range
    span = min(k, 1.05 * float(np.max(np.abs(xk))))
    span = span if span > 0 else k
    edges = np.linspace(-span, span, bins + 1)
    density, _ = np.histogram(xk, bins=edges, density=True)
    grid = np.linspace(-span, span, grid_points)[1:-1]
    pdf = np.asarray(law.pdf(grid), dtype=float)
    rejected = rejects(gof.ks_distance, xk.size)
    nc = None
    if rejected and grad is not None:
        g = np.atleast_2d(np.asarray(grad, dtype=float))
        if g.shape[-1] != x.size:
            raise ValueError(f"grad window {g.shape} must have {x.size} columns")
        snr = gradient_snr(g[:, keep])
        if np.isfinite(snr).sum() >= 2:
            nc = noncentral_fit(xk, t, beta1, snr, window=g.shape[0])
    n_sparse, ks_ns = 0, float("nan")
    if sparse is not None:
        sp = np.asarray(sparse, dtype=bool).ravel()
        if sp.shape != x.shape:
            raise ValueError(f"sparse mask {sp.shape} must align with the updates {x.shape}")
        n_sparse = int(np.sum(sp & keep))
        rest = x[keep & ~sp]
        if n_sparse and rest.size >= 2:
            ks_ns = float(theory.ks_distance(rest, law.cdf))
        elif not n_sparse:
            ks_ns = gof.ks_distance
    return UpdateFit(
        layer=layer,
        step=int(t if step is None else step),
        t=t,
        law=_law_name(t, beta1, k),
        scale=k,
        n=int(xk.size),
        n_dead=int(np.sum(d & finite)),
        dead_excluded=bool(exclude_dead),
        edges=edges,
        density=density,
        grid=grid,
        pdf=pdf,
        ks_distance=gof.ks_distance,
        ks_with_dead=ks_all,
        cvm_omega2=gof.cvm_omega2,
        pit_tv_distance=gof.pit_tv_distance,
        var_ratio=gof.var_ratio,
        magnitude_var_ratio=gof.magnitude_var_ratio,
        skewness=gof.skewness,
        excess_kurtosis=gof.excess_kurtosis,
        bimodal=gof.bimodal,
        skewed=gof.skewed,
        heavy_tailed=gof.heavy_tailed,
        rejected=rejected,
        noncentral=nc,
        n_sparse=n_sparse,
        ks_without_sparse=ks_ns,
    )


def two_point_check(
    x: npt.ArrayLike,
    *,
    grad: npt.ArrayLike | None = None,
    eps: float | None = None,
    dead: npt.ArrayLike | None = None,
    tol: float = 1e-3,
    layer: str = "",
    step: int = 1,
) -> TwoPointCheck:
    """At t = 1 Adam's normalized update is ``g/(|g| + eps)``: ``|u| = 1`` up to eps.

    With the coordinates' gradients ``grad`` and ``eps`` the expected magnitude is exactly
    ``|g|/(|g| + eps)`` (small gradients of real networks sit visibly below 1); without,
    it is 1. ``fraction_unit`` is the fraction of live finite coordinates within ``tol``
    of it; dead coordinates (``dead``) are left out.
    """
    x = np.asarray(x, dtype=float).ravel()
    d = np.zeros(x.shape, dtype=bool) if dead is None else np.asarray(dead, dtype=bool).ravel()
    want = np.ones(x.shape)
    if grad is not None and eps is not None and np.isfinite(eps):
        g = np.abs(np.asarray(grad, dtype=float).ravel())
        if g.shape != x.shape:
            raise ValueError(f"grad {g.shape} must align with the updates {x.shape}")
        with np.errstate(invalid="ignore", divide="ignore"):
            want = g / (g + float(eps))
    keep = np.isfinite(x) & np.isfinite(want) & ~d
    dev = np.abs(np.abs(x[keep]) - want[keep])
    return TwoPointCheck(
        layer=layer,
        step=int(step),
        n=int(keep.sum()),
        n_dead=int(np.sum(d & np.isfinite(x))),
        tol=float(tol),
        fraction_unit=float(np.mean(dev <= tol)) if dev.size else float("nan"),
        max_deviation=float(dev.max()) if dev.size else float("nan"),
    )


def select_fit_layers(
    names: Sequence[str],
    sizes: npt.ArrayLike,
    which: str | int | Sequence[str] | None = None,
    *,
    min_size: int = MIN_FIT_SIZE,
    default_count: int = 4,
) -> np.ndarray:
    """Column indices of the layers to fit, in input -> output order.

    ``None``/``"default"``: the ``default_count`` largest layers with at least ``min_size``
    coordinates; ``"all"``: every layer with at least ``min_size``; an int: that many of the
    largest such layers; names: exactly those layers, whatever their size.
    """
    n = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if n.size != len(names):
        raise ValueError(f"{n.size} sizes for {len(names)} layers")
    big = np.flatnonzero(n >= min_size)
    if which is None or (isinstance(which, str) and which == "default"):
        which = default_count
    if isinstance(which, str) and which == "all":
        return big
    if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
        if which < 0:
            raise ValueError(f"the number of fitted layers must be >= 0, got {which}")
        order = big[np.argsort(-n[big], kind="stable")][: int(which)]
        return np.sort(order)
    wanted = [which] if isinstance(which, str) else list(which)  # type: ignore[arg-type]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValueError(
            f"unknown fit layers {unknown}; the layers are: {', '.join(names)} (or use 'all')"
        )
    return np.array(sorted({list(names).index(w) for w in wanted}), dtype=np.int64)


def select_fit_steps(
    available: npt.ArrayLike, requested: Sequence[int] | None = None
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Row indices of the fit steps among the recorded subsample steps (the true t).

    ``requested`` steps are matched exactly; missing ones are returned as the second item
    (the caller says so). By default: each of :data:`DEFAULT_FIT_STEPS` that was recorded,
    or, if none was (a run resumed late), the first recorded row and up to 3 log-spaced ones.
    """
    st = np.asarray(available, dtype=np.int64).reshape(-1)
    if requested is not None:
        bad = [s for s in requested if int(s) < 1]
        if bad:
            raise ValueError(f"fit steps must be >= 1, got {bad}")
        want = sorted({int(s) for s in requested})
        rows = [int(np.flatnonzero(st == s)[0]) for s in want if np.any(st == s)]
        missing = tuple(s for s in want if not np.any(st == s))
        return np.array(rows, dtype=np.int64), missing
    rows = [int(np.flatnonzero(st == s)[0]) for s in DEFAULT_FIT_STEPS if np.any(st == s)]
    if not rows and st.size:
        pick = np.geomspace(1, st.size, num=min(4, st.size)).round().astype(np.int64) - 1
        rows = sorted(set(pick.tolist()))
    return np.array(rows, dtype=np.int64), ()


def update_moments(
    steps: npt.ArrayLike,
    x: np.ndarray | Sequence[npt.ArrayLike],
    beta1: float | None | npt.ArrayLike,
    layers: Sequence[str],
    *,
    dead: Sequence[npt.ArrayLike] | None = None,
) -> UpdateMoments:
    """Scaled ``Var(x) t_eff`` and ``Var|x| t_eff`` per row and layer beside Corollaries 1, 2.

    Args:
        steps: ``(T,)`` optimizer steps of the sample rows (the true t of the theory).
        x: ``(T, L, k)`` normalized updates, or a sequence of ``(T, k_l)`` arrays per layer.
        beta1: EMA factor (``None``: simple averaging, t_eff = t), or ``(T, L)`` values: each
            layer's own group beta1 at each row (NaN: simple averaging).
        layers: names.
        dead: per layer a ``(T, k_l)`` mask of dead coordinates, left out of the variances.
    """
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    per_layer = (
        [np.asarray(a, dtype=float) for a in x]
        if not isinstance(x, np.ndarray)
        else [np.asarray(x[:, i], dtype=float) for i in range(x.shape[1])]
    )
    if len(per_layer) != len(layers):
        raise ValueError(f"got {len(per_layer)} layers of samples for {len(layers)} names")
    if dead is not None and len(dead) != len(layers):
        raise ValueError(f"got {len(dead)} dead masks for {len(layers)} layers")
    t = np.maximum(steps, 1).astype(float)
    if beta1 is None:
        b = np.full((steps.size, len(layers)), np.nan)
    else:
        b = np.broadcast_to(np.asarray(beta1, dtype=float), (steps.size, len(layers)))
    with np.errstate(all="ignore"):
        t_eff = np.where(
            np.isfinite(b), theory.t_eff(t[:, None], np.where(np.isfinite(b), b, 0.5)), t[:, None]
        )
    var = np.full((steps.size, len(layers)), np.nan)
    var_abs = np.full_like(var, np.nan)
    with np.errstate(all="ignore"):
        for i, a in enumerate(per_layer):
            a = np.where(np.isfinite(a), a, np.nan)
            if dead is not None:
                a = np.where(np.asarray(dead[i], dtype=bool), np.nan, a)
            var[:, i] = np.nanvar(a, axis=1) * t_eff[:, i]
            var_abs[:, i] = np.nanvar(np.abs(a), axis=1) * t_eff[:, i]
    theory_abs = np.asarray(theory.var_abs_scaled_update(t), dtype=float)
    return UpdateMoments(
        layers=tuple(layers),
        steps=steps,
        scaled_var=var,
        scaled_var_abs=var_abs,
        theory_var=np.ones(steps.size),
        theory_var_abs=theory_abs,
    )


def epsilon_check(
    counts: npt.ArrayLike,
    sizes: npt.ArrayLike,
    layers: Sequence[str],
    *,
    threshold: float = 0.01,
    source: str = "recorded",
) -> EpsilonCheck:
    """Per layer, the fraction of coordinates whose stepsize eps decides.

    Args:
        counts: ``(T, L)`` coordinates with ``u >= 1/(1.01 eps)`` per row (the recorded
            ``eps_dominated`` counts, or counts among the sampled coordinates); NaN where
            unknown.
        sizes: ``(L,)`` coordinates the counts are out of (layer sizes, or sample sizes).
        layers: names.
        threshold: a layer is flagged when its largest fraction exceeds this.
        source: ``"recorded"`` or ``"subsample"`` (stored in the record).
    """
    c = np.atleast_2d(np.asarray(counts, dtype=float))
    n = np.asarray(sizes, dtype=float).reshape(-1)
    if c.shape[1] != len(layers) or n.size != len(layers):
        raise ValueError(f"counts {c.shape} must be (T, {len(layers)}) with one size per layer")
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(n > 0, c / n, np.nan)
    last = np.full(n.size, np.nan)
    top = np.full(n.size, np.nan)
    for i in range(n.size):
        col = f[:, i][np.isfinite(f[:, i])]
        if col.size:
            last[i], top[i] = col[-1], col.max()
    return EpsilonCheck(
        layers=tuple(layers),
        fraction_last=last,
        fraction_max=top,
        threshold=float(threshold),
        flagged=np.isfinite(top) & (top > threshold),
        source=source,
    )


def law_curves(
    ts: Sequence[int],
    beta1s: Sequence[float | None] = (0.9,),
    *,
    scaled: bool = False,
    grid_points: int = 301,
) -> LawCurves:
    """Exact densities of the update for every ``(t, beta1)`` pair, on grids over the support.

    ``scaled`` multiplies the variable by ``sqrt(t_eff)`` (unit variance: Corollary 1).
    """
    labels, grids, pdfs, variances = [], [], [], []
    for b in beta1s:
        for t in ts:
            law = reference_law(int(t), b)
            lo, hi = law.support()
            g = np.linspace(lo, hi, grid_points)[1:-1]
            p = np.asarray(law.pdf(g), dtype=float)
            v = float(law.var())
            if scaled:
                k = float(np.sqrt(1.0 / v))
                g, p, v = g * k, p / k, 1.0
            labels.append(f"t={t}, beta1={'avg' if b is None else f'{b:g}'}")
            grids.append(g)
            pdfs.append(p)
            variances.append(v)
    return LawCurves(tuple(labels), tuple(grids), tuple(pdfs), np.asarray(variances))


def fit_misfit(fits: Sequence[UpdateFit], layers: Sequence[str]) -> FitMisfit:
    """KS distance of each (fit step t, layer) in a ``(len(t), L)`` table (NaN: not fitted).

    Args:
        fits: the update fits of one run.
        layers: every layer of the run, input -> output (the table's columns).
    """
    ts = sorted({int(f.t) for f in fits})
    col = {name: i for i, name in enumerate(layers)}
    ks = np.full((len(ts), len(layers)), np.nan)
    rej = np.zeros((len(ts), len(layers)), dtype=bool)
    row = {t: i for i, t in enumerate(ts)}
    for f in fits:
        if f.layer in col:
            ks[row[int(f.t)], col[f.layer]] = f.ks_distance
            rej[row[int(f.t)], col[f.layer]] = f.rejected
    return FitMisfit(tuple(layers), np.asarray(ts, dtype=np.int64), ks, rej)
