"""Run file -> analyses -> figures -> CSV/JSON -> one self-contained HTML page.

:func:`analyze_run` streams the run file in row chunks (memory bounded by ``chunk`` rows
plus at most ``max_points`` kept rows per series) and returns the analysis records;
:func:`build` draws and writes them. An analysis the run lacks data for is skipped with a
reason; only a run where nothing can be analysed is an error.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradscope import analysis as A
from gradscope.errors import MissingDataError
from gradscope.report import export
from gradscope.runfile import schema as S
from gradscope.runfile.reader import RunFile

__all__ = ["Report", "RunAnalysis", "analyze_run", "build", "headline", "optimizer_facts"]

Progress = Callable[[str, int, int], None]
ADAM_CLASSES = ("Adam", "AdamW")


@dataclass(frozen=True)
class RunAnalysis:
    """Every analysis record of one run, and what was skipped and why."""

    path: str
    layers: tuple[str, ...]
    sizes: np.ndarray
    optimizer: str
    beta1: float | None
    n_rows: int
    first_step: int | None
    last_step: int | None
    stepsizes: A.StepsizeProfile | None = None
    ranges: A.StepsizeRange | None = None
    randomness_grad: A.RandomnessResult | None = None
    randomness_update: A.RandomnessResult | None = None
    fits: tuple[A.UpdateFit, ...] = ()
    moments: A.UpdateMoments | None = None
    epsilon: A.EpsilonCheck | None = None
    examplewise: A.ExamplewiseProfile | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """What :func:`build` wrote: the folder, the HTML page, every file, the numbers."""

    out: Path
    html: Path
    files: tuple[Path, ...]
    analysis: RunAnalysis
    headline: dict[str, Any]


def optimizer_facts(metadata: dict[str, Any]) -> tuple[str, float | None, float | None, float]:
    """``(class name, beta1 or momentum, beta2, weight decay)`` from run metadata."""
    opt = metadata.get("optimizer", {}) if isinstance(metadata, dict) else {}
    opt = opt if isinstance(opt, dict) else {}
    name = str(opt.get("class", "unknown")).rsplit(".", 1)[-1]
    d = opt.get("defaults", {}) if isinstance(opt.get("defaults"), dict) else {}
    betas = d.get("betas")
    b1 = b2 = None
    if isinstance(betas, (list, tuple)) and len(betas) == 2:
        b1, b2 = float(betas[0]), float(betas[1])
    elif "momentum" in d:
        b1 = float(d["momentum"])
    try:
        wd = float(d.get("weight_decay", 0.0) or 0.0)
    except (TypeError, ValueError):
        wd = 0.0
    return name, b1, b2, wd


def _row_range(steps: np.ndarray, window: tuple[int | None, int | None] | None) -> tuple[int, int]:
    if window is None:
        return 0, len(steps)
    lo, hi = window
    a = 0 if lo is None else int(np.searchsorted(steps, lo, side="left"))
    b = len(steps) if hi is None else int(np.searchsorted(steps, hi, side="right"))
    return a, b


def _columns(run: RunFile, layers: Sequence[str] | None) -> np.ndarray:
    if not layers:
        return np.arange(len(run.layers))
    return np.array([run.layer_index(x) for x in layers], dtype=np.int64)


def analyze_run(
    path: str | os.PathLike[str],
    *,
    layers: Sequence[str] | None = None,
    steps: tuple[int | None, int | None] | None = None,
    fit_steps: Sequence[int] | None = None,
    fit_layers: int = 4,
    alpha: float = 0.05,
    max_points: int = 2000,
    chunk: int = 4096,
    progress: Progress | None = None,
) -> RunAnalysis:
    """Run every analysis the file has data for.

    Args:
        path: run file (may still be written: opened through SWMR when needed).
        layers: layer names to analyse (default all), kept in input -> output order.
        steps: inclusive ``(first, last)`` optimizer-step window; ``None`` ends are open.
        fit_steps: optimizer steps of the update histograms (default up to 4, log-spaced).
        fit_layers: how many layers (spread over depth) get update histograms by default.
        alpha: FDR level of the randomness test.
        max_points: rows kept per time series (evenly thinned; counts use every row).
        chunk: rows read per block.
        progress: ``progress(task, done, total)`` callback.

    Raises:
        RunFileError: the file is missing, not HDF5, corrupt or of another schema.
        MissingDataError: an unknown layer, an empty step window, or nothing to analyse.
    """
    with RunFile(path) as run:
        return _analyze(
            run, layers, steps, fit_steps, fit_layers, alpha, max_points, chunk, progress
        )


def _analyze(run, layers, steps, fit_steps, fit_layers, alpha, max_points, chunk, progress):
    cols = np.sort(_columns(run, layers))
    names = tuple(run.layers[i] for i in cols)
    sizes = run.sizes[cols]
    all_steps = run.steps
    a, b = _row_range(all_steps, steps)
    name, b1, b2, wd = optimizer_facts(run.metadata)
    skipped: dict[str, str] = {}
    notes: list[str] = []
    if b <= a and run.n_rows > 0:
        raise MissingDataError(f"{run.path}: no recorded steps in the window {steps}")
    keep = A.thin_index(b - a, max_points) + a
    parts: dict[str, list[Any]] = {k: [] for k in ("step", "range", "rg", "ru", "rms")}
    wanted = {
        "stepsizes": ("stepsize", ("mean", "std")),
        "ranges": ("stepsize", ("min", "max")),
        "epsilon": ("grad", ("norm",)),
    }
    have = set(run.quantities)
    for key, (q, _) in wanted.items():
        if q not in have:
            skipped[key] = run.unavailable.get(q, f"the run recorded no {q!r} statistics")
    cos_have = {}
    for q in ("grad", "update"):
        try:
            run.cosine(q, rows=slice(0, 0))
            cos_have[q] = True
        except MissingDataError:
            cos_have[q] = False
            skipped[f"randomness_{q}"] = f"the run recorded no cosines of {q!r}"
    if b <= a:
        for key in ("stepsizes", "ranges", "epsilon", "randomness_grad", "randomness_update"):
            skipped.setdefault(key, "the run has no complete summary rows yet")
    total = max(b - a, 0)
    for r0 in range(a, b, chunk):
        r1 = min(b, r0 + chunk)
        rows = slice(r0, r1)
        st = all_steps[r0:r1]
        loc = keep[(keep >= r0) & (keep < r1)] - r0
        if "stepsizes" not in skipped:
            m = run.summary("stepsize", "mean", rows=rows)[:, cols]
            s = run.summary("stepsize", "std", rows=rows)[:, cols]
            parts["step"].append(A.take_rows(A.stepsize_profile(st, m, s, names), loc))
        if "ranges" not in skipped:
            lo = run.summary("stepsize", "min", rows=rows)[:, cols][loc]
            hi = run.summary("stepsize", "max", rows=rows)[:, cols][loc]
            parts["range"].append(A.stepsize_range(st[loc], lo, hi, names))
        for q, key in (("grad", "rg"), ("update", "ru")):
            if cos_have[q] and f"randomness_{q}" not in skipped:
                c = run.cosine(q, rows=rows)[:, cols]
                res = A.cosine_randomness(
                    st, c, sizes, names, quantity=q, alpha=alpha, momentum=b1 or 0.0
                )
                parts[key].append(A.take_rows(res, loc))
        if "epsilon" not in skipped:
            norm = run.summary("grad", "norm", rows=rows)[:, cols][loc]
            parts["rms"].append(norm / np.sqrt(np.maximum(sizes, 1)))
        if progress:
            progress("summaries", r1 - a, total)
    out: dict[str, Any] = {}
    if parts["step"]:
        out["stepsizes"] = A.concat_rows(parts["step"])
    if parts["range"]:
        out["ranges"] = A.concat_rows(parts["range"])
    if parts["rg"]:
        out["randomness_grad"] = A.concat_rows(parts["rg"])
    if parts["ru"]:
        out["randomness_update"] = A.concat_rows(parts["ru"])
        if not out["randomness_update"].null_applies:
            notes.append(out["randomness_update"].note)
    if parts["rms"]:
        out["epsilon"] = A.epsilon_check(np.concatenate(parts["rms"]), names)
    defaults = run.metadata.get("optimizer", {}) if isinstance(run.metadata, dict) else {}
    defaults = defaults.get("defaults", {}) if isinstance(defaults, dict) else {}
    if isinstance(defaults, dict) and defaults.get("amsgrad"):
        notes.append("AMSGrad: v_hat is a running maximum; the exact laws assume plain v_hat")
    fits, moments = _updates(
        run,
        cols,
        names,
        name,
        b1,
        wd,
        steps,
        fit_steps,
        fit_layers,
        max_points,
        chunk,
        skipped,
        notes,
        progress,
    )
    examplewise = _examplewise(run, cols, names, steps, max_points, chunk, skipped, progress)
    if examplewise is not None:
        out["examplewise"] = examplewise
    if (
        all(
            k in skipped
            for k in ("stepsizes", "ranges", "randomness_grad", "randomness_update", "epsilon")
        )
        and not fits
        and moments is None
        and examplewise is None
    ):
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise MissingDataError(f"{run.path}: nothing to analyse ({reasons})")
    sel = all_steps[a:b]
    return RunAnalysis(
        path=str(run.path),
        layers=names,
        sizes=sizes,
        optimizer=name,
        beta1=b1,
        n_rows=b - a,
        first_step=int(sel[0]) if len(sel) else None,
        last_step=int(sel[-1]) if len(sel) else None,
        fits=tuple(fits),
        moments=moments,
        skipped=skipped,
        notes=tuple(notes),
        **out,
    )


def _lr_lookup(run: RunFile):
    """lr at a given step and group: the summary row at or before the step, else metadata."""
    lr_rows = run.lr
    st = run.steps
    groups = (
        run.metadata.get("optimizer", {}).get("param_groups", [])
        if isinstance(run.metadata.get("optimizer"), dict)
        else []
    )

    def lr(step: int, group: int) -> float:
        i = int(np.searchsorted(st, step, side="right")) - 1
        if 0 <= i < len(st) and np.isfinite(lr_rows[i, group]):
            return float(lr_rows[i, group])
        if group < len(groups) and "lr" in groups[group]:
            return float(groups[group]["lr"])
        raise MissingDataError(f"{run.path}: no learning rate for step {step}")

    return lr


def _updates(
    run,
    cols,
    names,
    opt_name,
    b1,
    wd,
    window,
    fit_steps,
    fit_layers,
    max_points,
    chunk,
    skipped,
    notes,
    progress,
):
    """Update histograms against the exact law and the Corollary 1/2 curves."""
    if opt_name not in ADAM_CLASSES:
        why = (
            f"the exact update laws are derived for Adam's u = 1/(sqrt(v_hat)+eps); "
            f"the optimizer is {opt_name}"
        )
        skipped["update_fit"] = skipped["update_moments"] = why
        return [], None
    if "update" not in run.sample_quantities:
        why = "the run stored no per-coordinate subsample of 'update'"
        skipped["update_fit"] = skipped["update_moments"] = why
        return [], None
    if wd > 0:
        notes.append(f"{opt_name} with weight_decay={wd:g}: -update/lr includes the decay term")
    sst = run.sample_steps
    a, b = _row_range(sst, window)
    valid = np.flatnonzero(sst[a:b] >= 2) + a
    if valid.size == 0:
        skipped["update_fit"] = skipped["update_moments"] = (
            "no subsample rows at optimizer step >= 2 (the law has no density at t = 1)"
        )
        return [], None
    lr = _lr_lookup(run)
    groups = run.groups
    if fit_steps:
        rows = [int(np.argmin(np.abs(sst - s))) for s in fit_steps]
    else:
        pick = np.unique(np.geomspace(1, valid.size, num=min(4, valid.size)).round().astype(int))
        rows = [int(valid[p - 1]) for p in pick]
    fit_cols = np.unique(
        np.linspace(0, len(cols) - 1, min(fit_layers, len(cols))).round().astype(int)
    )
    fits = []
    beta = b1
    for j, r in enumerate(rows):
        t = int(sst[r])
        for k in fit_cols:
            c = int(cols[k])
            x = run.subsample("update", c, rows=slice(r, r + 1))[0]
            u = A.normalized_update(x, lr(t, int(groups[c])))
            if t >= 2 and np.isfinite(u).sum() >= 2:
                fits.append(A.update_fit(u, t, beta, layer=names[k], step=t))
        if progress:
            progress("update fits", j + 1, len(rows))
    stride = max(1, math.ceil(valid.size / max_points))
    parts = []
    srows = valid[::stride]
    # all selected layers' samples of a block are held at once: bound the block by size
    width = max(1, sum(len(run.sample_index(int(c))) for c in cols))
    rows_per_block = max(1, min(chunk, (1 << 20) // width))
    for r0 in range(0, len(srows), rows_per_block):
        block = srows[r0 : r0 + rows_per_block]
        sl = slice(int(block[0]), int(block[-1]) + 1, stride)
        st = sst[sl]
        per_layer = []
        for c in cols:
            x = run.subsample("update", int(c), rows=sl)
            lrs = np.array([lr(int(s), int(groups[c])) for s in st])
            per_layer.append(A.normalized_update(x, lrs[:, None]))
        parts.append(A.update_moments(st, per_layer, beta, names))
        if progress:
            progress("update moments", min(len(srows), r0 + rows_per_block), len(srows))
    return fits, A.concat_rows(parts)


def _examplewise(run, cols, names, window, max_points, chunk, skipped, progress):
    """Per-example statistics (``Recorder.record_examplewise``), read ``chunk`` rows at a time."""
    try:
        est = run.examplewise_steps
    except (KeyError, MissingDataError):
        est = np.zeros(0, dtype=np.int64)
    if len(est) == 0:
        skipped["examplewise"] = (
            "the run recorded no per-example statistics (record them with "
            "Recorder(..., examplewise_every=k) and rec.record_examplewise(loss_fn, *batch))"
        )
        return None
    a, b = _row_range(est, window)
    if b <= a:
        skipped["examplewise"] = f"no per-example statistics rows in the step window {window}"
        return None
    keep = A.thin_index(b - a, max_points) + a
    batch = run.examplewise_batch_size()
    parts = []
    for r0 in range(a, b, chunk):
        r1 = min(b, r0 + chunk)
        rows = slice(r0, r1)
        per_layer = {k: run.examplewise(k, rows=rows)[:, cols] for k in S.EXAMPLEWISE_STATS}
        network = {k: run.examplewise(k, "network", rows=rows) for k in S.EXAMPLEWISE_STATS}
        res = A.examplewise_profile(
            est[r0:r1],
            batch[r0:r1],
            names,
            **per_layer,
            network=network,
        )
        loc = keep[(keep >= r0) & (keep < r1)] - r0
        parts.append(A.take_rows(res, loc))
        if progress:
            progress("examplewise", r1 - a, b - a)
    return A.concat_rows(parts)


def headline(an: RunAnalysis) -> dict[str, Any]:
    """The few numbers the terminal summary and the comparison table show."""
    h: dict[str, Any] = {
        "optimizer": an.optimizer,
        "layers": len(an.layers),
        "rows": an.n_rows,
        "steps": f"{an.first_step}..{an.last_step}",
    }
    if an.stepsizes is not None and len(an.stepsizes.steps):
        p = an.stepsizes
        with np.errstate(all="ignore"):
            h["median within-layer std/mean of u (last step)"] = float(
                np.nanmedian(p.relative_std[-1])
            )
        h["compactness, decades (last step)"] = float(p.compactness[-1])
        h["layers with one stepsize"] = int(p.layerwise.sum())
    if an.ranges is not None:
        h["max log10(max u/min u)"] = (
            float(np.nanmax(an.ranges.max_spread))
            if np.any(np.isfinite(an.ranges.max_spread))
            else float("nan")
        )
    if an.randomness_grad is not None:
        f = an.randomness_grad.fraction_nonrandom
        h["non-random grad steps (mean over layers)"] = (
            float(np.nanmean(f)) if np.any(np.isfinite(f)) else float("nan")
        )
    if an.fits:
        h["median KS distance of updates"] = float(np.median([f.ks_distance for f in an.fits]))
    if an.epsilon is not None:
        h["layers where eps dominates"] = len(an.epsilon.flagged_layers)
    if an.examplewise is not None:
        e = an.examplewise
        h["median network GSNR"] = e.network_median_gsnr
        h[f"steps with batch too small (network norm test > {e.theta:g})"] = (
            e.network_fraction_too_small
        )
    h["skipped analyses"] = len(an.skipped)
    return h


def build(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    layers: Sequence[str] | None = None,
    steps: tuple[int | None, int | None] | None = None,
    formats: Sequence[str] = ("png", "svg"),
    max_points: int = 2000,
    progress: Progress | None = None,
) -> Report:
    """Analyse a run file and write the report folder (HTML, figures, CSV/JSON).

    Args:
        path: the run file.
        out: output folder (default ``<file stem>_report`` next to the file).
        layers, steps, max_points, progress: as in :func:`analyze_run`.
        formats: figure file formats besides the embedded PNG (``png``, ``svg``, ``pdf``).
    """
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise ValueError(f"unknown figure formats {bad}; use png, svg or pdf")
    path = Path(path)
    an = analyze_run(path, layers=layers, steps=steps, max_points=max_points, progress=progress)
    out_dir = Path(out) if out is not None else path.with_name(f"{path.stem}_report")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures, files = draw_and_export(an, out_dir, formats, progress=progress)
    head = headline(an)
    summary_json = out_dir / "summary.json"
    summary_json.write_text(json.dumps(export.summary_dict(an, head), indent=2, default=_json))
    files.append(summary_json)
    from gradscope.report.html import render_report

    page = out_dir / "report.html"
    page.write_text(
        render_report(
            f"gradscope report: {path.name}",
            head,
            figures,
            an.skipped,
            an.notes,
            meta=_meta_rows(an),
        ),
        encoding="utf-8",
    )
    files.append(page)
    return Report(out=out_dir, html=page, files=tuple(files), analysis=an, headline=head)


def _meta_rows(an: RunAnalysis) -> list[tuple[str, str]]:
    return [
        ("file", an.path),
        ("optimizer", an.optimizer),
        ("layers (input to output)", ", ".join(an.layers)),
    ]


def _json(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    return repr(x)


def draw_and_export(
    an: RunAnalysis, out_dir: Path, formats: Sequence[str], *, progress: Progress | None = None
):
    """Draw every figure the analysis supports; write figure files and the data behind them.

    Returns ``([(title, caption, png_bytes), ...], files)``.
    """
    from gradscope.plot import randomness as pr
    from gradscope.plot import stepsizes as ps
    from gradscope.plot import style
    from gradscope.plot import updates as pu

    jobs: list[tuple[str, str, str, Callable[[], Any], Callable[[Path], list[Path]]]] = []
    if an.stepsizes is not None:
        jobs.append(
            (
                "stepsizes",
                "Layerwise adaptive stepsizes",
                "Mean ± std of the elementwise stepsize u per layer (update = -lr u m_hat), "
                "the spread of layer means across layers, and the depth profile.",
                lambda: ps.draw_stepsize_profile(an.stepsizes),
                lambda d: export.write_series(an.stepsizes, d / "stepsizes.csv"),
            )
        )
    if an.ranges is not None:
        jobs.append(
            (
                "stepsize_range",
                "Stepsize range",
                "Per-layer max and min of u over time and log10(max/min) (SET-Adam).",
                lambda: ps.draw_stepsize_range(an.ranges),
                lambda d: export.write_series(an.ranges, d / "stepsize_range.csv"),
            )
        )
    for key in ("randomness_grad", "randomness_update"):
        res = getattr(an, key)
        if res is not None:
            jobs.append(
                (
                    key,
                    f"Cosine randomness test: {res.quantity}",
                    f"Exact p-values (n = layer size), BH-FDR across layers at "
                    f"q < {res.alpha:g}; the seed's sqrt(log n/n) rule beside it. "
                    + (res.note or ""),
                    lambda res=res: pr.draw_randomness(res),
                    lambda d, res=res, key=key: export.write_randomness(res, d, key),
                )
            )
    if an.fits:
        jobs.append(
            (
                "update_fits",
                "Update distribution vs exact law",
                "Histogram of u = -update/lr of the sampled coordinates with the exact "
                "EMA-m/uniform-v law (within 1e-4 of real Adam, spec §4).",
                lambda: pu.draw_update_fits(an.fits),
                lambda d: export.write_fits(an.fits, d / "update_fits.json"),
            )
        )
    if an.moments is not None:
        jobs.append(
            (
                "update_moments",
                "Update variance vs Corollaries 1 and 2",
                "Var(u)·t_eff (theory 1) and Var|u|·t_eff (theory Var|sqrt(t) C_t|).",
                lambda: pu.draw_update_moments(an.moments),
                lambda d: export.write_series(an.moments, d / "update_moments.csv"),
            )
        )
    if an.examplewise is not None:
        from gradscope.plot import examplewise as pe

        jobs.append(
            (
                "examplewise",
                "Per-example gradient statistics",
                "GSNR (mean over coordinates of gbar_i^2 / Var_b g_b,i) and the per-example "
                "gradient variance (trace of the covariance) per layer over time; the batch-"
                "size tests of the whole network (smallest constant that passes: norm test, "
                f"Byrd et al. 2012; inner-product and orthogonality tests, Bollapragada et al. "
                f"2018). Norm test > {an.examplewise.theta:g}: the batch is too small.",
                lambda: pe.draw_examplewise(an.examplewise),
                lambda d: export.write_series(an.examplewise, d / "examplewise.csv"),
            )
        )
    figures, files = [], []
    if an.epsilon is not None:
        files.append(export.write_epsilon(an.epsilon, out_dir / "epsilon.csv"))
    with style.theme():
        for i, (stem, title, caption, draw, dump) in enumerate(jobs):
            fig = draw()
            files += style.save(fig, out_dir / stem, formats)
            figures.append((title, caption, style.png_bytes(fig)))
            style.close(fig)
            files += dump(out_dir)
            if progress:
                progress("figures", i + 1, len(jobs))
    return figures, files
