"""Draw step lengths ||x_t - x_(t-1)||: network and layers over time, windowed CV."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from gradscope.analysis.results import StepLength
from gradscope.plot.style import figure, log_scale, palette

__all__ = ["draw_step_length"]


def draw_step_length(
    length: StepLength | Sequence[StepLength], labels: Sequence[str] = ()
) -> Figure:
    """Global and per-layer step length over time, and the window coefficient of variation."""
    runs = list(length) if isinstance(length, (list, tuple)) else [length]
    names = list(labels) if labels else [""] * len(runs)
    multi = len(runs) > 1
    fig, ax = figure(1, 3, width=4.4)
    for r, (s, name) in enumerate(zip(runs, names)):
        c = palette(len(runs))[r]
        cols = palette(len(s.layers)) if not multi else [c] * len(s.layers)
        ax[0, 0].plot(s.steps, s.global_norm, color=c, lw=1.2, label=name or "network")
        for i, layer in enumerate(s.layers):
            lab = f"{name} {layer}".strip() if (not multi or i == 0) else None
            ax[0, 1].plot(s.steps, s.layer_norm[:, i], color=cols[i], lw=1, label=lab)
        ax[0, 2].plot(
            s.window_steps, s.global_window_cv, "o-", color=c, ms=3, label=name or "network"
        )
    log_scale(ax[0, 0])
    log_scale(ax[0, 1])
    ax[0, 0].set(xlabel="optimizer step", ylabel="||x_t - x_(t-1)||", title="network step length")
    ax[0, 1].set(xlabel="optimizer step", ylabel="||x_t - x_(t-1)|| per layer", title="layers")
    ax[0, 2].set(
        xlabel="optimizer step (window end)",
        ylabel=f"CV std/mean over {runs[0].window} rows",
        title="step-length variability",
    )
    ax[0, 0].legend(fontsize="x-small")
    ax[0, 2].legend(fontsize="x-small")
    if len(runs[0].layers) <= 12 or multi:
        ax[0, 1].legend(fontsize="x-small")
    return fig
