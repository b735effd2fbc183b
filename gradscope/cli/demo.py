"""``gradscope demo``: the main job, a recorded optimizer comparison on embedded data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradscope.cli._errors import user_errors


def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the run files and the report.")
    ] = Path("gradscope-demo"),
    optimizers: Annotated[
        list[str] | None,
        typer.Option("--optimizer", "-o", help="Optimizer to include (repeat); default: six."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs over the digits training set.")] = 10,
    every: Annotated[int, typer.Option(min=1, help="Record every k-th optimizer step.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the weights and the data order.")] = 0,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="torch CPU threads; 1 suits the demo's small layers, 0 keeps torch's default.",
        ),
    ] = 1,
) -> None:
    """Train one MLP on scikit-learn's bundled digits with each optimizer, record, compare."""
    from gradscope.cli._render import progress_bar, render_comparison
    from gradscope.demo import run_demo

    with user_errors(), progress_bar(lines_off_terminal=True) as advance:
        result = run_demo(
            out, optimizers, epochs=epochs, every=every, seed=seed, device=device,
            threads=threads or None, progress=advance,
        )  # fmt: skip
    render_comparison(result.rows, result.seconds)
    typer.echo(f"run files: {', '.join(str(p) for p in result.run_files)}")
    typer.echo(f"report: {result.report}")


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("demo")(demo)
