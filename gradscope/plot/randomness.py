"""Draw cosine randomness tests: cosines over time and the non-random fraction by depth."""

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
    """|cos| over time with the exact critical values, and non-random fraction vs depth."""
    runs = list(result) if isinstance(result, (list, tuple)) else [result]
    names = list(labels) if labels else [""] * len(runs)
    multi = len(runs) > 1
    fig, ax = figure(1, 2, width=5.4)
    for r, (res, name) in enumerate(zip(runs, names)):
        cols = palette(len(res.layers)) if not multi else [palette(len(runs))[r]] * len(res.layers)
        for i, layer in enumerate(res.layers):
            lab = f"{name} {layer}".strip() if (not multi or i == 0) else None
            ax[0, 0].plot(res.steps, np.abs(res.cosine[:, i]), color=cols[i], lw=1, label=lab)
            if not multi:
                ax[0, 0].axhline(res.critical_value[i], color=cols[i], ls=":", lw=0.8)
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
            res.fraction_seed_nonrandom,
            "x--",
            color=c,
            label=f"{name} seed rule sqrt(log n/n)".strip(),
        )
        ax[0, 1].set_xticks(depth, [str(x) for x in depth])
    q = runs[0].quantity
    ax[0, 0].set(
        yscale="log",
        xlabel="optimizer step",
        ylabel=f"|cos| of successive {q}s",
        title=f"successive {q} cosines (dotted: exact 5% critical value)",
    )
    ax[0, 1].set(
        xlabel="layer depth (0 = input)",
        ylabel="fraction of steps non-random",
        ylim=(-0.03, 1.03),
        title="non-random fraction by depth",
    )
    if len(runs[0].layers) <= 12 or multi:
        ax[0, 0].legend(fontsize="x-small")
    ax[0, 1].legend(fontsize="x-small")
    if not runs[0].null_applies:
        ax[0, 1].set_title("not tested: isotropic null not applicable")
        fig.suptitle(
            "momentum updates: cos(m_t, m_(t-1)) is near beta1 for pure noise,\n"
            "so the isotropic null is not applied to them",
            fontsize="small",
        )
    return fig
