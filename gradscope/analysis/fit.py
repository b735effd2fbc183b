"""Recorded updates against the exact laws of seed 003 (spec/theory.md sections 2-4, 7.4).

What the run file allows. The recorder stores, per sampled coordinate, the applied update
``Delta = -lr u m_hat`` (u the optimizer's stepsize) and the learning rate per group. The
theory's variable is ``m_hat / sqrt(v_hat)``; for Adam ``u = 1/(sqrt(v_hat) + eps)``, so

    x = -Delta / lr = m_hat / (sqrt(v_hat) + eps)

is exactly the theory's update up to eps (negligible unless the gradient RMS is below about
1e-6: :func:`epsilon_check`) and up to decoupled weight decay (AdamW with ``wd > 0`` adds
``wd * param`` to x). No per-coordinate division by the stepsize is needed.
The reference law is the exact EMA-m / uniform-v law ``sqrt(t/t_eff) C_t`` (within 1e-4 in
CDF of real Adam for t >= 3, spec section 4); it is cheap on 1e5 samples, unlike Imhof.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gradscope import theory
from gradscope.analysis.results import EpsilonCheck, LawCurves, UpdateFit, UpdateMoments

__all__ = [
    "epsilon_check",
    "law_curves",
    "normalized_update",
    "reference_law",
    "update_fit",
    "update_moments",
]


def normalized_update(update: npt.ArrayLike, lr: npt.ArrayLike) -> np.ndarray:
    """The theory's update ``x = -update / lr`` (per unit learning rate)."""
    lr = np.asarray(lr, dtype=float)
    if np.any(lr <= 0):
        raise ValueError("the learning rate must be positive to normalize updates")
    return -np.asarray(update, dtype=float) / lr


def reference_law(t: int, beta1: float | None):  # noqa: ANN201 - a frozen scipy law
    """The frozen exact law used as reference at step ``t >= 2`` (EMA m, uniform v)."""
    if t < 2:
        raise ValueError(f"the update law has a density only from t = 2, got t = {t}")
    if beta1 is None:
        return theory.adam_update(t)
    return theory.ema_update(t, beta1)


def _law_name(t: int, beta1: float | None) -> str:
    if beta1 is None:
        return f"adam_update(t={t})"
    return f"ema_update(t={t}, beta1={beta1:g})"


def update_fit(
    x: npt.ArrayLike,
    t: int,
    beta1: float | None = 0.9,
    *,
    layer: str = "",
    step: int | None = None,
    bins: int = 60,
    grid_points: int = 201,
) -> UpdateFit:
    """Histogram of one layer's normalized updates at step t with the exact law on a grid.

    Args:
        x: normalized updates (:func:`normalized_update`) of the sampled coordinates.
        t: optimizer step (number of gradients averaged), ``>= 2``.
        beta1: first-moment EMA factor; ``None`` for simple averaging (Theorem 1).
        layer, step: labels stored in the record (``step`` defaults to ``t``).
        bins: histogram bins.
        grid_points: points of the pdf grid.
    """
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        raise ValueError(f"need at least 2 finite updates, got {x.size}")
    law = reference_law(int(t), beta1)
    if beta1 is None:
        var, var_abs = float(theory.var_update(t)), float(theory.var_abs_update(t))
    else:
        var = float(theory.ema_var_update(t, beta1))
        var_abs = float(theory.ema_var_abs_update(t, beta1))
    gof = theory.goodness_of_fit(x, law, law_var=var, law_abs_var=var_abs)
    lo, hi = law.support()
    span = max(abs(lo), abs(hi), float(np.max(np.abs(x))))
    edges = np.linspace(-span, span, bins + 1)
    density, _ = np.histogram(x, bins=edges, density=True)
    grid = np.linspace(lo, hi, grid_points)[1:-1]
    pdf = np.asarray(law.pdf(grid), dtype=float)
    return UpdateFit(
        layer=layer,
        step=int(t if step is None else step),
        t=int(t),
        law=_law_name(int(t), beta1),
        n=int(x.size),
        edges=edges,
        density=density,
        grid=grid,
        pdf=pdf,
        ks_distance=gof.ks_distance,
        cvm_omega2=gof.cvm_omega2,
        pit_tv_distance=gof.pit_tv_distance,
        var_ratio=gof.var_ratio,
        magnitude_var_ratio=gof.magnitude_var_ratio,
        skewness=gof.skewness,
        excess_kurtosis=gof.excess_kurtosis,
        bimodal=gof.bimodal,
        skewed=gof.skewed,
        heavy_tailed=gof.heavy_tailed,
    )


def update_moments(
    steps: npt.ArrayLike,
    x: npt.ArrayLike,
    beta1: float | None,
    layers: Sequence[str],
) -> UpdateMoments:
    """Scaled ``Var(x) t_eff`` and ``Var|x| t_eff`` per row and layer beside Corollaries 1, 2.

    Args:
        steps: ``(T,)`` optimizer steps of the sample rows (the t of the theory).
        x: ``(T, L, k)`` normalized updates, or a sequence of ``(T, k_l)`` arrays per layer.
        beta1: EMA factor (``None``: simple averaging, t_eff = t).
        layers: names.
    """
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    per_layer = (
        [np.asarray(a, dtype=float) for a in x]
        if not isinstance(x, np.ndarray)
        else [np.asarray(x[:, i], dtype=float) for i in range(x.shape[1])]
    )
    if len(per_layer) != len(layers):
        raise ValueError(f"got {len(per_layer)} layers of samples for {len(layers)} names")
    t = np.maximum(steps, 1).astype(float)
    t_eff = t if beta1 is None else np.asarray(theory.t_eff(t, beta1), dtype=float)
    var = np.full((steps.size, len(layers)), np.nan)
    var_abs = np.full_like(var, np.nan)
    with np.errstate(all="ignore"):
        for i, a in enumerate(per_layer):
            a = np.where(np.isfinite(a), a, np.nan)
            var[:, i] = np.nanvar(a, axis=1) * t_eff
            var_abs[:, i] = np.nanvar(np.abs(a), axis=1) * t_eff
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
    grad_rms: npt.ArrayLike, layers: Sequence[str], threshold: float = 1e-6
) -> EpsilonCheck:
    """Flag layers whose median gradient RMS over time is below ``threshold`` (spec 7.4).

    Below about 1e-6, eps = 1e-8 outside the square root shrinks Var(u) visibly and the
    laws no longer apply.
    """
    r = np.atleast_2d(np.asarray(grad_rms, dtype=float))
    if r.shape[1] != len(layers):
        raise ValueError(f"grad_rms {r.shape} must be (T, {len(layers)})")
    med = np.full(r.shape[1], np.nan)
    for i in range(r.shape[1]):
        col = r[:, i][np.isfinite(r[:, i])]
        if col.size:
            med[i] = np.median(col)
    return EpsilonCheck(
        layers=tuple(layers),
        median_rms=med,
        threshold=float(threshold),
        flagged=np.isfinite(med) & (med < threshold),
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
