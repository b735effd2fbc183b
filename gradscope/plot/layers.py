"""A layer axis that stays readable from 6 to 300 layers, and layer x step heatmaps.

Layers sit at integer positions 0..L-1 (input first). Every layer gets a minor tick; the
labelled ticks are thinned *when the figure is drawn*, from the axis' length in pixels and
the label font, so the labels never run together whatever the final layout. A second axis
names the module groups (``layer1``, ``layer2``, ...) at their centres, thinned the same
way, and thin lines separate the groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize, SymLogNorm
from matplotlib.ticker import FuncFormatter, Locator, NullFormatter

from gradscope.analysis.layers import LayerGroups, layer_groups
from gradscope.plot._layout import colorbar_below

__all__ = ["draw_heatmap", "label_layers"]

#: Space a label needs along the axis, in font heights (rotated or horizontal text).
_GAP = 1.35


def _axis_px(axis: Any) -> float:
    box = axis.axes.get_window_extent()
    return float(box.height if axis.axis_name == "y" else box.width)


class _Thinned(Locator):
    """Ticks at ``positions``, every k-th one, k the smallest that leaves room per label.

    ``widths`` (in font heights) is the room each label needs along the axis; 1 for text
    that runs across the axis (rotated names on x, horizontal names on y).
    """

    def __init__(
        self, positions: npt.ArrayLike, widths: npt.ArrayLike, span: int, fontsize: float
    ) -> None:
        self.positions = np.asarray(positions, dtype=float)
        self.widths = np.asarray(widths, dtype=float)
        self.span = max(int(span), 1)
        self.fontsize = float(fontsize)

    def __call__(self) -> list[float]:
        axis: Any = self.axis
        if axis is None or self.positions.size == 0:
            return []
        px_per_unit = _axis_px(axis) / self.span
        need = self.fontsize * axis.axes.figure.dpi / 72.0 * _GAP
        out: list[float] = []
        last_end = -math.inf
        for p, w in zip(self.positions, self.widths):
            half = 0.5 * w * need / max(px_per_unit, 1e-9)
            if p - half >= last_end:
                out.append(float(p))
                last_end = p + half
        return out

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        return self()


def label_layers(
    ax: Axes,
    names: Sequence[str] | LayerGroups,
    axis: Literal["x", "y"] = "y",
    *,
    groups: bool = True,
    fontsize: float = 6.5,
) -> LayerGroups:
    """Name the layers along ``axis`` of ``ax`` (positions 0..L-1), thinned to fit.

    With ``groups`` (and more than one module group) each tick shows the name without its
    group prefix and a second axis (right of a y axis, above an x axis) names the groups.
    Returns the grouping used.
    """
    g = names if isinstance(names, LayerGroups) else layer_groups(names)
    n = len(g.names)
    grouped = groups and 1 < len(g.groups) < n
    labels = g.short if grouped else g.names
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(_Thinned(np.arange(n), np.ones(n), n, fontsize))
    target.set_major_formatter(
        FuncFormatter(lambda x, _pos: labels[round(x)] if 0 <= round(x) < n else "")
    )
    target.set_minor_locator(_Fixed([]))
    ax.tick_params(axis=axis, which="major", labelsize=fontsize)
    if axis == "x":
        ax.tick_params(axis="x", which="major", labelrotation=90)
    lim = (-0.5, n - 0.5)
    if axis == "y":
        ax.set_ylim(n - 0.5, -0.5)  # input layer on top
    else:
        ax.set_xlim(*lim)
    if grouped:
        centres = [0.5 * (a + b - 1) for _, a, b in g.groups]
        gnames = [p for p, _, _ in g.groups]
        # horizontal text: a y-axis label needs one font height, an x-axis label its width
        widths = [1.0] * len(gnames) if axis == "y" else [0.62 * len(p) / _GAP for p in gnames]
        sec = (
            ax.secondary_yaxis("right", functions=(_same, _same))
            if axis == "y"
            else ax.secondary_xaxis("top", functions=(_same, _same))
        )
        sax = sec.yaxis if axis == "y" else sec.xaxis
        sax.set_major_locator(_Thinned(centres, widths, n, fontsize))
        lookup = dict(zip(centres, gnames))
        sax.set_major_formatter(FuncFormatter(lambda x, _pos: lookup.get(float(x), "")))
        sax.set_minor_formatter(NullFormatter())
        sec.tick_params(labelsize=fontsize, length=0)
        for _, a, _b in g.groups[1:]:
            line = ax.axhline if axis == "y" else ax.axvline
            line(a - 0.5, color="0.35", lw=0.6, zorder=3)
    return g


def _same(x):
    return x


class _Fixed(Locator):
    def __init__(self, positions: Sequence[float]) -> None:
        self.positions = [float(p) for p in positions]

    def __call__(self) -> list[float]:
        return self.positions

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        return self.positions


def draw_heatmap(
    ax: Axes,
    steps: np.ndarray,
    values: np.ndarray,
    names: Sequence[str] | LayerGroups,
    *,
    label: str,
    scale: str = "auto",
    cmap: str = "viridis",
    xlabel: str = "optimizer step",
) -> None:
    """Layers (rows, input on top) x steps (columns) of ``values`` ``(T, L)`` with a colour bar.

    ``scale``: ``"log"``, ``"linear"``, ``"symlog"`` (signed values, linear within 1) or
    ``"auto"`` (log when the positive finite values span more than two decades). Non-finite
    cells stay blank.
    """
    v = np.asarray(values, dtype=float)
    x = np.asarray(steps, dtype=float)
    if x.size == 0:
        x = np.zeros(1)
        v = np.full((1, v.shape[1] if v.ndim == 2 else 0), np.nan)
    if x.size > 1:
        mid = 0.5 * (x[1:] + x[:-1])
        edges = np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])
    else:
        edges = np.array([x[0] - 0.5, x[0] + 0.5])
    fin = v[np.isfinite(v)]
    pos = fin[fin > 0]
    if scale == "auto":
        scale = "log" if pos.size and pos.max() > 100 * pos.min() else "linear"
    if scale == "log" and pos.size:
        norm: Normalize = LogNorm(vmin=pos.min(), vmax=max(pos.max(), pos.min() * 1.0001))
        v = np.where(v > 0, v, np.nan)
    elif scale == "symlog":
        top = float(np.max(np.abs(fin))) if fin.size else 1.0
        norm = SymLogNorm(linthresh=1.0, vmin=-max(top, 1.0), vmax=max(top, 1.0))
    else:
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
        norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
    n = v.shape[1]
    mesh = ax.pcolormesh(
        edges, np.arange(n + 1) - 0.5, np.ma.masked_invalid(v.T), norm=norm, cmap=cmap
    )
    colorbar_below(ax, mesh, label)
    ax.set_xlabel(xlabel)
    ax.grid(False)
    label_layers(ax, names, "y")
