"""Draw layerwise stepsizes (Aida Figs. 1, 2, 6) and stepsize ranges (SET-Adam)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from gradscope.analysis.results import StepsizeProfile, StepsizeRange
from gradscope.plot.style import figure, log_scale, palette

__all__ = ["draw_stepsize_profile", "draw_stepsize_range"]


def _runs(x, labels):
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    names = list(labels) if labels else [""] * len(items)
    return items, names


def draw_stepsize_profile(
    profile: StepsizeProfile | Sequence[StepsizeProfile], labels: Sequence[str] = ()
) -> Figure:
    """Layer means of u over time (std band), compactness, and the depth profile."""
    runs, names = _runs(profile, labels)
    fig, ax = figure(1, 3, width=4.6)
    multi = len(runs) > 1
    for r, (p, name) in enumerate(zip(runs, names)):
        cols = palette(len(p.layers)) if not multi else [palette(len(runs))[r]] * len(p.layers)
        for i, layer in enumerate(p.layers):
            m, s = p.mean[:, i], p.std[:, i]
            lab = f"{name} {layer}".strip() if (not multi or i == 0) else None
            ax[0, 0].plot(p.steps, m, color=cols[i], lw=1.2, label=lab)
            lo = np.where(m - s > 0, m - s, np.nan)
            ax[0, 0].fill_between(p.steps, lo, m + s, color=cols[i], alpha=0.15, lw=0)
        c = palette(len(runs))[r]
        ax[0, 1].plot(p.steps, p.compactness, color=c, label=name or None)
        depth = np.arange(len(p.layers))
        last = p.mean[-1] if len(p.steps) else np.full(len(p.layers), np.nan)
        err = p.std[-1] if len(p.steps) else None
        ax[0, 2].errorbar(depth, last, yerr=err, fmt="o-", color=c, capsize=2, label=name or None)
        ax[0, 2].set_xticks(depth, [str(x) for x in depth])
    for a in (ax[0, 0], ax[0, 2]):
        log_scale(a)
    ax[0, 0].set(
        xlabel="optimizer step",
        ylabel="stepsize u (mean ± std)",
        title="within-layer stepsize",
    )
    ax[0, 1].set(
        xlabel="optimizer step",
        ylabel="std over layers of log10 mean u (decades)",
        title="compactness across layers",
    )
    ax[0, 2].set(
        xlabel="layer depth (0 = input)",
        ylabel="stepsize u (last step)",
        title="depth profile",
    )
    if len(runs[0].layers) <= 12 or multi:
        ax[0, 0].legend(fontsize="x-small", loc="best")
    if multi:
        ax[0, 1].legend(fontsize="small")
    return fig


def draw_stepsize_range(
    rng: StepsizeRange | Sequence[StepsizeRange], labels: Sequence[str] = ()
) -> Figure:
    """Per-layer min/max of u over time and the spread log10(max/min)."""
    runs, names = _runs(rng, labels)
    fig, ax = figure(1, 2, width=5.2)
    multi = len(runs) > 1
    for r, (p, name) in enumerate(zip(runs, names)):
        cols = palette(len(p.layers)) if not multi else [palette(len(runs))[r]] * len(p.layers)
        for i, layer in enumerate(p.layers):
            lab = f"{name} {layer}".strip() if (not multi or i == 0) else None
            ax[0, 0].plot(p.steps, p.max[:, i], color=cols[i], lw=1.1, label=lab)
            ax[0, 0].plot(p.steps, p.min[:, i], color=cols[i], lw=1.1, ls="--")
            ax[0, 1].plot(p.steps, p.spread[:, i], color=cols[i], lw=1.1)
    log_scale(ax[0, 0])
    ax[0, 0].set(
        xlabel="optimizer step",
        ylabel="stepsize u (max solid, min dashed)",
        title="stepsize range per layer",
    )
    ax[0, 1].set(
        xlabel="optimizer step",
        ylabel="log10(max u / min u) (decades)",
        title="spread within layer",
    )
    if len(runs[0].layers) <= 12 or multi:
        ax[0, 0].legend(fontsize="x-small")
    return fig
