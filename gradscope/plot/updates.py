"""Draw update histograms with precomputed exact-law overlays and the moment curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from gradscope.analysis.results import LawCurves, UpdateFit, UpdateMoments
from gradscope.plot.style import figure, palette

__all__ = ["draw_law_curves", "draw_update_fits", "draw_update_moments"]


def draw_update_fits(fits: Sequence[UpdateFit], ncols: int = 4) -> Figure:
    """One panel per (layer, step): histogram of u = -update/lr and the exact pdf."""
    n = max(len(fits), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, ax = figure(nrows, ncols, width=3.4, height=2.8)
    col = palette(2)
    for k, f in enumerate(fits):
        a = ax[k // ncols, k % ncols]
        a.stairs(f.density, f.edges, fill=True, alpha=0.5, color=col[0], label="recorded")
        a.plot(f.grid, f.pdf, color=col[1], lw=1.4, label="exact law")
        if f.noncentral is not None:
            a.plot(
                f.noncentral.grid,
                f.noncentral.pdf,
                color=col[1],
                ls="--",
                lw=1.2,
                label="non-central law",
            )
        flags = [
            s
            for s, on in (
                ("bimodal", f.bimodal),
                ("skewed", f.skewed),
                ("heavy tails", f.heavy_tailed),
            )
            if on
        ]
        nc = "" if f.noncentral is None else f" (non-central {f.noncentral.ks_distance:.3f})"
        dead = f", {f.n_dead} dead out" if f.n_dead and f.dead_excluded else ""
        a.set_title(
            f"{f.layer} t={f.t}{dead}\nKS={f.ks_distance:.3f}{nc} {' '.join(flags)}",
            fontsize="small",
        )
        a.set(xlabel="update per unit lr, -Δ/lr", ylabel="density")
        if k == 0 or f.noncentral is not None:
            a.legend(fontsize="x-small")
    for k in range(len(fits), nrows * ncols):
        ax[k // ncols, k % ncols].set_visible(False)
    return fig


def draw_update_moments(
    moments: UpdateMoments | Sequence[UpdateMoments], labels: Sequence[str] = ()
) -> Figure:
    """Var(u) t_eff and Var|u| t_eff against t beside Corollaries 1 and 2."""
    runs = list(moments) if isinstance(moments, (list, tuple)) else [moments]
    names = list(labels) if labels else [""] * len(runs)
    multi = len(runs) > 1
    fig, ax = figure(1, 2, width=5.2)
    for r, (m, name) in enumerate(zip(runs, names)):
        cols = palette(len(m.layers)) if not multi else [palette(len(runs))[r]] * len(m.layers)
        for i, layer in enumerate(m.layers):
            few = len(m.layers) <= 12
            lab = f"{name} {layer}".strip() if ((few and not multi) or i == 0) else None
            ax[0, 0].plot(m.steps, m.scaled_var[:, i], color=cols[i], lw=1, label=lab)
            ax[0, 1].plot(m.steps, m.scaled_var_abs[:, i], color=cols[i], lw=1)
    m = runs[0]
    ax[0, 0].plot(m.steps, m.theory_var, "k--", lw=1.5, label="Corollary 1")
    ax[0, 1].plot(m.steps, m.theory_var_abs, "k--", lw=1.5, label="Corollary 2")
    ax[0, 0].set(
        xscale="log",
        xlabel="optimizer step t",
        ylabel="Var(u) · t_eff (theory 1)",
        title="update variance",
    )
    ax[0, 1].set(
        xscale="log", xlabel="optimizer step t", ylabel="Var|u| · t_eff", title="magnitude variance"
    )
    for a in ax[0]:
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.xaxis.set_minor_formatter(NullFormatter())
    ax[0, 0].legend(fontsize="x-small")
    ax[0, 1].legend(fontsize="x-small")
    return fig


def draw_law_curves(curves: LawCurves) -> Figure:
    """Exact update densities for several (t, beta1) cases on one axis."""
    fig, ax = figure(1, 1, width=6.4)
    cols = palette(len(curves.labels))
    for c, label, g, p in zip(cols, curves.labels, curves.grids, curves.pdfs):
        ax[0, 0].plot(g, p, color=c, lw=1.4, label=label)
    ax[0, 0].set(
        xlabel="update per unit lr u = m_hat/sqrt(v_hat)",
        ylabel="density",
        title="exact laws of the adaptive update (i.i.d. Gaussian gradients)",
    )
    ax[0, 0].legend(fontsize="x-small")
    return fig
