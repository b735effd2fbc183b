"""Exact laws drawn without a run file (``gradscope theory``): evaluate on grids, then draw."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from gradscope import analysis as A

__all__ = ["theory_figures"]


def theory_figures(
    out: str | os.PathLike[str],
    *,
    ts: Sequence[int] = (2, 3, 10, 100),
    beta1s: Sequence[float] = (0.9,),
    average: bool = False,
    scaled: bool = False,
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Write ``update_laws.<fmt>`` and ``update_laws.csv`` (label, z, pdf) into ``out``.

    ``z = -update/lr`` is the normalised update (not the stepsize u).

    Raises:
        ValueError: a step below 2, a beta1 outside [0, 1), or an unknown format.
    """
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise ValueError(f"unknown figure formats {bad}; use png, svg or pdf")
    if any(int(t) < 2 for t in ts):
        raise ValueError(f"every t must be >= 2 (the law is two-point at t = 1), got {list(ts)}")
    if any(not 0 <= b < 1 for b in beta1s):
        raise ValueError(f"every beta1 must be in [0, 1), got {list(beta1s)}")
    cases: list[float | None] = list(beta1s) + ([None] if average else [])
    curves = A.law_curves([int(t) for t in ts], cases, scaled=scaled)
    from gradscope.plot import style
    from gradscope.plot.updates import draw_law_curves

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with style.theme():
        fig = draw_law_curves(curves)
        files, _png = style.save(fig, out_dir / "update_laws", formats)
        style.close(fig)
    data = out_dir / "update_laws.csv"
    with data.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "variance", "z", "pdf"])
        for label, v, g, p in zip(curves.labels, curves.variances, curves.grids, curves.pdfs):
            for x, y in zip(g, p):
                w.writerow([label, repr(float(v)), repr(float(x)), repr(float(y))])
    return [*files, data]
