"""``gradscope compare``: several runs overlaid, one colour per run, headline table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradscope.cli._errors import check_run_files, user_errors
from gradscope.cli.analyze import Jobs


def compare(
    paths: Annotated[list[Path], typer.Argument(help="Two or more run files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "gradscope_compare"
    ),
    steps: Annotated[
        str | None, typer.Option("--steps", help="Optimizer-step window, e.g. 100:2000.")
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="Figure format: png, svg, pdf (repeat) [default: png; svg and pdf each cost a "
            "second render of every figure].",
        ),
    ] = None,
    fit_steps: Annotated[
        str | None,
        typer.Option("--fit-steps", help="Optimizer steps t of the update fits, e.g. 2,3,10."),
    ] = None,
    fit_layers: Annotated[
        str | None,
        typer.Option("--fit-layers", help="'all' or NAME,NAME,... [default: 4 largest]."),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Print where the time went (analysis, drawing, rendering each format, HTML).",
        ),
    ] = False,
    jobs: Jobs = None,
) -> None:
    """Overlay the analyses of several runs and print their headline numbers side by side."""
    from gradscope.cli._render import progress_bar, render_comparison_table
    from gradscope.cli.analyze import (
        parse_fit_layers,
        parse_fit_steps,
        parse_steps,
        render_profile,
        render_verdicts,
    )
    from gradscope.report.compare import compare_runs

    with user_errors():
        check_run_files(paths)
    with user_errors(), progress_bar() as advance:
        fit = {}
        if fit_steps:
            fit["fit_steps"] = parse_fit_steps(fit_steps)
        if fit_layers:
            fit["fit_layers"] = parse_fit_layers(fit_layers)
        result = compare_runs(
            paths,
            out,
            steps=parse_steps(steps),
            formats=tuple(formats) if formats else ("png",),
            progress=advance,
            jobs=jobs,
            **fit,
        )
    render_comparison_table(result)
    render_verdicts({f"pair {i + 1}": v for i, v in enumerate(result.verdicts)})
    if profile:
        render_profile(result.profile)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("compare")(compare)
