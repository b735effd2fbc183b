"""Several runs overlaid: same figures, one colour per run, and a headline table."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradscope import analysis as A
from gradscope.errors import MissingDataError
from gradscope.report.build import Progress, RunAnalysis, analyze_run, headline

__all__ = ["Comparison", "compare_runs"]


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


def pair_verdicts(analyses: Sequence[RunAnalysis], labels: Sequence[str]) -> tuple[str, ...]:
    """Per pair of runs: lower within-layer stepsize spread, steadier step length (in how
    many common layers), computed from the records."""
    out: list[str] = []
    prof = [(a.stepsizes, lab) for a, lab in zip(analyses, labels) if a.stepsizes is not None]
    if len(prof) >= 2:
        out += A.compare_stepsize_verdicts([p for p, _ in prof], [lab for _, lab in prof])
    sl = [(a.step_length, lab) for a, lab in zip(analyses, labels) if a.step_length is not None]
    if len(sl) >= 2:
        out += A.compare_step_length_verdicts([s for s, _ in sl], [lab for _, lab in sl])
    return tuple(out)


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
    formats: Sequence[str] = ("png", "svg"),
    max_points: int = 1000,
    fit_steps: Sequence[int] | None = None,
    fit_layers: Any = None,
    progress: Progress | None = None,
) -> Comparison:
    """Analyse every run and write overlaid figures, ``comparison.json`` and an HTML page.

    ``fit_steps``/``fit_layers`` aim the update fits as in
    :func:`gradscope.report.build.analyze_run`. The page ends each figure with the verdict
    for every pair of runs (which has the lower within-layer stepsize spread, the steadier
    step length, in how many common layers).
    """
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise ValueError(f"unknown figure formats {bad}; use png, svg or pdf")
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("compare needs at least two run files")
    analyses = [
        analyze_run(
            p,
            steps=steps,
            max_points=max_points,
            fit_steps=fit_steps,
            fit_layers=fit_layers,
        )
        for p in paths
    ]
    labels = _labels(paths)
    heads = [headline(a) for a in analyses]
    keys: list[str] = []
    for h in heads:
        keys += [k for k in h if k not in keys]
    table = [("", *labels)] + [(k, *(h.get(k, "") for h in heads)) for k in keys]
    verdicts = pair_verdicts(analyses, labels)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    from gradscope.plot import randomness as pr
    from gradscope.plot import steplength as psl
    from gradscope.plot import stepsizes as ps
    from gradscope.plot import style
    from gradscope.plot import updates as pu
    from gradscope.report.html import render_report

    jobs = []
    for attr, stem, title, draw in (
        ("stepsizes", "stepsizes", "Layerwise adaptive stepsizes", ps.draw_stepsize_profile),
        ("ranges", "stepsize_range", "Stepsize range", ps.draw_stepsize_range),
        ("randomness_grad", "randomness_grad", "Cosine randomness test: grad", pr.draw_randomness),
        (
            "moments",
            "update_moments",
            "Update variance vs Corollaries 1 and 2",
            pu.draw_update_moments,
        ),
        ("step_length", "step_length", "Step length", psl.draw_step_length),
    ):
        have = [
            (getattr(a, attr), lab)
            for a, lab in zip(analyses, labels)
            if getattr(a, attr) is not None
        ]
        if have:
            jobs.append((stem, title, draw, [h[0] for h in have], [h[1] for h in have]))
    if not jobs:
        raise MissingDataError("none of the runs has anything to compare")
    files: list[Path] = []
    figures = []
    with style.theme():
        for i, (stem, title, draw, recs, labs) in enumerate(jobs):
            fig = draw(recs, labels=labs)
            files += style.save(fig, out_dir / stem, formats)
            which = {"stepsizes": "within-layer spread", "step_length": "step-length CV"}
            v = " ".join(x for x in verdicts if stem in which and which[stem] in x)
            figures.append((title, "runs: " + ", ".join(labs), style.png_bytes(fig), v))
            style.close(fig)
            if progress:
                progress("figures", i + 1, len(jobs))
    data = out_dir / "comparison.json"
    data.write_text(
        json.dumps(
            {
                "labels": labels,
                "paths": [str(p) for p in paths],
                "headline": heads,
                "verdicts": list(verdicts),
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
            {"runs": len(paths)},
            figures,
            skipped,
            table=table,
            pair_verdicts=verdicts,
        ),
        encoding="utf-8",
    )
    files += [data, page]
    return Comparison(
        out_dir,
        page,
        tuple(files),
        tuple(labels),
        tuple(analyses),
        tuple(tuple(r) for r in table),
        verdicts,
    )
