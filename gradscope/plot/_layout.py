"""A one-pass grid layout: margins from the text each panel carries, measured once.

matplotlib's constrained layout measures every panel's decorations (tick labels, axis
labels, titles) by building and measuring all of its tick artists, twice, and a layout
engine makes every save draw the figure twice. Here the decorations are measured from the
strings the locators and formatters produce (one text measurement per distinct string, in
points, from the font files; no tick artists), the grid's rows and columns are sized
from them, and :func:`fix_layout` removes the engine before rendering, so a report
figure is drawn once.

The rules, in inches: a panel's left room is its y tick labels' widest string plus tick
length, pad and y label; its bottom room its x tick labels (rotated ones: their widest
string) plus x label, plus a colour bar made by :func:`colorbar_below`; its top room its
title lines and a secondary x axis' labels; its right room a secondary y axis' labels. Each
row and column keeps its share of the figure (the sizes a figure is made with include its
labels); a panel's box is its cells' shares less the room its neighbours' decorations and
its own need, so neighbours' labels never meet.
Layer axes (thinned when drawn) are measured with every name, the widest they can show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib import cbook
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import LayoutEngine
from matplotlib.textpath import TextToPath
from matplotlib.transforms import Bbox

__all__ = ["GridLayout", "colorbar_below", "fix_layout"]

_T2P = TextToPath()
#: Room around the figure's edge and between neighbours' decorations (inches).
_EDGE = 0.08
_GAP = 0.12
#: Colour bar height and its distance below the panel's own decorations (inches).
_CBAR_H = 0.13
_CBAR_GAP = 0.1
#: Measured text is widened by this factor (hinting, kerning differences of the backends).
_SLACK = 1.06


class GridLayout(LayoutEngine):
    """Layout engine of gradscope's figures: :func:`arrange` at draw time.

    :func:`fix_layout` runs it once and removes it, so that saving draws once.
    """

    _adjust_compatible = True
    _colorbar_gridspec = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: (colour bar axes, its locator) of each :func:`colorbar_below` on the figure
        self.bars: list[tuple[Axes, _Below]] = []

    def execute(self, fig: Figure) -> None:
        """Place every panel of ``fig`` (see the module docstring)."""
        arrange(fig, self.bars)


def fix_layout(fig: Figure) -> None:
    """Arrange a :class:`GridLayout` figure now and drop the engine (no-op otherwise)."""
    engine = fig.get_layout_engine()
    if isinstance(engine, GridLayout):
        arrange(fig, engine.bars)
        import matplotlib

        # None means "no engine" unless the rc asks for one; the rc is not asked here
        with matplotlib.rc_context(
            {"figure.autolayout": False, "figure.constrained_layout.use": False}
        ):
            fig.set_layout_engine(None)


class _Below:
    """Axes locator: a colour bar under ``parent``, ``offset`` inches below its box."""

    def __init__(self, parent: Axes, frac: float = 0.7) -> None:
        self.parent = parent
        self.frac = frac
        self.offset = 0.6  # set by arrange() from the parent's decorations

    def __call__(self, ax: Any, renderer: Any) -> Bbox:
        fig = ax.get_figure(root=True)
        assert fig is not None  # a locator runs on an axes that is on a figure
        h = float(fig.get_size_inches()[1])
        p = self.parent.get_position()
        y0 = p.y0 - (self.offset + _CBAR_H) / h
        x0 = p.x0 + 0.5 * (1 - self.frac) * p.width
        return Bbox.from_bounds(x0, y0, self.frac * p.width, _CBAR_H / h)


def colorbar_below(ax: Axes, mappable: Any, label: str) -> Any:
    """A horizontal colour bar under ``ax``, labelled ``label``; returns the Colorbar.

    On a :class:`GridLayout` figure the bar gets its own room below the panel's labels;
    on any other figure it takes its room from ``ax`` (``Figure.colorbar``).
    """
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)  # panels are drawn on Figures
    engine = fig.get_layout_engine()
    if not isinstance(engine, GridLayout):
        cb = fig.colorbar(mappable, ax=ax, location="bottom", fraction=0.05, shrink=0.7)
        cb.set_label(label)
        return cb
    cax = fig.add_axes((0.0, 0.0, 0.1, 0.1), label=f"{ax.get_label()} colour bar")
    below = _Below(ax)
    cax.set_axes_locator(below)
    engine.bars.append((cax, below))
    cb = fig.colorbar(mappable, cax=cax, orientation="horizontal")
    cb.set_label(label)
    return cb


# ---- measuring -------------------------------------------------------------------------


def _size_pt(text: str, prop: FontProperties) -> tuple[float, float]:
    """(width, height) of ``text`` in points; lines stacked at 1.2 x the font size."""
    if not text:
        return 0.0, 0.0
    lines = text.split("\n")
    fs = prop.get_size_in_points()
    w = 0.0
    h = 0.0
    for line in lines:
        if not line:
            h += 1.2 * fs
            continue
        math_ = cbook.is_math_text(line)
        try:
            lw, lh, _ = _T2P.get_text_width_height_descent(line, prop, ismath=math_)
        except ValueError:  # a string mathtext cannot parse: measured as plain text
            lw, lh, _ = _T2P.get_text_width_height_descent(line, prop, ismath=False)
        w = max(w, lw)
        h += max(lh, fs) * 1.2 if len(lines) > 1 else max(lh, fs)
    return w * _SLACK, h * _SLACK


def _labels(axis: Any, which: str) -> list[str]:
    """The tick label strings ``axis`` will show (layer axes: every name)."""
    from gradscope.plot.layers import _Thinned

    loc = axis.get_major_locator() if which == "major" else axis.get_minor_locator()
    fmt = axis.get_major_formatter() if which == "major" else axis.get_minor_formatter()
    if isinstance(loc, _Thinned):
        locs = list(loc.positions)
    else:
        try:
            locs = list(loc())
        except (ValueError, TypeError):  # a locator that needs a drawn axis
            return []
        lo, hi = sorted(axis.get_view_interval())
        tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
        locs = [x for x in locs if lo - tol <= x <= hi + tol]
    if not locs:
        return []
    try:
        out = [str(s) for s in fmt.format_ticks(locs)]
    except (ValueError, TypeError, IndexError):
        return []
    return list(dict.fromkeys(s for s in out if s))


def _tick_room(axis: Any) -> tuple[float, float, float]:
    """(room across the axis on side 1, on side 2, half the widest label along it) in pt.

    Side 1 is left/bottom, side 2 right/top.
    """
    if not axis.get_visible():
        return 0.0, 0.0, 0.0
    tick = axis.get_major_ticks(1)[0]  # the draw reuses it
    on1, on2 = tick.label1.get_visible(), tick.label2.get_visible()
    if not (on1 or on2):
        return 0.0, 0.0, 0.0
    prop = tick.label1.get_fontproperties()
    rot = float(tick.label1.get_rotation()) % 180
    across = along = 0.0
    strings = _labels(axis, "major") + _labels(axis, "minor")
    for s in dict.fromkeys(strings):
        w, h = _size_pt(s, prop)
        if axis.axis_name == "y":
            a, b = (w, h) if rot < 45 or rot > 135 else (h, w)
        else:
            a, b = (h, w) if rot < 45 or rot > 135 else (w, h)
        across, along = max(across, a), max(along, b)
    if across == 0.0:
        return 0.0, 0.0, 0.0
    room = across + tick.get_tick_padding() + tick.get_pad()
    return (room if on1 else 0.0), (room if on2 else 0.0), 0.5 * along


def _axis_label_room(axis: Any) -> float:
    label = axis.label
    if not label.get_visible() or not label.get_text():
        return 0.0
    h = _size_pt(label.get_text(), label.get_fontproperties())[1]
    return h + float(axis.labelpad)


def _offset_room(axis: Any) -> float:
    """Room for the formatter's offset text ("1e-5", "+1.0"), when it has one."""
    fmt = axis.get_major_formatter()
    get = getattr(fmt, "get_offset", None)
    if get is None:
        return 0.0
    try:
        text = get()
    except (ValueError, TypeError, AttributeError):
        return 0.0
    if not text:
        return 0.0
    return _size_pt(text, axis.get_offset_text().get_fontproperties())[1] + 2.0


