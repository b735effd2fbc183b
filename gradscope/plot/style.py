"""Theme, palette and saving: applied in a context, never globally."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler

from gradscope.plot._layout import GridLayout, colorbar_below, fix_layout

if TYPE_CHECKING:
    from matplotlib.typing import ColorType, RcKeyType

# Figures are plain ``Figure`` objects on an Agg canvas, never pyplot windows: the global
# backend is left as the user set it.

__all__ = [
    "GridLayout",
    "colorbar_below",
    "figure",
    "figure_of",
    "fix_layout",
    "heatmap_height",
    "log_scale",
    "mosaic",
    "palette",
    "png_bytes",
    "run_legend",
    "save",
    "svg_text",
    "theme",
    "two_rows",
]

#: Resolution of every PNG (the file written and the HTML embed are the same bytes).
DPI = 100
#: zlib level of the PNGs: on a 62-layer stepsize figure level 3 encodes in 0.11 s where
#: PIL's default 6 takes 0.13 s, for a file 3% larger.
PNG_COMPRESS = 3


#: seaborn's "colorblind" palette (``seaborn.color_palette("colorblind")``), written out:
#: importing seaborn (and, through it, pandas and pyplot) costs about a second per command.
#: A test checks these against seaborn.
COLORBLIND = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # fmt: skip

#: seaborn's ``axes_style("whitegrid")`` and ``plotting_context("notebook",
#: font_scale=0.85)``, written out (the test checks them against seaborn); seaborn's
#: default image colour map (its own "rocket") is left out: every heatmap names its map.
THEME: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.labelcolor": ".15",
    "xtick.direction": "out",
    "ytick.direction": "out",
    "xtick.color": ".15",
    "ytick.color": ".15",
    "axes.axisbelow": True,
    "grid.linestyle": "-",
    "text.color": ".15",
    "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans",
                        "sans-serif"],
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "xtick.top": False,
    "ytick.right": False,
    "axes.grid": True,
    "axes.facecolor": "white",
    "axes.edgecolor": ".8",
    "grid.color": ".8",
    "axes.spines.left": True,
    "axes.spines.bottom": True,
    "axes.spines.right": True,
    "axes.spines.top": True,
    "xtick.bottom": False,
    "ytick.left": False,
    "axes.linewidth": 1.25,
    "grid.linewidth": 1,
    "lines.linewidth": 1.5,
    "lines.markersize": 6,
    "patch.linewidth": 1,
    "xtick.major.width": 1.25,
    "ytick.major.width": 1.25,
    "xtick.minor.width": 1,
    "ytick.minor.width": 1,
    "xtick.major.size": 6,
    "ytick.major.size": 6,
    "xtick.minor.size": 4,
    "ytick.minor.size": 4,
    "font.size": 10.2,
    "axes.labelsize": 10.2,
    "axes.titlesize": 10.2,
    "xtick.labelsize": 9.35,
    "ytick.labelsize": 9.35,
    "legend.fontsize": 9.35,
    "legend.title_fontsize": 10.2,
}  # fmt: skip


def palette(n: int) -> list[tuple[float, float, float]]:
    """``n`` colour-blind-safe colours (seaborn's "colorblind", cycled beyond 10)."""
    from matplotlib.colors import to_rgb

    base = [to_rgb(c) for c in COLORBLIND]
    return [base[i % len(base)] for i in range(max(n, 1))]


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Seaborn's whitegrid theme and the colour-blind palette, for this block only.

    Titles are placed by :class:`~gradscope.plot._layout.GridLayout`, not by matplotlib.
    """
    rc = dict(THEME)
    rc["axes.prop_cycle"] = cycler(color=palette(10))
    # titles at a fixed height (GridLayout lifts one over labels above its panel): left
    # to matplotlib (None), each draw measures every tick label of a panel to place it
    rc["axes.titley"] = 1.0
    # reproducible files: SVG ids from a fixed salt instead of random ones (and no dates,
    # see save), so that the same run gives the same report, byte for byte
    rc["svg.hashsalt"] = "gradscope"
    # seaborn's style dicts are typed with plain str keys; they are matplotlib rc keys
    with matplotlib.rc_context(cast("dict[RcKeyType, Any]", rc)):
        yield


def figure(
    nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 3.6, **kw: Any
) -> tuple[Figure, np.ndarray]:
    """A new figure (not registered with pyplot's global state) and its axes.

    The axes are an ``(nrows, ncols)`` array of :class:`~matplotlib.axes.Axes` (never
    squeezed).
    """
    fig = Figure(figsize=(width * ncols, height * nrows), layout=GridLayout())
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def figure_of(ax: Axes) -> Figure:
    """The figure ``ax`` draws on.

    matplotlib types ``Axes.figure`` as a Figure or a SubFigure; gradscope's panels live on
    the plain Figures that :func:`figure` and :func:`mosaic` make.
    """
    return cast(Figure, ax.figure)


def mosaic(
    layout: Sequence[Sequence[str]], *, width: float, heights: Sequence[float]
) -> tuple[Figure, dict[Any, Axes]]:
    """A new figure with named panels (``Figure.subplot_mosaic``); rows ``heights`` inches."""
    fig = Figure(figsize=(width, float(sum(heights))), layout=GridLayout())
    FigureCanvasAgg(fig)
    axd = fig.subplot_mosaic([list(r) for r in layout], height_ratios=list(heights))
    return fig, axd


def two_rows(top: Sequence[str], bottom: Sequence[str]) -> list[list[str]]:
    """A mosaic layout: the ``top`` panels share the first row, ``bottom`` the second."""
    return [
        [k for k in top for _ in bottom],
        [k for k in bottom for _ in top],
    ]


def heatmap_height(n_layers: int) -> float:
    """Inches for a layer x step heatmap.

    Room for a name per layer up to about 60 layers, then capped (the axis thins its labels
    and names the module groups).
    """
    return float(min(max(1.3 + 0.115 * n_layers, 3.2), 8.5))


def run_legend(fig: Figure, names: Sequence[str], colors: Sequence[ColorType]) -> None:
    """One legend of runs for the whole figure (one colour per run), above the panels."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2) for c in colors]
    fig.legend(
        handles,
        list(names),
        loc="upper center",
        ncols=min(len(names), 6),
        fontsize="small",
        title="runs",
        title_fontsize="small",
    )


def log_scale(ax: object, axis: str = "y") -> None:
    """Log scale on ``axis`` when the drawn data have a positive finite value, else linear.

    A run with NaN or infinite values (or none at all) still gets its figure: a log axis
    over no positive data is what makes matplotlib refuse to draw.
    """
    import numpy as np

    vals = []
    for line in ax.get_lines():  # type: ignore[attr-defined]
        d = line.get_ydata() if axis == "y" else line.get_xdata()
        vals.append(np.asarray(d, dtype=float).ravel())
    for coll in ax.collections:  # type: ignore[attr-defined]
        for path in coll.get_paths():
            v = path.vertices[:, 1 if axis == "y" else 0]
            vals.append(np.asarray(v, dtype=float))
    v = np.concatenate(vals) if vals else np.zeros(0)
    if np.any(np.isfinite(v) & (v > 0)):
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")  # type: ignore[attr-defined]


def save(
    fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg")
) -> tuple[list[Path], bytes]:
    """Write ``stem.<fmt>`` for each format; returns the paths and the PNG bytes.

    The PNG is rendered once: the bytes written to ``stem.png`` are the ones returned (the
    HTML page embeds them), whether or not ``png`` is among ``formats``.
    """
    png = png_bytes(fig)  # lays the figure out once (fix_layout)
    out = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        if fmt == "png":
            path.write_bytes(png)
        else:
            fig.savefig(path, format=fmt, dpi=DPI, metadata=_NO_DATE[fmt])
        out.append(path)
    return out, png


# the render date would make each report's files differ from the last one's
_NO_DATE: dict[str, dict[str, None]] = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes at :data:`DPI`.

    A figure laid out by :class:`GridLayout` is arranged here once and its engine removed,
    so that this and any later render draw the figure once (matplotlib draws a figure
    twice per save while it has a layout engine).
    """
    fix_layout(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS})
    return buf.getvalue()


def svg_text(fig: Figure) -> str:
    """The figure as inline SVG text."""
    fix_layout(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


def close(fig: Figure) -> None:
    """Release a figure's artists (Figures made here are not tracked by pyplot)."""
    fig.clear()
