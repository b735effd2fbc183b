"""Several runs overlaid: same figures, one colour per run, and a headline table."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    profile: dict[str, float] = field(default_factory=dict)


def compare_fits(
    analyses: Sequence[RunAnalysis], labels: Sequence[str], layers: int = 2
) -> tuple[list[A.UpdateFit], list[str]]:
    """The update fits to set side by side.

    For up to ``layers`` layers fitted in every run, each run's fit at the largest optimizer
    step t fitted in all of them (run order).
    """
    if not analyses or any(not a.fits for a in analyses):
        return [], []
    keys = [{(f.layer, f.t) for f in a.fits} for a in analyses]
    common = set.intersection(*keys)
    if not common:
        return [], []
    t = max(k[1] for k in common)
    order = [f.layer for f in analyses[0].fits if (f.layer, t) in common]
    chosen = list(dict.fromkeys(order))[:layers]
    fits, labs = [], []
    for layer in chosen:
        for a, lab in zip(analyses, labels):
            f = next(f for f in a.fits if f.layer == layer and f.t == t)
            fits.append(f)
            labs.append(lab)
    return fits, labs


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
    from gradscope.report.build import _add

    profile: dict[str, float] = {}
    t0 = time.perf_counter()
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

    from gradscope.plot import randomness as pr
    from gradscope.plot import steplength as psl
    from gradscope.plot import stepsizes as ps
    from gradscope.plot import style
    from gradscope.plot import updates as pu
    from gradscope.report.build import _add, _caption_rule, _named, save_timed
    from gradscope.report.html import render_report

    nl = _named(analyses[0])
    rule = _caption_rule(nl) + " Each panel is one layer; each colour one run."
    runs_txt = "One colour per run (legend of runs above the panels). "
    jobs: list[tuple[str, str, str, Any, list, list]] = []
    for attr, stem, title, caption, draw in (
        (
            "stepsizes",
            "stepsizes",
            "Layerwise adaptive stepsizes",
            runs_txt + "Top: the mean of the stepsize u (update = -lr u m_hat) of each named "
            "layer with a geometric ±1 sigma band (mean times or divided by exp(sigma), "
            "sigma^2 = log(1 + (std/mean)^2)). "
            "Bottom: the compactness across layers (std over layers of log10 of the layer "
            "means) and the depth profile at the last step. " + rule,
            lambda recs, labs: ps.draw_stepsize_profile(recs, labs, named=nl),
        ),
        (
            "ranges",
            "stepsize_range",
            "Stepsize range",
            runs_txt + "The spread log10(max u / min u) within each named layer (decades). " + rule,
            lambda recs, labs: ps.draw_stepsize_range(recs, labs, named=nl),
        ),
        (
            "randomness_grad",
            "randomness_grad",
            "Cosine randomness test: grad",
            runs_txt + "Top: signed cosines of successive gradients of each named layer "
            "(symlog axis), each run's exact 5% critical values dotted in its colour. "
            "Bottom: fraction of steps flagged non-random per layer (solid: exact test with "
            "BH-FDR; dashed: the sqrt(log n/n) rule of Zhang et al.) and the mean signed "
            "cosine per layer. " + rule,
            lambda recs, labs: pr.draw_randomness(recs, labs, named=nl),
        ),
        (
            "moments",
            "update_moments",
            "Update variance vs Corollaries 1 and 2",
            runs_txt + "Var(z)·t_eff and Var|z|·t_eff of the normalised update "
            "z = -update/lr, every named layer of a run in its colour, beside Corollaries 1 "
            "and 2 (dashed). " + rule,
            lambda recs, labs: pu.draw_update_moments(recs, labs, named=nl.names),
        ),
        (
            "step_length",
            "step_length",
            "Step length",
            runs_txt + "The network's step length ||x_t - x_(t-1)||, the named layers' "
            "(line style per layer) and the windowed coefficient of variation. " + rule,
            lambda recs, labs: psl.draw_step_length(recs, labs, named=nl),
        ),
    ):
        have = [
            (getattr(a, attr), lab)
            for a, lab in zip(analyses, labels)
            if getattr(a, attr) is not None
        ]
        if have:
            jobs.append((stem, title, caption, draw, [h[0] for h in have], [h[1] for h in have]))
    fits, fit_labels = compare_fits(analyses, labels)
    if fits:
        jobs.append(
            (
                "update_fits",
                "Update distribution vs exact law",
                "Histogram of the normalised update z = -update/lr at the same layer and "
                "optimizer step t in each run (panel titles name the run), with the exact "
                "zero-mean law (solid) and, where rejected, the non-central law (dashed). "
                "The x range follows the data.",
                lambda recs, labs: pu.draw_update_fits(recs, run_labels=labs),
                fits,
                fit_labels,
            )
        )
    if not jobs:
        raise MissingDataError("none of the runs has anything to compare")
    files: list[Path] = []
    figures = []
    with style.theme():
        for i, (stem, title, caption, draw, recs, labs) in enumerate(jobs):
            t0 = time.perf_counter()
            fig = draw(recs, labs)
            _add(profile, "draw figures", t0)
            written, png = save_timed(style, fig, out_dir / stem, formats, profile)
            files += written
            figures.append((title, caption, png, ""))
            style.close(fig)
            if progress:
                progress("figures", i + 1, len(jobs))
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
