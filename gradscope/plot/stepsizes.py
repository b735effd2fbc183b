"""Draw layerwise stepsizes (Aida Figs. 1, 2, 6) and stepsize ranges (SET-Adam).

One run: layer x step heatmaps (every layer, named on the axis by module group), line plots
of a few named layers, and the depth profile. Several runs (a comparison): one colour per
run, one panel per named layer, and a legend of runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradscope.analysis.layers import NamedLayers, named_layers
from gradscope.analysis.results import StepsizeProfile, StepsizeRange
from gradscope.plot.layers import draw_heatmap, label_layers
from gradscope.plot.style import (
    figure_of,
    heatmap_height,
    log_scale,
    mosaic,
    palette,
    run_legend,
    two_rows,
)

__all__ = ["draw_stepsize_profile", "draw_stepsize_range"]


_Run = TypeVar("_Run", StepsizeProfile, StepsizeRange)


def _runs(x: _Run | Sequence[_Run], labels: Sequence[str]) -> tuple[list[_Run], list[str]]:
    # a lone record is one run (records are dataclasses, never lists or tuples)
    items = cast("list[_Run]", list(x) if isinstance(x, (list, tuple)) else [x])
    names = list(labels) if labels else [f"run {i + 1}" for i in range(len(items))]
    return items, names


def _named(p, named: NamedLayers | None) -> NamedLayers:
    return named if named is not None else named_layers(p.layers)


def _band_lines(ax: Axes, steps, mean, lo, hi, color, label) -> None:
    ax.plot(steps, mean, color=color, lw=1.2, label=label)
    ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)


def draw_stepsize_profile(
    profile: StepsizeProfile | Sequence[StepsizeProfile],
    labels: Sequence[str] = (),
    *,
    named: NamedLayers | None = None,
    ax: dict[str, Axes] | None = None,
) -> Figure:
    """Stepsize u per layer and step (update = -lr u m_hat).

    One run, panels (keys of ``ax`` when given): ``mean`` heatmap of the layer mean of u,
    ``spread`` heatmap of the within-layer std/mean, ``lines`` the mean of the ``named``
    layers with a geometric one-sigma band (:attr:`StepsizeProfile.geometric_band`),
    ``compact`` the compactness across layers, ``depth`` the last step's mean per layer with
    geometric error bars. Several runs: ``layer0``.. one panel per named layer (one line
    and band per run), ``compact`` and ``depth``, and a legend of runs.
    """
    runs, names = _runs(profile, labels)
    p0 = runs[0]
    nl = _named(p0, named)
    multi = len(runs) > 1
    if not multi:
        fig, axd = (
            (figure_of(next(iter(ax.values()))), ax)
            if ax
            else mosaic(
                [["mean", "mean", "mean", "spread", "spread", "spread"],
                 ["lines", "lines", "compact", "compact", "depth", "depth"]],
                width=15.0,
                heights=[heatmap_height(len(p0.layers)), 3.4],
            )
        )  # fmt: skip
        draw_heatmap(axd["mean"], p0.steps, p0.mean, p0.layers, label="mean of u", scale="log")
        axd["mean"].set_title("layer mean of the stepsize u")
        draw_heatmap(axd["spread"], p0.steps, p0.relative_std, p0.layers, label="std/mean of u")
        axd["spread"].set_title("within-layer std/mean of u")
        lo, hi = p0.geometric_band
        cols = palette(len(nl.index))
        for c, i in zip(cols, nl.index):
            _band_lines(axd["lines"], p0.steps, p0.mean[:, i], lo[:, i], hi[:, i], c, p0.layers[i])
        log_scale(axd["lines"])
        axd["lines"].set(
            xlabel="optimizer step",
            ylabel="mean of u (geometric ±1sigma band)",
            title="named layers",
        )
        axd["lines"].legend(fontsize="x-small")
    else:
        keys = [f"layer{k}" for k in range(len(nl.index))]
        fig, axd = (
            (figure_of(next(iter(ax.values()))), ax)
            if ax
            else mosaic(two_rows(keys, ["compact", "depth"]),
                        width=3.3 * max(len(keys), 3), heights=[3.0, 3.6])
        )  # fmt: skip
        cols = palette(len(runs))
        for key, i in zip(keys, nl.index):
            a = axd[key]
            layer = p0.layers[i]
            for r, (p, name) in enumerate(zip(runs, names)):
                if layer not in p.layers:
                    continue
                j = p.layers.index(layer)
                lo, hi = p.geometric_band
                _band_lines(a, p.steps, p.mean[:, j], lo[:, j], hi[:, j], cols[r], name)
            log_scale(a)
            a.set(xlabel="optimizer step", ylabel="mean of u (geometric ±1sigma band)")
            a.set_title(layer, fontsize="small")
    cols = palette(len(runs))
    for r, (p, name) in enumerate(zip(runs, names)):
        c = cols[r] if multi else "k"
        axd["compact"].plot(p.steps, p.compactness, color=c, label=name)
        if len(p.steps) and p.layers == p0.layers:
            lo, hi = p.geometric_band
            last = p.mean[-1]
            err = np.vstack([last - lo[-1], hi[-1] - last])
            axd["depth"].errorbar(
                np.arange(len(p.layers)), last, yerr=err, fmt="o-", ms=3, lw=1, color=c,
                capsize=1.5, label=name,
            )  # fmt: skip
    log_scale(axd["depth"])
    label_layers(axd["depth"], p0.layers, "x")
    axd["compact"].set(
        xlabel="optimizer step",
        ylabel="std over layers of log10 mean u",
        title="compactness across layers (decades)",
    )
    axd["depth"].set(ylabel="mean of u, last step (geometric ±1sigma)", title="depth profile")
    if multi:
        run_legend(fig, names, cols)
    return fig


def draw_stepsize_range(
    rng: StepsizeRange | Sequence[StepsizeRange],
    labels: Sequence[str] = (),
    *,
    named: NamedLayers | None = None,
    ax: dict[str, Axes] | None = None,
) -> Figure:
    """Per-layer spread log10(max u / min u) over time; max and min of u of named layers.

    One run: ``spread`` heatmap of every layer, ``lines`` max (solid) and min (dashed) of
    the ``named`` layers. Several runs: ``layer0``.. one panel per named layer, one colour
    per run, and a legend of runs.
    """
    runs, names = _runs(rng, labels)
    p0 = runs[0]
    nl = _named(p0, named)
    multi = len(runs) > 1
    if not multi:
        fig, axd = (
            (figure_of(next(iter(ax.values()))), ax)
            if ax
            else mosaic([["spread", "spread", "lines"]], width=14.0,
                        heights=[heatmap_height(len(p0.layers))])
        )  # fmt: skip
        draw_heatmap(
            axd["spread"], p0.steps, p0.spread, p0.layers, label="log10(max u / min u)",
            scale="linear", cmap="magma",
        )  # fmt: skip
        axd["spread"].set_title("spread of u within each layer (decades)")
        for c, i in zip(palette(len(nl.index)), nl.index):
            axd["lines"].plot(p0.steps, p0.max[:, i], color=c, lw=1.1, label=p0.layers[i])
            axd["lines"].plot(p0.steps, p0.min[:, i], color=c, lw=1.1, ls="--")
        log_scale(axd["lines"])
        axd["lines"].set(
            xlabel="optimizer step", ylabel="u (max solid, min dashed)", title="named layers"
        )
        axd["lines"].legend(fontsize="x-small")
        return fig
    keys = [f"layer{k}" for k in range(len(nl.index))]
    fig, axd = (
        (figure_of(next(iter(ax.values()))), ax)
        if ax
        else mosaic([keys], width=3.3 * max(len(keys), 3), heights=[3.2])
    )
    cols = palette(len(runs))
    for key, i in zip(keys, nl.index):
        a = axd[key]
        layer = p0.layers[i]
        for r, p in enumerate(runs):
            if layer in p.layers:
                j = p.layers.index(layer)
                a.plot(p.steps, p.spread[:, j], color=cols[r], lw=1.1)
        a.set(xlabel="optimizer step", ylabel="log10(max u / min u)")
        a.set_title(layer, fontsize="small")
    run_legend(fig, names, cols)
    return fig
