"""The CLI's one error boundary: user errors are one line, bugs show their traceback.

* :class:`~gradscope.errors.GradscopeError` (a bad run file, missing data, an unsupported
  optimizer) and bad argument values are the user's to fix: ``gradscope: error: <message>``
  on stderr, one line (control characters removed), and the error's exit code (2).
  A bad argument value is a ``ValueError`` raised by gradscope's own code (the library
  validates its arguments with ``ValueError`` naming the value).
* Anything else, including a ``ValueError`` raised inside NumPy, h5py or matplotlib, is a
  bug in gradscope: the traceback is printed, then one line asking to report it, exit 1.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import typer

from gradscope.errors import GradscopeError, RunFileError

_PACKAGE = str(Path(__file__).resolve().parents[1])
BUG_EXIT = 1


def one_line(text: str) -> str:
    """``text`` as one printable line: control characters and line breaks become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def _raised_by_gradscope(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is gradscope's own code."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    return os.path.abspath(last.tb_frame.f_code.co_filename).startswith(_PACKAGE)


def report_bug(exc: BaseException) -> None:
    """Print the traceback of an unexpected exception and a line asking to report it."""
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    typer.echo(
        f"gradscope: internal error ({type(exc).__name__}): this is a bug in gradscope, "
        "not in your input; please report it with the traceback above and the command "
        "you ran.",
        err=True,
    )


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an exception into one error line (user errors) or a traceback (bugs).

    gradscope's own errors and bad values become ``gradscope: error: <message>`` (exit 2), any
    other exception its traceback plus a bug line (exit 1).
    """
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
        raise
    except GradscopeError as exc:
        typer.echo(f"gradscope: error: {one_line(str(exc))}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except ValueError as exc:
        if not _raised_by_gradscope(exc):
            report_bug(exc)
            raise typer.Exit(BUG_EXIT) from None
        typer.echo(f"gradscope: error: {one_line(str(exc))}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - the boundary: a bug is shown, never hidden
        report_bug(exc)
        raise typer.Exit(BUG_EXIT) from None


def _open_and_close(path: Path) -> None:
    from gradscope.runfile.reader import RunFile

    RunFile(path).close()


def check_run_files(paths: Sequence[Path]) -> None:
    """Open and validate each run file in a forked child first (bounded time).

    A file that makes the HDF5 library loop or crash is then one error line, not a hung
    process.
    """
    from gradscope.runfile.validate import probe

    for p in paths:
        if not Path(p).is_file():
            raise RunFileError(f"{p}: no such run file")
        probe(p, _open_and_close)
