"""gradscope's command line: a thin typer shell over public library functions.

Each command module parses arguments, calls one library function and renders the result.
GradscopeError becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gradscope import __version__

app = typer.Typer(
    name="gradscope",
    no_args_is_help=True,
    add_completion=False,
    help="See inside an optimizer while a network trains.",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """See inside an optimizer while a network trains."""


def _register() -> None:
    from gradscope.cli import analyze, compare, demo, info, theory

    demo.register(app)
    info.register(app)
    analyze.register(app)
    compare.register(app)
    theory.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