class _Room:
    """Decoration room of one panel, in points: left, right, bottom, top."""

    def __init__(self) -> None:
        self.left = self.right = self.bottom = self.top = 0.0
        #: points of tick labels above the panel (its own and a secondary x axis'), under
        #: the title
        self.labels_above = 0.0


def _room(ax: Any, children: Iterable[Any]) -> _Room:
    # Any: matplotlib types child and colour-bar axes as its private _AxesBase
    r = _Room()
    y1, y2, yhalf = _tick_room(ax.yaxis)
    x1, x2, xhalf = _tick_room(ax.xaxis)
    ylab = _axis_label_room(ax.yaxis)
    xlab = _axis_label_room(ax.xaxis)
    left_label = ax.yaxis.get_label_position() == "left"
    bottom_label = ax.xaxis.get_label_position() == "bottom"
    r.left = y1 + (ylab if left_label else 0.0)
    r.right = y2 + (0.0 if left_label else ylab)
    r.bottom = x1 + (xlab if bottom_label else 0.0)
    r.top = x2 + (0.0 if bottom_label else xlab)
    # labels at the ends of an axis reach past the panel by half their length
    r.left, r.right = max(r.left, xhalf), max(r.right, xhalf)
    r.bottom, r.top = max(r.bottom, yhalf), max(r.top, yhalf)
    if y1 or y2:
        r.top = max(r.top, yhalf + _offset_room(ax.yaxis))
    if x1 or x2:
        r.bottom += _offset_room(ax.xaxis)
    for child in children:  # secondary axes: group names right of or above the panel
        c1, c2, _ = _tick_room(child.yaxis)
        d1, d2, _ = _tick_room(child.xaxis)
        r.right = max(r.right, c2 + (y2 if c2 else 0.0))
        r.left = max(r.left, c1)
        top = d2
        r.top = max(r.top, top)
        r.bottom = max(r.bottom, d1)
    r.labels_above = max(x2, max((_tick_room(c.xaxis)[1] for c in children), default=0.0))
    title = ax.title
    if title.get_text() and title.get_visible():
        th = _size_pt(title.get_text(), title.get_fontproperties())[1]
        pad = 6.0
        r.top = (r.top if r.top > 0 else 0.0) + th + pad
    return r


