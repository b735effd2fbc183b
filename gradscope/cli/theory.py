"""``gradscope theory``: draw the exact update laws for given steps and betas (no run file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradscope.cli._errors import user_errors


def theory(
    t: Annotated[
        list[int] | None, typer.Option("--t", "-t", help="Optimizer step t >= 2 (repeat).")
    ] = None,
    beta1: Annotated[
        list[float] | None,
        typer.Option("--beta1", "-b", help="First-moment EMA factor (repeat); default 0.9."),
    ] = None,
    average: Annotated[
        bool, typer.Option("--average", help="Also draw simple averaging (Theorem 1).")
    ] = False,
    scaled: Annotated[
        bool, typer.Option("--scaled", help="Draw sqrt(t_eff) z, z = -update/lr (unit variance).")
    ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "gradscope_theory"
    ),
    formats: Annotated[
        list[str] | None, typer.Option("--format", "-f", help="Figure format: png, svg, pdf.")
    ] = None,
) -> None:
    """Draw exact laws of the Adam update under i.i.d. Gaussian gradients."""
    from gradscope.cli._render import render_files
    from gradscope.report.theory_figures import theory_figures

    with user_errors():
        files = theory_figures(
            out,
            ts=tuple(t) if t else (2, 3, 10, 100),
            beta1s=tuple(beta1) if beta1 else (0.9,),
            average=average,
            scaled=scaled,
            formats=tuple(formats) if formats else ("png", "svg"),
        )
    render_files(files)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("theory")(theory)
