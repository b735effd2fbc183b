"""``gradscope analyze``: run file -> HTML report, figures and data, plus a terminal summary.

Several files (or a quoted glob) are the per-rank files of one run: they are merged by
:func:`gradscope.runfile.merge.merge_ranks` into ``<out>/<stem>.merged.h5`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradscope import names
from gradscope.cli._errors import check_run_files, user_errors


def parse_steps(text: str | None) -> tuple[int | None, int | None] | None:
    """``"A:B"``, ``"A:"``, ``":B"`` or ``"A"`` -> inclusive step window."""
    if not text:
        return None
    lo, sep, hi = text.partition(":")
    try:
        a = int(lo) if lo.strip() else None
        b = (int(hi) if hi.strip() else None) if sep else a
    except ValueError:
        raise ValueError(f"--steps must look like 100:2000, 100: or :2000, got {text!r}") from None
    if a is not None and b is not None and b < a:
        raise ValueError(f"--steps window is empty: {text!r}")
    return a, b


def parse_fit_steps(text: str | None) -> list[int] | None:
    """``"1,2,3,5"`` -> ``[1, 2, 3, 5]`` (optimizer steps t >= 1); empty -> the default."""
    if not text:
        return None
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--fit-steps must look like 1,2,3,10, got {text!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"--fit-steps needs optimizer steps >= 1, got {text!r}")
    return out


def parse_fit_layers(text: str | None) -> str | list[str] | None:
    """``"all"`` or ``"NAME,NAME"`` -> what the report's ``fit_layers`` takes; empty -> default."""
    if not text:
        return None
    if text.strip() == "all":
        return "all"
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise ValueError(f"--fit-layers must be 'all' or layer names, got {text!r}")
    return names


def expand_paths(paths: list[Path]) -> list[Path]:
    """Expand glob patterns the shell left alone (quoted, or on Windows), sorted."""
    out: list[Path] = []
    for p in paths:
        if not p.exists() and any(c in p.name for c in "*?["):
            found = sorted(p.parent.glob(p.name))
            if not found:
                raise ValueError(f"no run file matches {str(p)!r}")
            out.extend(found)
        else:
            out.append(p)
    return out


def run_stem(path: Path) -> str:
    """``run.rank00001.h5`` -> ``run``: the run's name without the rank suffix."""
    return names.run_stem(path)


Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Worker processes for the update fits and figure renders; 1 runs everything "
        "in one process (the report is the same) [default: one per core, at most 8].",
    ),
]


def analyze(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Run file (.h5) to analyse, or the per-rank files of one run "
            "(run.rank*.h5), merged into one view first."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder [default: <stem>_report].")
    ] = None,
    layers: Annotated[
        list[str] | None, typer.Option("--layers", "-l", help="Layer to include (repeat).")
    ] = None,
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
        typer.Option(
            "--fit-steps",
            help="Optimizer steps t of the update fits, e.g. 1,2,3,5,10,20,50,100 "
            "[default: 1, 2, 3, 10, 100, ... where recorded]; t = 1 gets the two-point check.",
        ),
    ] = None,
    fit_layers: Annotated[
        str | None,
        typer.Option(
            "--fit-layers",
            help="'all' (every layer with >= 256 coordinates) or NAME,NAME,... (exactly "
            "those) [default: the 4 largest layers].",
        ),
    ] = None,
    keep_dead: Annotated[
        bool,
        typer.Option(
            "--keep-dead",
            help="Keep dead coordinates (stepsize at the eps cap, or a gradient zero at every "
            "sampled row so far) in the update fits.",
        ),
    ] = False,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Print where the time went (analysis, drawing, rendering each format, HTML).",
        ),
    ] = False,
    jobs: Jobs = None,
) -> None:
    """Analyse a run: stepsizes, randomness tests, update laws; write an HTML report."""
    from gradscope.cli._render import progress_bar, render_report_summary
    from gradscope.report.build import build

    with user_errors():
        files = expand_paths(paths)
        check_run_files(files)
    with user_errors(), progress_bar() as advance:
        path = files[0]
        if len(files) > 1:
            from gradscope.runfile.merge import merge_ranks

            stem = run_stem(files[0])
            out = out if out is not None else files[0].with_name(f"{stem}_report")
            path = merge_ranks(files, out / f"{stem}.merged.h5")
        fit = {}
        if fit_steps:
            fit["fit_steps"] = parse_fit_steps(fit_steps)
        if fit_layers:
            fit["fit_layers"] = parse_fit_layers(fit_layers)
        if keep_dead:
            fit["exclude_dead"] = False
        report = build(
            path,
            out,
            layers=layers or None,
            steps=parse_steps(steps),
            formats=tuple(formats) if formats else ("png",),
            progress=advance,
            jobs=jobs,
            **fit,
        )
    render_report_summary(report)
    render_verdicts(report.analysis.verdicts)
    if profile:
        render_profile(report.profile)


def render_profile(profile: dict[str, float]) -> None:
    """Print seconds per stage of a report (``--profile``)."""
    total = sum(profile.values())
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in profile.items())
    typer.echo(f"time: {total:.2f} s ({parts})", err=True)


def render_verdicts(verdicts: dict[str, str]) -> None:
    """Print each section's verdict (text from the report; control characters removed)."""
    from rich.text import Text

    from gradscope.cli._render import console

    for key, text in verdicts.items():
        clean = "".join(ch for ch in f"{key}: {text}" if ch.isprintable())
        console.print(Text(clean))


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("analyze")(analyze)
