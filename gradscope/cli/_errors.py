"""The CLI's one error boundary: GradscopeError -> one stderr line and its exit code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from gradscope.errors import GradscopeError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn gradscope's own errors (and bad values) into ``gradscope: <message>``, exit 2."""
    try:
        yield
    except (GradscopeError, ValueError) as exc:
        typer.echo(f"gradscope: error: {exc}", err=True)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None
