"""Draw per-example gradient statistics: GSNR and variance per layer, network batch-size tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradscope.analysis.results import ExamplewiseProfile
from gradscope.plot.layers import draw_heatmap
from gradscope.plot.style import figure_of, heatmap_height, log_scale, mosaic, palette

__all__ = ["draw_examplewise"]


def draw_examplewise(
    profile: ExamplewiseProfile,
    *,
    named: Sequence[str] | None = None,
    ax: Sequence[Axes] | None = None,
) -> Figure:
    """GSNR and variance per layer over time, and the whole network's batch-size tests.

    The per-layer panels draw the layers in ``named`` (default every layer).

    Panels: on a figure made here, ``heat`` on top, the GSNR of every layer per step
    (rows: layers, input on top, grouped by module; log colour); then (the three Axes of
    ``ax`` when given) per-layer GSNR (log), per-layer per-example gradient variance
    (log), and the network's norm, inner-product and orthogonality tests with the record's
    ``theta`` as a horizontal line (above it the norm test says the batch is too small).
    """
    p = profile
    if ax is None:
        fig, axd = mosaic(
            [["heat", "heat", "heat"], ["gsnr", "variance", "tests"]],
            width=13.8,
            heights=[heatmap_height(len(p.layers)), 3.6],
        )
        draw_heatmap(axd["heat"], p.steps, p.gsnr, p.layers, label="GSNR", scale="log")
        axd["heat"].set_title("gradient signal-to-noise ratio of every layer")
        ax = [axd["gsnr"], axd["variance"], axd["tests"]]
    fig = figure_of(ax[0])
    panels = np.array([list(ax)], dtype=object)
    shown = [i for i, x in enumerate(p.layers) if named is None or x in named]
    cols = palette(len(shown))
    mk = "." if len(p.steps) <= 200 else None  # markers show sparse schedules
    for c, i in zip(cols, shown):
        layer = p.layers[i]
        panels[0, 0].plot(p.steps, p.gsnr[:, i], color=c, lw=1.2, marker=mk, label=layer)
        panels[0, 1].plot(p.steps, p.variance[:, i], color=c, lw=1.2, marker=mk)
    tests = (
        (p.network_norm_test, "norm test", "-"),
        (p.network_inner_product_test, "inner-product test", "--"),
        (p.network_orthogonality_test, "orthogonality test", ":"),
    )
    for k, (y, label, ls) in enumerate(tests):
        panels[0, 2].plot(p.steps, y, color=palette(3)[k], ls=ls, lw=1.2, marker=mk, label=label)
    panels[0, 2].axhline(p.theta, color="0.3", lw=0.8, label=f"theta = {p.theta:g}")
    for a in panels[0]:
        log_scale(a)
    panels[0, 0].set(
        xlabel="optimizer step",
        ylabel="GSNR (mean of gbar_i^2 / Var_b g_b,i)",
        title="gradient signal-to-noise ratio",
    )
    panels[0, 1].set(
        xlabel="optimizer step",
        ylabel="sum_i Var_b g_b,i",
        title="per-example gradient variance",
    )
    panels[0, 2].set(
        xlabel="optimizer step",
        ylabel="smallest constant that passes",
        title="batch-size tests (whole network)",
    )
    if len(shown) <= 12:
        panels[0, 0].legend(fontsize="x-small", loc="best")
    panels[0, 2].legend(fontsize="x-small", loc="best")
    return fig
