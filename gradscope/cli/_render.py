"""Terminal rendering with rich: tables and progress bars, nothing computed here."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # types only: the report modules load matplotlib
    from gradscope.report.build import Report
    from gradscope.report.compare import Comparison
    from gradscope.report.info import RunInfo

console = Console()


def clean(value: object) -> str:
    """``value`` as text safe for a terminal.

    Control characters (ESC, OSC, BEL, CR, line breaks) from names and metadata become spaces,
    so a file cannot drive the terminal.
    """
    return "".join(c if c.isprintable() else " " for c in str(value))


def _t(value: object, style: str = "") -> Text:
    """Plain (never markup) terminal text of ``value``, control characters removed."""
    return Text(clean(value), style=style)


@contextlib.contextmanager
def progress_bar(
    console_: Console | None = None, *, lines_off_terminal: bool = False
) -> Iterator[Callable[[str, int, int], None]]:
    """Progress keyed by task name on stderr; yields ``advance(name, done, total)``.

    On a terminal: one live bar per task. Elsewhere (a pipe, a log file, CI) a bar prints
    nothing; with ``lines_off_terminal`` each task gets one plain line instead when it
    completes, with its wall-clock seconds (the demo's minute of training is not silent).
    """
    err = console_ or Console(stderr=True)
    if not err.is_terminal:
        if not lines_off_terminal:
            yield lambda name, done, total: None
            return
        started: dict[str, float] = {}

        def line(name: str, done: int, total: int) -> None:
            t0 = started.setdefault(name, time.perf_counter())
            if done >= total:  # a task name may come again (one report stage per run)
                del started[name]
                took = time.perf_counter() - t0
                err.print(Text(f"{name}: {done}/{total} done in {took:.1f} s"), soft_wrap=True)

        yield line
        return
    with Progress(
        TextColumn("{task.description:>14}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        yield advance


def render_comparison(rows: Sequence, seconds: Mapping[str, float] | None = None) -> None:
    """Print the optimizer comparison table, then (apart from it) the wall-clock times.

    The table holds only what the controlled comparison fixes (same weights, same data
    order): timings depend on the machine and its load and are printed below it.
    """
    table = Table(title="Optimizer comparison on digits (same weights, same data order)")
    for col in (
        "optimizer",
        "steps",
        "train loss",
        "test acc",
        "median within-layer std/mean of u (last step)",
        "log10 spread of layer means",
    ):
        table.add_column(col, justify="right" if col != "optimizer" else "left")
    for r in rows:
        table.add_row(
            _t(r.name),
            str(r.steps),
            f"{r.final_train_loss:.4f}",
            f"{100 * r.test_accuracy:.1f}%",
            f"{r.median_relative_std:.4g}",
            f"{r.layer_mean_spread:.2f}",
        )
    console.print(table)
    console.print(
        "u is the adaptive stepsize (update = -lr u m_hat); lower layer std = "
        "more SGD-like layers (Aida paper, Figs. 1, 2, 6)."
    )
    if seconds:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
        console.print(
            Text(f"wall-clock training time (this machine, not part of the comparison): {times}")
        )


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def render_info(info: RunInfo, *, as_json: bool = False) -> None:
    """Print what a run file holds (tables, or JSON with ``as_json``)."""
    import dataclasses
    import json

    if as_json:
        # ASCII escapes: valid JSON whatever a damaged or crafted file's strings hold
        console.print_json(json.dumps(dataclasses.asdict(info), default=str), ensure_ascii=True)
        return
    table = Table(title=_t(f"run file {info.path}"), show_header=False)
    for k, v in (
        ("schema version", info.format_version),
        ("optimizer", info.optimizer),
        ("summary rows", info.n_rows),
        ("steps", f"{info.first_step}..{info.last_step}"),
        ("rows with histograms", info.hist_rows),
        ("quantities", ", ".join(info.quantities)),
        ("subsampled", ", ".join(info.sample_quantities) or "none"),
        ("subsample rows", info.n_sample_rows),
        ("full dumps", info.n_full_dumps),
        *((f"no {q}", why) for q, why in getattr(info, "unavailable", {}).items()),
    ):
        table.add_row(k, _t(v))
    console.print(table, markup=False)
    layers = Table(title="layers (input -> output)")
    layers.add_column("#", justify="right")
    layers.add_column("name")
    layers.add_column("n", justify="right")
    for i, (name, n) in enumerate(zip(info.layers, info.sizes)):
        layers.add_row(str(i), _t(name), str(n))
    console.print(layers)
    meta = {k: v for k, v in info.metadata.items() if k not in ("model",)}
    if meta:
        console.print(_t("metadata: " + json.dumps(meta, default=str)[:2000]))


def render_report_summary(report: Report) -> None:
    """Concise summary of an analysis: headline numbers, skipped analyses, where files are."""
    table = Table(title="gradscope analyze", show_header=False)
    for k, v in report.headline.items():
        table.add_row(_t(k), _t(_fmt(v)))
    console.print(table)
    for k, v in report.analysis.skipped.items():
        console.print(_t(f"skipped {k}: {v}", style="yellow"))
    for n in report.analysis.notes:
        console.print(_t(f"note: {n}", style="yellow"))
    console.print(_t(f"report: {report.html}  ({len(report.files)} files in {report.out})"))


def render_comparison_table(result: Comparison) -> None:
    """Side-by-side headline numbers of several runs."""
    table = Table(title="gradscope compare")
    table.add_column("")
    for label in result.labels:
        table.add_column(_t(label), justify="right")
    for row in result.table[1:]:
        table.add_row(*(_t(_fmt(c)) for c in row))
    console.print(table)
    console.print(_t(f"report: {result.html}"))


def render_files(files: Iterable[object]) -> None:
    """List written files."""
    for f in files:
        console.print(_t(f"wrote {f}"))
