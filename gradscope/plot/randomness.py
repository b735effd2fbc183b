"""Draw cosine randomness tests.

Signed cosines per layer and step, non-random fraction and mean cosine by depth.

One run: a layer x step heatmap of the signed cosine in units of each layer's exact 5%
critical value (every layer, named by module group). Several runs: one panel per named
layer with each run's cosines and its critical values (dotted, in the run's colour), and a
legend of runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradscope.analysis.layers import NamedLayers, named_layers
from gradscope.analysis.results import RandomnessResult
from gradscope.plot.layers import draw_heatmap, label_layers
from gradscope.plot.style import figure_of, heatmap_height, mosaic, palette, run_legend, two_rows

__all__ = ["draw_randomness"]


def draw_randomness(
    result: RandomnessResult | Sequence[RandomnessResult],
    labels: Sequence[str] = (),
    *,
    named: NamedLayers | None = None,
    ax: dict[str, Axes] | None = None,
) -> Figure:
    """Signed cosines of successive vectors, the non-random fraction and the mean cosine.

    Panels (keys of ``ax``): one run, ``cosine`` (heatmap of cos / critical value, symlog
    colour: |x| > 1 is beyond the exact 5% critical value); several runs, ``layer0``.. (the
    ``named`` layers, symlog y, each run's critical values dotted); then ``fraction``
    (non-random fraction by depth: exact test with BH-FDR, solid; sqrt(log n/n) rule,
    dashed) and ``mean`` (signed mean cosine by depth, anti-correlation below 0).
    """
    runs = [result] if isinstance(result, RandomnessResult) else list(result)
    names = list(labels) if labels else [f"run {i + 1}" for i in range(len(runs))]
    multi = len(runs) > 1
    r0 = runs[0]
    nl = named if named is not None else named_layers(r0.layers)
    q = r0.quantity
    if not multi:
        fig, axd = (
            (figure_of(next(iter(ax.values()))), ax)
            if ax
            else mosaic([["cosine", "cosine"], ["fraction", "mean"]], width=14.0,
                        heights=[heatmap_height(len(r0.layers)), 3.6])
        )  # fmt: skip
        draw_heatmap(
            axd["cosine"], r0.steps, r0.cosine_over_critical, r0.layers,
            label="cos / exact 5% critical value", scale="symlog", cmap="RdBu_r",
        )  # fmt: skip
        axd["cosine"].set_title(
            f"signed cosine of successive {q}s in units of the exact 5% critical value"
        )
    else:
        keys = [f"layer{k}" for k in range(len(nl.index))]
        fig, axd = (
            (figure_of(next(iter(ax.values()))), ax)
            if ax
            else mosaic(two_rows(keys, ["fraction", "mean"]),
                        width=3.3 * max(len(keys), 3), heights=[3.0, 3.6])
        )  # fmt: skip
        cols = palette(len(runs))
        for key, i in zip(keys, nl.index):
            a = axd[key]
            layer = r0.layers[i]
            crit = []
            for r, res in enumerate(runs):
                if layer not in res.layers:
                    continue
                j = res.layers.index(layer)
                y = np.where(np.isfinite(res.cosine[:, j]), res.cosine[:, j], np.nan)
                a.plot(res.steps, y, color=cols[r], lw=1)
                c = float(res.critical_value[j])
                if np.isfinite(c):
                    crit.append(c)
                    for sgn in (1, -1):
                        a.axhline(sgn * c, color=cols[r], ls=":", lw=1.0)
            a.set_yscale("symlog", linthresh=min(crit) if crit else 1e-3)
            a.axhline(0.0, color="k", lw=0.6)
            a.set(xlabel="optimizer step", ylabel=f"cos of successive {q}s")
            a.set_title(f"{layer} (dotted: exact 5% critical value)", fontsize="small")
        run_legend(fig, names, cols)
    cols = palette(len(runs))
    for r, (res, _name) in enumerate(zip(runs, names)):
        if res.layers != r0.layers:
            continue
        c = cols[r] if multi else "k"
        depth = np.arange(len(res.layers))
        axd["fraction"].plot(depth, res.fraction_nonrandom, "o-", ms=3, color=c)
        axd["fraction"].plot(depth, res.fraction_sqrt_log_nonrandom, "x--", ms=3, color=c)
        axd["mean"].plot(depth, res.mean_cosine, "o-", ms=3, color=c)
    axd["mean"].axhline(0.0, color="k", lw=0.8)
    label_layers(axd["fraction"], r0.layers, "x")
    label_layers(axd["mean"], r0.layers, "x")
    axd["fraction"].set(
        ylabel="fraction of steps non-random",
        ylim=(-0.03, 1.03),
        title=f"non-random fraction (solid: exact test, BH q < {r0.alpha:g}; "
        "dashed: sqrt(log n/n) rule)",
    )
    axd["mean"].set(
        ylabel=f"mean signed cos of successive {q}s", title="mean cosine (< 0: anti-correlated)"
    )
    applies = np.asarray(r0.null_applies, dtype=bool)
    if not applies.all():
        axd["fraction"].set_title(
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