# ---- arranging -------------------------------------------------------------------------


def _span(ax: Axes) -> tuple[Any, range, range] | None:
    ss = ax.get_subplotspec()
    if ss is None:
        return None
    return ss.get_gridspec(), ss.rowspan, ss.colspan


def _cells(total: float, ratios, spans: list[tuple[range, float, float]]) -> np.ndarray:
    """Start and size (inches from the start) of the content of each cell along one side.

    Each cell owns its share ``total * ratio / sum(ratios)`` of the figure (the sizes a
    figure is made with include the labels, as they do for matplotlib's layouts); its
    content is that share less the room the panels starting there need before it and the
    panels ending there need after it. ``spans``: (cells, room before, room after) of each
    panel.
    """
    r = np.asarray(ratios, dtype=float)
    n = len(r)
    before = np.zeros(n)
    after = np.zeros(n)
    for cells, b, a in spans:
        before[cells.start] = max(before[cells.start], b)
        after[cells.stop - 1] = max(after[cells.stop - 1], a)
    share = total * r / r.sum()
    edge0 = np.full(n, 0.5 * _GAP)
    edge1 = np.full(n, 0.5 * _GAP)
    edge0[0] = edge1[-1] = _EDGE
    lo = before + edge0
    hi = after + edge1
    size = share - lo - hi
    # decorations too big for the share: the content keeps a quarter of it, never vanishes
    small = size < 0.25 * share
    size[small] = 0.25 * share[small]
    start = np.concatenate([[0.0], np.cumsum(share[:-1])]) + lo
    return np.stack([start, size], axis=1)


