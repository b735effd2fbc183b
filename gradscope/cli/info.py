"""``gradscope info``: what a run file holds (fast; no analysis, no torch, no matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradscope.cli._errors import check_run_files, user_errors


def info(
    path: Annotated[Path, typer.Argument(help="Run file (.h5) written by gradscope.Recorder.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show schema version, layers, steps, what was recorded and the run's metadata."""
    from gradscope.cli._render import render_info
    from gradscope.report.info import run_info

    with user_errors():
        check_run_files([path])
        result = run_info(path)
    render_info(result, as_json=json_out)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("info")(info)
