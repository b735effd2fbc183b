"""Several runs overlaid: same figures, one colour per run, and a headline table."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gradscope import analysis as A
from gradscope.errors import MissingDataError
from gradscope.report import sections as SEC
from gradscope.report._parallel import fork_map
from gradscope.report.build import Progress, RunAnalysis, analyze_run, headline
from gradscope.report.sections.updates import compare_fits

__all__ = ["Comparison", "compare_fits", "compare_runs"]


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_runs` wrote and the side-by-side table (first row: labels)."""

    out: Path
    html: Path
    files: tuple[Path, ...]
    labels: tuple[str, ...]
    analyses: tuple[RunAnalysis, ...]
    table: tuple[tuple[Any, ...], ...]
    verdicts: tuple[str, ...] = ()
    profile: dict[str, float] = field(default_factory=dict)


def pair_verdicts(analyses: Sequence[RunAnalysis], labels: Sequence[str]) -> tuple[str, ...]:
    """Per pair of runs: lower within-layer stepsize spread, steadier step length.

    Each counted in how many common layers; computed from the records.
    """
    out: list[str] = []
    prof = [(a.stepsizes, lab) for a, lab in zip(analyses, labels) if a.stepsizes is not None]
    if len(prof) >= 2:
        out += A.compare_stepsize_verdicts([p for p, _ in prof], [lab for _, lab in prof])
    sl = [(a.step_length, lab) for a, lab in zip(analyses, labels) if a.step_length is not None]
    if len(sl) >= 2:
        out += A.compare_step_length_verdicts([s for s, _ in sl], [lab for _, lab in sl])
    return tuple(out)


def pair_tables(analyses: Sequence[RunAnalysis], labels: Sequence[str]) -> list[A.PairTable]:
    """Runs against runs.

    In how many common layers the row run has the lower within-layer std/mean of u (last
    step) and the lower step-length CV than the column run.
    """
    out = []
    prof = [(a, lab) for a, lab in zip(analyses, labels) if a.stepsizes is not None]
    prof = [(a, lab) for a, lab in prof if len(a.stepsizes.steps)]  # type: ignore[union-attr]
    if len(prof) >= 2:
        out.append(
            A.pair_table(
                [a.layers for a, _ in prof],
                [a.stepsizes.relative_std[-1] for a, _ in prof],  # type: ignore[union-attr]
                [lab for _, lab in prof],
                "within-layer std/mean of u (last step)",
            )
        )
    sl = [(a, lab) for a, lab in zip(analyses, labels) if a.step_length is not None]
    if len(sl) >= 2:
        out.append(
            A.pair_table(
                [a.step_length.layers for a, _ in sl],  # type: ignore[union-attr]
                [a.step_length.cv[:-1] for a, _ in sl],  # type: ignore[union-attr]
                [lab for _, lab in sl],
                "step-length CV",
            )
        )
    return out


def _labels(paths: Sequence[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p) for p in paths]


def compare_runs(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    steps: tuple[int | None, int | None] | None = None,
    formats: Sequence[str] = ("png",),
    max_points: int = 1000,
    fit_steps: Sequence[int] | None = None,
    fit_layers: Any = None,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> Comparison:
    """Analyse every run and write overlaid figures, ``comparison.json`` and an HTML page.

    ``fit_steps``/``fit_layers`` aim the update fits as in
    :func:`gradscope.report.build.analyze_run`. The page ends each figure with the verdict
    for every pair of runs (which has the lower within-layer stepsize spread, the steadier
    step length, in how many common layers).

    ``jobs`` worker processes (``None``: one per usable core, at most 8; 1: all in this
    process) analyse the runs and render the figures; the result does not depend on it.
    """
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise ValueError(f"unknown figure formats {bad}; use png, svg or pdf")
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("compare needs at least two run files")
    from gradscope.report.build import _add

    profile: dict[str, float] = {}
    t0 = time.perf_counter()
    analyses = fork_map(
        lambda i: analyze_run(
            paths[i],
            steps=steps,
            max_points=max_points,
            fit_steps=fit_steps,
            fit_layers=fit_layers,
            jobs=jobs,
        ),
        len(paths),
        jobs,
    )
    _add(profile, "analysis", t0)
    labels = _labels(paths)
    heads = [headline(a) for a in analyses]
    keys: list[str] = []
    for h in heads:
        keys += [k for k in h if k not in keys]
    table = [("", *labels)] + [(k, *(h.get(k, "") for h in heads)) for k in keys]
    verdicts = pair_verdicts(analyses, labels)
    tables = pair_tables(analyses, labels)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    from gradscope.plot import style
    from gradscope.report.build import render_figures
    from gradscope.report.html import render_report

    # the same sections as a single run's report, each drawn with every run that has it
    ctx = replace(SEC.context(analyses[0]), runs=tuple(labels))
    todo = []
    for sec in SEC.sections():
        caption = sec.compare_caption(ctx)
        if not caption:
            continue
        recs, labs = sec.compare_records(analyses, labels)
        if recs:
            todo.append((sec, caption, recs, labs))
    if not todo:
        raise MissingDataError("none of the runs has anything to compare")
    files: list[Path] = []
    drawn = []
    with style.theme():
        for i, (sec, caption, recs, labs) in enumerate(todo):
            t0 = time.perf_counter()
            fig = sec.draw_compare(recs, labs, ctx)
            _add(profile, "draw figures", t0)
            if fig is not None:
                drawn.append((sec, caption, fig))
            if progress:
                progress("figures", i + 1, len(todo))
        rendered = render_figures(
            [(sec.file_stem, f) for sec, _, f in drawn],
            out_dir,
            formats,
            jobs=jobs,
            profile=profile,
        )
    figures = []
    for (sec, caption, _), (written, png) in zip(drawn, rendered):
        files += written
        figures.append((sec.title, caption, png, ""))
    t0 = time.perf_counter()
    data = out_dir / "comparison.json"
    data.write_text(
        json.dumps(
            {
                "labels": labels,
                "paths": [str(p) for p in paths],
                "headline": heads,
                "verdicts": list(verdicts),
                "pair_tables": [
                    {
                        "what": t.what,
                        "labels": list(t.labels),
                        "lower": t.lower.tolist(),
                        "common": t.common.tolist(),
                    }
                    for t in tables
                ],
                "run_verdicts": [a.verdicts for a in analyses],
                "skipped": [a.skipped for a in analyses],
            },
            indent=2,
            default=str,
        )
    )
    page = out_dir / "compare.html"
    skipped = {f"{lab}: {k}": v for a, lab in zip(analyses, labels) for k, v in a.skipped.items()}
    page.write_text(
        render_report(
            "gradscope comparison",
            {"runs": len(paths), "labels": ", ".join(labels)},
            figures,
            skipped,
            summary_table=table,
            pair_tables=[t.rows() for t in tables],
            pair_verdicts=verdicts,
        ),
        encoding="utf-8",
    )
    files += [data, page]
    _add(profile, "html and summary", t0)
    return Comparison(
        out_dir,
        page,
        tuple(files),
        tuple(labels),
        tuple(analyses),
        tuple(tuple(r) for r in table),
        verdicts,
        profile,
    )
