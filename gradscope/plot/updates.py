"""Draw update histograms with precomputed exact-law overlays and the moment curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from gradscope.analysis.results import FitMisfit, LawCurves, UpdateFit, UpdateMoments
from gradscope.plot.layers import label_layers
from gradscope.plot.style import colorbar_below, figure, figure_of, palette, run_legend

__all__ = ["draw_fit_misfit", "draw_law_curves", "draw_update_fits", "draw_update_moments"]

#: The normalised update: z = -update/lr (= u m_hat for the Adam family; u is the stepsize).
Z = "z = -update/lr"


def draw_update_fits(
    fits: Sequence[UpdateFit],
    ncols: int = 4,
    *,
    run_labels: Sequence[str] | None = None,
    ax: Sequence[Axes] | None = None,
) -> Figure:
    """One panel per (layer, step): histogram of z = -update/lr and the exact pdf.

    ``run_labels`` (a comparison): the run of each fit, put in its panel's title.
    """
    n = max(len(fits), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    if ax is None:
        fig, grid = figure(nrows, ncols, width=3.4, height=2.8)
        panels = [grid[k // ncols, k % ncols] for k in range(nrows * ncols)]
    else:
        panels = list(ax)
        fig = figure_of(panels[0])
    col = palette(2)
    for k, f in enumerate(fits):
        a = panels[k]
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
        run = f"{run_labels[k]}: " if run_labels else ""
        a.set_title(
            f"{run}{f.layer} t={f.t}{dead}\nKS={f.ks_distance:.3f}{nc} {' '.join(flags)}",
            fontsize="small",
        )
        a.set(xlabel=f"normalised update {Z}", ylabel="density")
        if k == 0 or f.noncentral is not None:
            a.legend(fontsize="x-small")
    for k in range(len(fits), len(panels)):
        panels[k].set_visible(False)
    return fig


def draw_fit_misfit(misfit: FitMisfit, *, ax: Axes | None = None) -> Figure:
    """KS distance of every fitted (layer, t).

    Layers on the y axis (named by module group), fit steps t on the x axis, log colour; a
    cross marks a rejected zero-mean law.
    """
    from matplotlib.colors import LogNorm

    if ax is None:
        from gradscope.plot.style import heatmap_height

        fig, grid = figure(1, 1, width=6.4, height=heatmap_height(len(misfit.layers)))
        ax = cast(Axes, grid[0, 0])  # figure() returns an array of Axes
    fig = figure_of(ax)
    ks = np.asarray(misfit.ks, dtype=float)
    pos = ks[np.isfinite(ks) & (ks > 0)]
    norm = LogNorm(vmin=pos.min(), vmax=max(pos.max(), pos.min() * 1.001)) if pos.size else None
    n = len(misfit.layers)
    mesh = ax.pcolormesh(
        np.arange(len(misfit.t) + 1) - 0.5,
        np.arange(n + 1) - 0.5,
        np.ma.masked_invalid(np.where(ks > 0, ks, np.nan).T),
        norm=norm,
        cmap="viridis",
    )
    colorbar_below(ax, mesh, "KS distance to the exact law")
    tj, li = np.nonzero(np.asarray(misfit.rejected, dtype=bool))
    if tj.size:
        ax.plot(tj, li, "x", color="w", ms=4, mew=1.2, label="zero-mean law rejected")
        ax.legend(fontsize="x-small", loc="lower right")
    ax.set_xticks(np.arange(len(misfit.t)), [str(int(t)) for t in misfit.t])
    ax.set(xlabel="optimizer step t of the fit", title="update-law misfit per layer")
    ax.grid(False)
    label_layers(ax, misfit.layers, "y")
    return fig


def draw_update_moments(
    moments: UpdateMoments | Sequence[UpdateMoments],
    labels: Sequence[str] = (),
    *,
    named: Sequence[str] | None = None,
    ax: Sequence[Axes] | None = None,
    colors: Sequence[Any] | None = None,
) -> Figure:
    """Var(z) t_eff and Var|z| t_eff against t beside Corollaries 1 and 2 (z = -update/lr).

    Draws the layers in ``named`` (default every layer), each named in the legend; several
    runs, or ``colors`` given (a comparison where some runs have no such moments): every
    drawn layer of a run in the run's colour (``colors[r]``, default the palette), and a
    legend of runs.
    """
    runs = [moments] if isinstance(moments, UpdateMoments) else list(moments)
    names = list(labels) if labels else [f"run {i + 1}" for i in range(len(runs))]
    multi = len(runs) > 1 or colors is not None
    run_colors = list(colors) if colors is not None else palette(len(runs))
    if ax is None:
        fig, grid = figure(1, 2, width=5.2)
        ax = [grid[0, 0], grid[0, 1]]
    fig = figure_of(ax[0])
    panels = np.array([list(ax)], dtype=object)
    for r, m in enumerate(runs):
        shown = [i for i, x in enumerate(m.layers) if named is None or x in named]
        cols = palette(len(shown)) if not multi else [run_colors[r]] * len(shown)
        for c, i in zip(cols, shown):
            lab = m.layers[i] if (len(shown) <= 12 and not multi) else None
            panels[0, 0].plot(m.steps, m.scaled_var[:, i], color=c, lw=1, label=lab)
            panels[0, 1].plot(m.steps, m.scaled_var_abs[:, i], color=c, lw=1)
    m = runs[0]
    panels[0, 0].plot(m.steps, m.theory_var, "k--", lw=1.5, label="Corollary 1")
    panels[0, 1].plot(m.steps, m.theory_var_abs, "k--", lw=1.5, label="Corollary 2")
    panels[0, 0].set(
        xscale="log",
        xlabel="optimizer step t",
        ylabel="Var(z) · t_eff (theory 1)",
        title="variance of the normalised update z",
    )
    panels[0, 1].set(
        xscale="log",
        xlabel="optimizer step t",
        ylabel="Var|z| · t_eff",
        title="variance of |z|",
    )
    for a in panels[0]:
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.xaxis.set_minor_formatter(NullFormatter())
    panels[0, 0].legend(fontsize="x-small")
    panels[0, 1].legend(fontsize="x-small")
    if multi:
        run_legend(fig, names, run_colors)
    return fig


def draw_law_curves(curves: LawCurves) -> Figure:
    """Exact update densities for several (t, beta1) cases on one axis."""
    fig, ax = figure(1, 1, width=6.4)
    cols = palette(len(curves.labels))
    for c, label, g, p in zip(cols, curves.labels, curves.grids, curves.pdfs):
        ax[0, 0].plot(g, p, color=c, lw=1.4, label=label)
    ax[0, 0].set(
        xlabel="normalised update z = -update/lr = m_hat/sqrt(v_hat)",
        ylabel="density",
        title="exact laws of the adaptive update (i.i.d. Gaussian gradients)",
    )
    ax[0, 0].legend(fontsize="x-small")
    return fig
