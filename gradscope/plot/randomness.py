"""Draw cosine randomness tests: signed cosines over time, non-random fraction and mean cosine
by depth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from gradscope.analysis.results import RandomnessResult
from gradscope.plot.style import figure, palette

__all__ = ["draw_randomness"]


def draw_randomness(
    result: RandomnessResult | Sequence[RandomnessResult], labels: Sequence[str] = ()
) -> Figure:
    """Signed cos over time (symlog, exact critical values), non-random fraction and signed
    mean cosine by depth (anti-correlation below 0)."""
    runs = list(result) if isinstance(result, (list, tuple)) else [result]
    names = list(labels) if labels else [""] * len(runs)
    multi = len(runs) > 1
    fig, ax = figure(1, 3, width=4.4)
    crit = [np.nanmin(r.critical_value) for r in runs if np.isfinite(r.critical_value).any()]
    for r, (res, name) in enumerate(zip(runs, names)):
        cols = palette(len(res.layers)) if not multi else [palette(len(runs))[r]] * len(res.layers)
        for i, layer in enumerate(res.layers):
            lab = f"{name} {layer}".strip() if (not multi or i == 0) else None
            y = np.where(np.isfinite(res.cosine[:, i]), res.cosine[:, i], np.nan)
            ax[0, 0].plot(res.steps, y, color=cols[i], lw=1, label=lab)
            if not multi and np.isfinite(res.critical_value[i]):
                for sgn in (1, -1):
                    ax[0, 0].axhline(sgn * res.critical_value[i], color=cols[i], ls=":", lw=0.8)
        depth = np.arange(len(res.layers))
        c = palette(len(runs))[r]
        ax[0, 1].plot(
            depth,
            res.fraction_nonrandom,
            "o-",
            color=c,
            label=f"{name} exact test, BH q<{res.alpha:g}".strip(),
        )
        ax[0, 1].plot(
            depth,
            res.fraction_sqrt_log_nonrandom,
            "x--",
            color=c,
            label=f"{name} sqrt(log n/n) rule (Zhang et al.)".strip(),
        )
        ax[0, 1].set_xticks(depth, [str(x) for x in depth])
        ax[0, 2].plot(depth, res.mean_cosine, "o-", color=c, label=name or None)
        ax[0, 2].set_xticks(depth, [str(x) for x in depth])
    ax[0, 2].axhline(0.0, color="k", lw=0.8)
    q = runs[0].quantity
    ax[0, 0].set_yscale("symlog", linthresh=float(min(crit)) if crit else 1e-3)
    ax[0, 0].axhline(0.0, color="k", lw=0.6)
    ax[0, 0].set(
        xlabel="optimizer step",
        ylabel=f"cos of successive {q}s (signed)",
        title=f"successive {q} cosines (dotted: exact 5% critical values)",
    )
    ax[0, 1].set(
        xlabel="layer depth (0 = input)",
        ylabel="fraction of steps non-random",
        ylim=(-0.03, 1.03),
        title="non-random fraction by depth",
    )
    ax[0, 2].set(
        xlabel="layer depth (0 = input)",
        ylabel=f"mean signed cos of successive {q}s",
        title="mean cosine (< 0: anti-correlated)",
    )
    if len(runs[0].layers) <= 12 or multi:
        ax[0, 0].legend(fontsize="x-small")
    ax[0, 1].legend(fontsize="x-small")
    if multi:
        ax[0, 2].legend(fontsize="x-small")
    applies = np.asarray(runs[0].null_applies, dtype=bool)
    if not applies.all():
        ax[0, 1].set_title(
            "not tested: isotropic null not applicable"
            if not applies.any()
            else "non-random fraction (momentum layers not tested)"
        )
        fig.suptitle(
            "momentum updates: cos(m_t, m_(t-1)) is near beta1 for pure noise,\n"
            "so the isotropic null is not applied to them",
            fontsize="small",
        )
    return fig
