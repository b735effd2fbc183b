"""Draw step lengths ||x_t - x_(t-1)||: network and layers over time, windowed CV."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradscope.analysis.layers import NamedLayers, named_layers
from gradscope.analysis.results import StepLength
from gradscope.plot.layers import draw_heatmap
from gradscope.plot.style import (
    figure,
    figure_of,
    heatmap_height,
    log_scale,
    mosaic,
    palette,
    run_legend,
)

__all__ = ["draw_step_length"]


def draw_step_length(
    length: StepLength | Sequence[StepLength],
    labels: Sequence[str] = (),
    *,
    named: NamedLayers | None = None,
    ax: Sequence[Axes] | None = None,
) -> Figure:
    """Global and per-layer step length over time, and the window coefficient of variation.

    One run (on a figure made here): a ``heat`` panel on top, the step length of every
    layer per step (rows: layers, input on top, grouped by module; log colour), above the
    three panels of the network's step length, the ``named`` layers' (default: every
    layer up to 5, else the first, middle and last) and the windowed CV. Several runs (or
    ``ax``, three Axes): the three panels, one colour per run (line style per layer) and a
    legend of runs.
    """
    runs = [length] if isinstance(length, StepLength) else list(length)
    names = list(labels) if labels else ["network" if len(runs) == 1 else "run 1"]
    names += [f"run {i + 1}" for i in range(len(names), len(runs))]
    multi = len(runs) > 1
    if ax is None and not multi:
        s0 = runs[0]
        fig, axd = mosaic(
            [["heat", "heat", "heat"], ["network", "layers", "cv"]],
            width=13.2,
            heights=[heatmap_height(len(s0.layers)), 3.6],
        )
        draw_heatmap(
            axd["heat"], s0.steps, s0.layer_norm, s0.layers,
            label="||x_t - x_(t-1)|| of the layer", scale="log",
        )  # fmt: skip
        axd["heat"].set_title("step length of every layer")
        ax = [axd["network"], axd["layers"], axd["cv"]]
    elif ax is None:
        fig, grid = figure(1, 3, width=4.4)
        ax = [grid[0, 0], grid[0, 1], grid[0, 2]]
    fig = figure_of(ax[0])
    panels = np.array([list(ax)], dtype=object)
    nl = named if named is not None else named_layers(runs[0].layers)
    styles = ["-", "--", ":", "-.", (0, (1, 3))]
    for r, (s, name) in enumerate(zip(runs, names)):
        c = palette(len(runs))[r]
        cols = palette(len(nl.index)) if not multi else [c] * len(nl.index)
        panels[0, 0].plot(s.steps, s.global_norm, color=c, lw=1.2, label=name)
        for k, i in enumerate(nl.index):
            layer = runs[0].layers[i]
            if layer not in s.layers:
                continue
            j = s.layers.index(layer)
            ls = styles[k % len(styles)] if multi else "-"
            lab = layer if (not multi or r == 0) else None
            panels[0, 1].plot(s.steps, s.layer_norm[:, j], color=cols[k], ls=ls, lw=1, label=lab)
        panels[0, 2].plot(s.window_steps, s.global_window_cv, "o-", color=c, ms=3, label=name)
    log_scale(panels[0, 0])
    log_scale(panels[0, 1])
    panels[0, 0].set(
        xlabel="optimizer step", ylabel="||x_t - x_(t-1)||", title="network step length"
    )
    panels[0, 1].set(xlabel="optimizer step", ylabel="||x_t - x_(t-1)|| per layer", title="layers")
    panels[0, 2].set(
        xlabel="optimizer step (window end)",
        ylabel=f"CV std/mean over {runs[0].window} rows",
        title="step-length variability",
    )
    panels[0, 1].legend(fontsize="x-small")
    if multi:
        run_legend(fig, names, palette(len(runs)))
    else:
        panels[0, 0].legend(fontsize="x-small")
    return fig