def arrange(fig: Figure, bars: Iterable[tuple[Axes, _Below]] = ()) -> None:
    """Place the panels of ``fig`` on their grid with room for their decorations.

    ``bars``: the colour bars under panels (:func:`colorbar_below`).
    """
    W, H = (float(x) for x in fig.get_size_inches())
    panels: list[tuple[Axes, Any, range, range]] = []
    bars = list(bars)
    skip = {id(cax) for cax, _ in bars}
    for ax in fig.axes:
        if id(ax) in skip:
            continue
        sp = _span(ax)
        if sp is not None and ax.get_visible():
            panels.append((ax, *sp))
    if not panels:
        return
    gs = panels[0][1]
    panels = [p for p in panels if p[1] is gs]
    rooms: dict[Axes, _Room] = {}
    for ax, _, _, _ in panels:
        kids = [c for c in ax.child_axes if c.get_visible()]
        rooms[ax] = _room(ax, kids)
    for cax, loc in bars:  # a colour bar adds its height and labels under its panel
        if loc.parent in rooms:
            r = rooms[loc.parent]
            loc.offset = r.bottom / 72.0 + _CBAR_GAP
            cr = _room(cax, ())
            r.bottom += 72.0 * (_CBAR_GAP + _CBAR_H) + cr.bottom
    # figure-level text on top: the suptitle, then a figure legend (the legend of runs)
    top_band = 0.0
    sup = fig.get_suptitle()
    sup_text = next((t for t in fig.texts if sup and t.get_text() == sup), None)
    if sup_text is not None:
        sh = _size_pt(sup, sup_text.get_fontproperties())[1] / 72.0
        sup_text.set_y(1.0 - _EDGE / H)
        sup_text.set_verticalalignment("top")
        top_band += sh + _EDGE
    for leg in fig.legends:
        leg.set_bbox_to_anchor((0.5, 1.0 - top_band / H), transform=fig.transFigure)
        leg.set_loc("upper center")
        top_band += _legend_height(leg) + 0.05
    boxes = _place(panels, rooms, gs, W, H, top_band)
    # a title or axis label longer than its panel is wrapped at spaces to the panel's
    # length (only those strings are measured again), then the rows are placed again
    again = False
    for ax, (x0, y0, x1, y1) in boxes.items():
        r = rooms[ax]
        for text, length, side in (
            (ax.title, 72.0 * (x1 - x0), "top"),
            (ax.xaxis.label, 72.0 * (x1 - x0), "bottom"),
            (ax.yaxis.label, 72.0 * (y1 - y0), "left"),
        ):
            grow = _wrap(text, length)
            if grow:
                setattr(r, side, getattr(r, side) + grow)
                again = True
    if again:
        boxes = _place(panels, rooms, gs, W, H, top_band)
    for ax, (x0, y0, x1, y1) in boxes.items():
        ax.set_position(Bbox.from_extents(x0 / W, y0 / H, x1 / W, y1 / H))
        # the title goes above the labels over the panel, placed here (the theme turns
        # off matplotlib's own placement, which measures every tick label at each draw)
        above = rooms[ax].labels_above
        ax.title.set_y(1.0 + above / (72.0 * (y1 - y0)) if above and y1 > y0 else 1.0)


def _wrap(text: Any, length: float) -> float:
    """Break ``text`` at spaces into lines of at most ``length`` points.

    Returns the points of height it gained (0 when it fitted already or has no spaces).
    """
    s = text.get_text()
    if not s or not text.get_visible():
        return 0.0
    prop = text.get_fontproperties()
    w, h = _size_pt(s, prop)
    if w <= length:
        return 0.0
    lines: list[str] = []
    for para in s.split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if line and _size_pt(cand, prop)[0] > length:
                lines.append(line)
                line = word
            else:
                line = cand
        lines.append(line)
    out = "\n".join(lines)
    if out == s:
        return 0.0
    text.set_text(out)
    return _size_pt(out, prop)[1] - h


def _place(panels, rooms, gs, W: float, H: float, top_band: float) -> dict:
    """Each panel's box (x0, y0, x1, y1) in inches from the figure's lower left corner."""
    nrows, ncols = gs.get_geometry()
    xs = _cells(
        W,
        gs.get_width_ratios() or [1] * ncols,
        [(cs, rooms[a].left / 72.0, rooms[a].right / 72.0) for a, _, _, cs in panels],
    )
    ys = _cells(
        H - top_band,
        gs.get_height_ratios() or [1] * nrows,
        [(rs, rooms[a].top / 72.0, rooms[a].bottom / 72.0) for a, _, rs, _ in panels],
    )
    out = {}
    for ax, _, rs, cs in panels:
        x0 = xs[cs.start, 0]
        x1 = xs[cs.stop - 1, 0] + xs[cs.stop - 1, 1]
        top = top_band + ys[rs.start, 0]
        bottom = top_band + ys[rs.stop - 1, 0] + ys[rs.stop - 1, 1]
        out[ax] = (x0, H - bottom, x1, H - top)
    return out


def _legend_height(leg: Any) -> float:
    """Inches of a figure legend (measured when the canvas has a renderer, else estimated)."""
    fig = leg.get_figure(root=True)
    get_renderer = getattr(fig.canvas, "get_renderer", None)
    if get_renderer is not None:
        return float(leg.get_window_extent(get_renderer()).height) / fig.dpi
    texts = leg.get_texts()
    fs = texts[0].get_fontsize() if texts else 10.0
    ncols = min(len(texts), 6) or 1  # run_legend's columns
    nrows = math.ceil(len(texts) / ncols) if texts else 0
    title = leg.get_title()
    th = title.get_fontsize() * 1.2 if title.get_text() else 0.0
    # matplotlib: rows of font height plus labelspacing, borderpad above and below
    return (nrows * fs * (1.0 + leg.labelspacing) + th + 2 * leg.borderpad * fs + 4.0) / 72.0
