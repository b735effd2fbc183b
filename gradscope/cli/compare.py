"""``gradscope compare``: several runs overlaid, one colour per run, headline table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradscope.cli._errors import check_run_files, user_errors


def compare(
    paths: Annotated[list[Path], typer.Argument(help="Two or more run files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "gradscope_compare"
    ),
    steps: Annotated[
        str | None, typer.Option("--steps", help="Optimizer-step window, e.g. 100:2000.")
    ] = None,
    formats: Annotated[
        list[str] | None, typer.Option("--format", "-f", help="Figure format: png, svg, pdf.")
    ] = None,
) -> None:
    """Overlay the analyses of several runs and print their headline numbers side by side."""
    from gradscope.cli._render import progress_bar, render_comparison_table
    from gradscope.cli.analyze import parse_steps
    from gradscope.report.compare import compare_runs

    with user_errors():
        check_run_files(paths)
    with user_errors(), progress_bar() as advance:
        result = compare_runs(
            paths,
            out,
            steps=parse_steps(steps),
            formats=tuple(formats) if formats else ("png", "svg"),
            progress=advance,
        )
    render_comparison_table(result)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("compare")(compare)
