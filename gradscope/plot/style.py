"""Theme, palette and saving: applied in a context, never globally."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

__all__ = ["figure", "log_scale", "palette", "png_bytes", "save", "svg_text", "theme"]


def palette(n: int) -> list[tuple[float, float, float]]:
    """``n`` colour-blind-safe colours (seaborn's "colorblind", cycled beyond 10)."""
    base = sns.color_palette("colorblind", 10)
    return [base[i % len(base)] for i in range(max(n, 1))]


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """seaborn's whitegrid theme and the colour-blind palette, for this block only."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)}
    rc["axes.prop_cycle"] = matplotlib.cycler(color=palette(10))
    with matplotlib.rc_context(rc):
        yield


def figure(
    nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 3.6, **kw: object
) -> tuple[Figure, object]:
    """A new figure (not registered with pyplot's global state) and its axes."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


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


def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem.<fmt>`` for each format; returns the paths."""
    out = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        fig.savefig(path, format=fmt, dpi=120)
        out.append(path)
    return out


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for embedding)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def svg_text(fig: Figure) -> str:
    """The figure as inline SVG text."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


def close(fig: Figure) -> None:
    """Release a figure (Figures made here are not tracked by pyplot)."""
    plt.close(fig)
