"""Run file -> analyses -> figures -> CSV/JSON -> one self-contained HTML page.

:func:`analyze_run` streams the run file in row chunks (memory bounded by ``chunk`` rows
plus at most ``max_points`` kept rows per series) and returns the analysis records;
:func:`build` draws and writes them. An analysis the run lacks data for is skipped with a
reason; only a run where nothing can be analysed is an error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradscope import analysis as A
from gradscope.analysis.fit import EPS_CAP, MIN_FIT_SIZE
from gradscope.errors import MissingDataError
from gradscope.report import export
from gradscope.report import sections as SEC
from gradscope.report._parallel import fork_map
from gradscope.report.runview import (
    LayerSettings,
    RunMeta,
    beta1_key,
    eps_dominated,
    layer_steps,
)
from gradscope.runfile import schema as S
from gradscope.runfile.reader import RunFile

__all__ = [
    "Report",
    "RunAnalysis",
    "analyze_run",
    "build",
    "headline",
    "layer_table",
    "optimizer_facts",
    "verdicts",
]

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
    two_point: tuple[A.TwoPointCheck, ...] = ()
    dead_counts: np.ndarray | None = None
    step_length: A.StepLength | None = None
    nonfinite: A.NonfiniteSummary | None = None
    trends: dict[str, A.SignificanceTrend] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: records of the sections outside the shared pass (:meth:`Section.analyze`), by key
    extra: dict[str, Any] = field(default_factory=dict)
    #: the run's metadata, parsed once
    meta: RunMeta = field(default_factory=RunMeta)


@dataclass(frozen=True)
class Report:
    """What :func:`build` wrote: the folder, the HTML page, every file, the numbers."""

    out: Path
    html: Path
    files: tuple[Path, ...]
    analysis: RunAnalysis
    headline: dict[str, Any]
    profile: dict[str, float] = field(default_factory=dict)


def optimizer_facts(metadata: dict[str, Any]) -> tuple[str, float | None, float | None, float]:
    """``(class name, beta1 or momentum, beta2, weight decay)`` from run metadata."""
    m = RunMeta.parse(metadata)
    return m.optimizer, m.beta1, m.beta2, m.weight_decay


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


FitLayers = str | int | Sequence[str] | None


def analyze_run(
    path: str | os.PathLike[str],
    *,
    layers: Sequence[str] | None = None,
    steps: tuple[int | None, int | None] | None = None,
    fit_steps: Sequence[int] | None = None,
    fit_layers: FitLayers = None,
    exclude_dead: bool = True,
    alpha: float = 0.05,
    max_points: int = 2000,
    chunk: int = 4096,
    window: int = 50,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> RunAnalysis:
    """Run every analysis the file has data for, at each layer's own t and group settings.

    Args:
        path: run file (may still be written: opened through SWMR when needed).
        layers: layer names to analyse (default all), kept in input -> output order.
        steps: inclusive ``(first, last)`` optimizer-step window; ``None`` ends are open.
        fit_steps: optimizer steps t of the update fits (default: 1, 2, 3, 10, 100, ...
            where recorded); t = 1 gets the two-point check instead of a fit.
        fit_layers: ``None`` (the 4 largest layers with >= 256 coordinates), ``"all"``
            (every layer with >= 256), an int (that many of the largest) or layer names
            (exactly those, whatever their size).
        exclude_dead: leave dead coordinates (stepsize at the eps cap, or a gradient zero at
            every sampled row so far) out of the update fits and moments.
        alpha: FDR level of the randomness test.
        max_points: rows kept per time series (evenly thinned; counts use every row).
        chunk: rows read per block.
        window: rows per window of the step-length statistics.
        progress: ``progress(task, done, total)`` callback.
        jobs: worker processes for the update fits (``None``: one per usable core; 1: in
            this process). The results do not depend on it.

    Raises:
        RunFileError: the file is missing, not HDF5, corrupt or of another schema.
        MissingDataError: an unknown layer, an empty step window, or nothing to analyse.
        ValueError: unknown fit layers, fit steps < 1, a window < 2.
    """
    if window < 2:
        raise ValueError(f"the step-length window must hold at least 2 rows, got {window}")
    with RunFile(path) as run:
        return _analyze(
            run,
            layers,
            steps,
            fit_steps,
            fit_layers,
            exclude_dead,
            alpha,
            max_points,
            max(window, chunk - chunk % window),
            window,
            progress,
            jobs,
        )


def _finite_or_nan(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.nan)


def _analyze(
    run,
    layers,
    steps,
    fit_steps,
    fit_layers,
    exclude_dead,
    alpha,
    max_points,
    chunk,
    window,
    progress,
    jobs,
):
    cols = np.sort(_columns(run, layers))
    names = tuple(run.layers[i] for i in cols)
    sizes = run.sizes[cols]
    all_steps = run.steps
    a, b = _row_range(all_steps, steps)
    meta = RunMeta.parse(run.metadata)
    name, b1, wd = meta.optimizer, meta.beta1, meta.weight_decay
    hp = LayerSettings(run)
    bkey = beta1_key(hp)
    has_eps = hp.has("eps")
    skipped: dict[str, str] = {}
    notes: list[str] = []
    if b <= a and run.n_rows > 0:
        raise MissingDataError(f"{run.path}: no recorded steps in the window {steps}")
    keep = A.thin_index(b - a, max_points) + a
    parts: dict[str, list[Any]] = {k: [] for k in ("step", "range", "rg", "ru", "eps", "sl", "nf")}
    wanted = {
        "stepsizes": ("stepsize", ("mean", "std")),
        "ranges": ("stepsize", ("min", "max")),
        "step_length": ("update", ("norm",)),
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
    recorded_eps = eps_dominated(run, slice(0, 1)) if run.n_rows else None
    eps_counts_recorded = recorded_eps is not None and bool(
        np.isfinite(recorded_eps[:, cols]).any()
    )
    if b <= a:
        for key in (
            "stepsizes",
            "ranges",
            "randomness_grad",
            "randomness_update",
            "step_length",
        ):
            skipped.setdefault(key, "the run has no complete summary rows yet")
    total = max(b - a, 0)
    shift = None
    for r0 in range(a, b, chunk):
        r1 = min(b, r0 + chunk)
        rows = slice(r0, r1)
        st = all_steps[r0:r1]
        loc = keep[(keep >= r0) & (keep < r1)] - r0
        eps_rows = hp.rows("eps", rows)[:, cols] if has_eps else None
        if "stepsizes" not in skipped:
            m = run.summary("stepsize", "mean", rows=rows)[:, cols]
            s = run.summary("stepsize", "std", rows=rows)[:, cols]
            parts["step"].append(A.take_rows(A.stepsize_profile(st, m, s, names), loc))
        if "ranges" not in skipped:
            lo = run.summary("stepsize", "min", rows=rows)[:, cols][loc]
            hi = run.summary("stepsize", "max", rows=rows)[:, cols][loc]
            e = None if eps_rows is None else eps_rows[loc]
            parts["range"].append(A.stepsize_range(st[loc], lo, hi, names, eps=e))
        mom = hp.rows(bkey, rows)[:, cols] if bkey else 0.0
        for q, key in (("grad", "rg"), ("update", "ru")):
            if cos_have[q] and f"randomness_{q}" not in skipped:
                c = run.cosine(q, rows=rows)[:, cols]
                res = A.cosine_randomness(
                    st, c, sizes, names, quantity=q, alpha=alpha, momentum=mom
                )
                parts[key].append(A.take_rows(res, loc))
        counts_eps = eps_dominated(run, rows) if eps_counts_recorded else None
        if counts_eps is not None:  # None only for files without counts (schema 1)
            parts["eps"].append(counts_eps[:, cols][loc])
        if "step_length" not in skipped:
            norm = run.summary("update", "norm", rows=rows)[:, cols]
            res = A.step_length(st, norm, names, window=window, shift=shift)
            shift = res.shift
            parts["sl"].append(A.take_rows(res, loc))
        # the recorder stores the non-finite *fraction* of each layer: back to counts
        counts = {
            q: np.rint(run.summary(q, "nonfinite", rows=rows)[:, cols] * sizes)
            for q in run.quantities
        }
        parts["nf"].append(A.nonfinite_summary(st, counts, names, loss=run.loss[r0:r1]))
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
        if not out["randomness_update"].null_applies.all():
            notes.append(out["randomness_update"].note)
    if parts["sl"]:
        out["step_length"] = A.concat_rows(parts["sl"])
    if parts["nf"]:
        out["nonfinite"] = A.concat_rows(parts["nf"])
    if parts["eps"]:
        out["epsilon"] = A.epsilon_check(np.concatenate(parts["eps"]), sizes, names)
    if "exp_avg_sq" in have and b > a:
        # zeros of v over all coordinates (schema 2, histogram rows): the last recorded count
        z = run.summary("exp_avg_sq", "zeros", rows=slice(a, b))[:, cols]
        fin = np.isfinite(z)
        if fin.any():
            last = np.array(
                [z[np.flatnonzero(fin[:, i])[-1], i] if fin[:, i].any() else np.nan
                 for i in range(len(cols))]
            )  # fmt: skip
            out["dead_counts"] = last
    if meta.amsgrad:
        notes.append("AMSGrad: v_hat is a running maximum; the exact laws assume plain v_hat")
    up = _updates(
        run,
        meta,
        hp,
        bkey,
        cols,
        names,
        sizes,
        name,
        wd,
        steps,
        fit_steps,
        fit_layers,
        exclude_dead,
        max_points,
        chunk,
        skipped,
        notes,
        progress,
        jobs,
    )
    if "epsilon" not in out and up["epsilon"] is not None:
        out["epsilon"] = up["epsilon"]
    if "epsilon" not in out:
        skipped["epsilon"] = (
            "no eps-dominated counts: the run recorded neither the counts nor a stepsize "
            "subsample, or the optimizer has no eps"
        )
    examplewise = _examplewise(run, cols, names, steps, max_points, chunk, skipped, progress)
    if examplewise is not None:
        out["examplewise"] = examplewise
    fits, moments, two_point = up["fits"], up["moments"], up["two_point"]
    extra = _extra_sections(run, slice(a, b), cols, names, meta, skipped)
    if (
        all(
            k in skipped
            for k in ("stepsizes", "ranges", "randomness_grad", "randomness_update", "epsilon")
        )
        and not fits
        and moments is None
        and examplewise is None
        and not extra
    ):
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise MissingDataError(f"{run.path}: nothing to analyse ({reasons})")
    sel = all_steps[a:b]
    trends = {
        key: A.significance_trend(out[key])
        for key in ("randomness_grad", "randomness_update")
        if key in out
    }
    an = RunAnalysis(
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
        two_point=tuple(two_point),
        trends=trends,
        skipped=skipped,
        notes=tuple(notes),
        extra=extra,
        meta=meta,
        **out,
    )
    return dataclasses.replace(an, verdicts=verdicts(an))


def _extra_sections(
    run: RunFile,
    rows: slice,
    cols: np.ndarray,
    names: tuple[str, ...],
    meta: RunMeta,
    skipped: dict[str, str],
) -> dict[str, Any]:
    """Records of the registered sections with their own analysis; the others skipped."""
    out: dict[str, Any] = {}
    recorded = set(run.quantities)
    view = SEC.RunSlice(run, rows, cols, names, meta)
    for sec in SEC.sections():
        if type(sec).analyze is SEC.Section.analyze:
            continue  # a record of the shared pass
        why = sec.missing(recorded)
        if why is None and rows.stop <= rows.start:
            why = "the run has no complete summary rows yet"
        if why is not None:
            skipped[sec.key] = why
            continue
        rec = sec.analyze(view)
        if rec is None:
            skipped[sec.key] = "the section found nothing to analyse in the run"
        else:
            out[sec.key] = rec
    return out


def verdicts(an: RunAnalysis) -> dict[str, str]:
    """The verdict that ends each report section, computed from the analysis records."""
    v: dict[str, str] = {}
    for sec in SEC.sections():
        rec = sec.record(an)
        if rec is not None:
            text = sec.verdict(rec, an)
            if text:
                v[sec.key] = text
    return v


def _lr_lookup(run: RunFile, meta: RunMeta) -> Callable[[int, int], float]:
    """The learning rate at a step and group: the row at or before the step, else metadata."""
    lr_rows = run.lr
    st = run.steps

    def lr(step: int, group: int) -> float:
        i = int(np.searchsorted(st, step, side="right")) - 1
        if 0 <= i < len(st) and np.isfinite(lr_rows[i, group]):
            return float(lr_rows[i, group])
        value = meta.group_lr(group)
        if value is not None:
            return value
        raise MissingDataError(f"{run.path}: no learning rate for step {step}")

    return lr


def snr_window(t: int) -> int:
    """Sample rows around the fit step whose gradients estimate each coordinate's mean.

    ``t/2`` clipped to 10..40 (early in training the mean drifts, so short windows).
    """
    return int(np.clip(t // 2, 10, 40))


def _beta_for_fit(hp: LayerSettings, bkey: str | None, t: int, col: int):
    """The layer's beta1 for the law at step t: a constant, a schedule, or None (average)."""
    if bkey is None:
        return None
    path = hp.path(bkey, t, col)
    if not np.all(np.isfinite(path)):
        return None
    if np.all(path == path[-1]):
        return float(path[-1])
    return path


def _updates(
    run,
    meta,
    hp,
    bkey,
    cols,
    names,
    sizes,
    opt_name,
    wd,
    window,
    fit_steps,
    fit_layers,
    exclude_dead,
    max_points,
    chunk,
    skipped,
    notes,
    progress,
    jobs,
):
    """Update fits against the exact laws, t = 1 checks, moments and the subsample eps check.

    The fits' inputs are read here, in row order; the fits (pure functions, the slow part:
    each non-central law is an integral per grid point) run in up to ``jobs`` workers.
    """
    res: dict[str, Any] = {"fits": [], "moments": None, "two_point": [], "epsilon": None}
    if "update" not in run.sample_quantities:
        why = "the run stored no per-coordinate subsample of 'update'"
        skipped["update_fit"] = skipped["update_moments"] = why
        return res
    sst = run.sample_steps
    a, b = _row_range(sst, window)
    have_u = "stepsize" in run.sample_quantities
    have_g = "grad" in run.sample_quantities
    has_eps = hp.has("eps")
    groups = run.groups
    if have_u and has_eps and b > a:
        res["epsilon"] = _sample_eps(run, hp, cols, names, sst, a, b, max_points)
    if opt_name not in ADAM_CLASSES:
        why = (
            f"the exact update laws are derived for Adam's u = 1/(sqrt(v_hat)+eps); "
            f"the optimizer is {opt_name}"
        )
        skipped["update_fit"] = skipped["update_moments"] = why
        return res
    if wd > 0:
        notes.append(f"{opt_name} with weight_decay={wd:g}: -update/lr includes the decay term")
    if not (have_u or have_g):
        notes.append("no stepsize or gradient subsample: dead coordinates cannot be found")
    lr = _lr_lookup(run, meta)
    fit_cols = A.select_fit_layers(names, sizes, fit_layers)
    if fit_layers is None and len(fit_cols) < len(names):
        small = [n for n, k in zip(names, sizes) if k < MIN_FIT_SIZE]
        if small:
            notes.append(
                f"{len(small)} layers with fewer than {MIN_FIT_SIZE} coordinates are not "
                f"fitted unless named in fit_layers: {_some(small)}"
            )
    rows, missing = A.select_fit_steps(sst[a:b], fit_steps)
    rows = rows + a
    if missing:
        notes.append("fit steps not in the subsample: " + ", ".join(str(m) for m in missing))
    lsteps = layer_steps(run)
    row_of_step = {int(s): i for i, s in enumerate(run.steps)}

    def true_t(r: int, c: int) -> int:
        i = row_of_step.get(int(sst[r]))
        if i is not None and lsteps.size and lsteps[i, c] >= 1:
            return int(lsteps[i, c])
        return int(sst[r])

    # layer -> (rows read, ever non-zero, ever zero) over the gradient subsample
    seen: dict[int, tuple[int, np.ndarray | None, np.ndarray | None]] = {}

    def dead_at(r: int, c: int, t: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        u = run.subsample("stepsize", c, rows=slice(r, r + 1))[0] if have_u else None
        eps = float(hp.at_step("eps", int(sst[r]))[c]) if has_eps else None
        nz = zero = None
        if have_g:
            done, nz, zero = seen.get(c, (0, None, None))
            for r0 in range(done, r + 1, chunk):
                g = run.subsample("grad", c, rows=slice(r0, min(r + 1, r0 + chunk)))
                nz = A.ever_nonzero(g, prior=nz)
                zero = A.ever_zero(g, prior=zero)
            seen[c] = (max(done, r + 1), nz, zero)
        d = A.dead_coordinates(u, eps, nz)
        d = d if d.size else None
        sparse = None if zero is None or nz is None else zero & nz
        return d, sparse

    fit_args: list[dict[str, Any]] = []
    for j, r in enumerate(rows):
        for k in fit_cols:
            c = int(cols[k])
            t = true_t(int(r), c)
            x = run.subsample("update", c, rows=slice(int(r), int(r) + 1))[0]
            u = A.normalized_update(x, lr(int(sst[r]), int(groups[c])))
            dead, sparse = dead_at(int(r), c, t)
            if np.isfinite(u).sum() < 2:
                continue
            if t == 1:
                g1 = run.subsample("grad", c, rows=slice(int(r), int(r) + 1))[0] if have_g else None
                eps1 = float(hp.at_step("eps", int(sst[r]))[c]) if has_eps else None
                res["two_point"].append(
                    A.two_point_check(
                        u, grad=g1, eps=eps1, dead=dead, layer=names[k], step=int(sst[r])
                    )
                )
                continue
            grad = None
            if have_g:
                n_s = len(sst)
                w = min(snr_window(t), n_s)
                g0 = int(min(max(int(r) - w // 2, 0), n_s - w))
                grad = run.subsample("grad", c, rows=slice(g0, g0 + w))
            live = np.isfinite(u) & (~dead if (dead is not None and exclude_dead) else True)
            if live.sum() < 2:
                continue
            fit_args.append(
                dict(
                    x=u,
                    t=t,
                    beta1=_beta_for_fit(hp, bkey, t, c),
                    dead=dead,
                    exclude_dead=exclude_dead,
                    grad=grad,
                    sparse=sparse,
                    layer=names[k],
                    step=int(sst[r]),
                )
            )
        if progress:
            progress("update fits", j + 1, len(rows))
    res["fits"] = fork_map(lambda i: A.update_fit(**fit_args[i]), len(fit_args), jobs)
    valid = np.flatnonzero(sst[a:b] >= 2) + a
    if valid.size == 0:
        skipped["update_moments"] = (
            "no subsample rows at optimizer step >= 2 (the law has no density at t = 1)"
        )
        if not res["fits"] and not res["two_point"]:
            skipped["update_fit"] = skipped["update_moments"]
        return res
    stride = max(1, math.ceil(valid.size / max_points))
    parts = []
    srows = valid[::stride]
    # all selected layers' samples of a block are held at once: bound the block by size
    width = max(1, sum(len(run.sample_index(int(c))) for c in cols))
    rows_per_block = max(1, min(chunk, (1 << 20) // width))
    nz_prior: list[np.ndarray | None] = [None] * len(cols)
    for r0 in range(0, len(srows), rows_per_block):
        block = srows[r0 : r0 + rows_per_block]
        sl = slice(int(block[0]), int(block[-1]) + 1, stride)
        st = sst[sl]
        per_layer, dead = [], []
        beta = np.stack([hp.at_step(bkey, int(s))[cols] for s in st]) if bkey else None
        eps = np.stack([hp.at_step("eps", int(s))[cols] for s in st]) if has_eps else None
        for i, c in enumerate(cols):
            x = run.subsample("update", int(c), rows=sl)
            lrs = np.array([lr(int(s), int(groups[c])) for s in st])
            per_layer.append(A.normalized_update(x, lrs[:, None]))
            if not exclude_dead:
                dead.append(np.zeros(x.shape, dtype=bool))
            elif have_u and eps is not None:
                u = run.subsample("stepsize", int(c), rows=sl)
                dead.append(_capped(u, eps[:, i]))
            elif have_g:
                g = run.subsample("grad", int(c), rows=sl)
                nz = np.logical_or.accumulate(g != 0, axis=0)
                if nz_prior[i] is not None:
                    nz = nz | nz_prior[i]
                nz_prior[i] = nz[-1]
                dead.append(~nz)
            else:
                dead.append(np.zeros(x.shape, dtype=bool))
        parts.append(A.update_moments(st, per_layer, beta, names, dead=dead))
        if progress:
            progress("update moments", min(len(srows), r0 + rows_per_block), len(srows))
    res["moments"] = A.concat_rows(parts)
    return res


def _capped(u: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """``(T, k)`` stepsizes at the eps cap ``u >= 1/(1.01 eps)`` with eps per row."""
    e = np.asarray(eps, dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.isfinite(e) & (e > 0) & (u >= 1.0 / (EPS_CAP * e))


def _sample_eps(run, hp, cols, names, sst, a, b, max_points) -> A.EpsilonCheck:
    """Eps-dominated fractions estimated from the stepsize subsample (schema-1 files)."""
    stride = max(1, math.ceil((b - a) / min(max_points, 200)))
    sl = slice(a, b, stride)
    st = sst[sl]
    eps = np.stack([hp.at_step("eps", int(s))[cols] for s in st])
    counts = np.full((st.size, len(cols)), np.nan)
    n = np.array([len(run.sample_index(int(c))) for c in cols], dtype=float)
    for i, c in enumerate(cols):
        u = run.subsample("stepsize", int(c), rows=sl)
        counts[:, i] = np.where(np.isfinite(eps[:, i]), _capped(u, eps[:, i]).sum(axis=1), np.nan)
    return A.epsilon_check(counts, n, names, source="subsample")


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


def _median_ks(fits: Sequence[A.UpdateFit], t: int, attr: str) -> float:
    vals = [getattr(f, attr) for f in fits if f.t == t and np.isfinite(getattr(f, attr))]
    return float(np.median(vals)) if vals else float("nan")


def _nonfinite_headline(nf: A.NonfiniteSummary) -> str:
    if not nf.any:
        return "none"
    parts = []
    for qi, q in enumerate(nf.quantities):
        hit = np.flatnonzero(nf.total[qi] > 0)
        if hit.size:
            first = int(np.min(nf.first_step[qi][hit]))
            parts.append(f"{q} in {hit.size} layer{'s' if hit.size != 1 else ''} from step {first}")
    if int(nf.loss_total):
        parts.append(f"loss from step {int(nf.loss_first_step)}")
    return "; ".join(parts)


def headline(an: RunAnalysis) -> dict[str, Any]:
    """The few numbers the terminal summary and the comparison table show."""
    h: dict[str, Any] = {
        "optimizer": an.optimizer,
        "layers": len(an.layers),
        "rows": an.n_rows,
        "steps": f"{an.first_step}..{an.last_step}",
    }
    if an.nonfinite is not None:
        h["non-finite values"] = _nonfinite_headline(an.nonfinite)
    if an.stepsizes is not None and len(an.stepsizes.steps):
        p = an.stepsizes
        rel = p.relative_std[-1]
        h["median within-layer std/mean of u (last step)"] = (
            float(np.median(rel[np.isfinite(rel)])) if np.isfinite(rel).any() else float("nan")
        )
        h["compactness, decades (last step)"] = float(p.compactness[-1])
        h["layers with one stepsize"] = int(p.layerwise.sum())
    if an.ranges is not None:
        ms = an.ranges.max_spread
        fin = np.isfinite(ms)
        h["max log10(max u/min u)"] = float(np.max(ms[fin])) if fin.any() else float("nan")
        if fin.any():
            i = int(np.flatnonzero(fin)[np.argmax(ms[fin])])
            h["max spread driven by eps-dominated coordinates"] = (
                f"yes ({an.layers[i]}: max u at the eps cap)"
                if an.ranges.max_spread_eps_capped[i]
                else "no"
            )
    if an.dead_counts is not None and np.isfinite(an.dead_counts).any():
        d = np.where(np.isfinite(an.dead_counts), an.dead_counts, 0)
        h["dead coordinates (v = 0, last recorded row)"] = (
            f"{int(d.sum())} of {int(an.sizes.sum())} in {int(np.sum(d > 0))} layers"
        )
    if an.epsilon is not None:
        h[f"layers where eps decides > {an.epsilon.threshold:.0%} of u"] = len(
            an.epsilon.flagged_layers
        )
    if an.randomness_grad is not None:
        f = an.randomness_grad.fraction_nonrandom
        h["non-random grad steps (mean over layers)"] = (
            float(np.mean(f[np.isfinite(f)])) if np.any(np.isfinite(f)) else float("nan")
        )
        mc = an.randomness_grad.mean_cosine
        if np.isfinite(mc).any():
            h["mean signed grad cosine (min over layers)"] = float(np.min(mc[np.isfinite(mc)]))
    if an.two_point:
        h["t = 1 two-point check passed (layers)"] = (
            f"{sum(c.passed for c in an.two_point)}/{len(an.two_point)}"
        )
    if an.fits:
        h["median KS distance of updates"] = float(np.median([f.ks_distance for f in an.fits]))
        if any(f.t == 2 for f in an.fits):
            h["median KS at t = 2 (dead excluded)"] = _median_ks(an.fits, 2, "ks_distance")
            h["median KS at t = 2 (dead kept)"] = _median_ks(an.fits, 2, "ks_with_dead")
        h["zero-mean law rejected (fits)"] = f"{sum(f.rejected for f in an.fits)}/{len(an.fits)}"
        h["dead sampled coordinates in the fits"] = int(sum(f.n_dead for f in an.fits))
    if an.step_length is not None:
        h["global step length CV"] = float(an.step_length.cv[-1])
    if an.examplewise is not None:
        e = an.examplewise
        h["median network GSNR"] = e.network_median_gsnr
        h[f"steps with batch too small (network norm test > {e.theta:g})"] = (
            e.network_fraction_too_small
        )
    for sec in SEC.sections():
        if sec.key in an.extra:
            h.update(sec.headline(an.extra[sec.key], an))
    h["skipped analyses"] = len(an.skipped)
    return h


def build(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    layers: Sequence[str] | None = None,
    steps: tuple[int | None, int | None] | None = None,
    fit_steps: Sequence[int] | None = None,
    fit_layers: FitLayers = None,
    exclude_dead: bool = True,
    formats: Sequence[str] = ("png",),
    max_points: int = 2000,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> Report:
    """Analyse a run file and write the report folder (HTML, figures, CSV/JSON).

    Args:
        path: the run file.
        out: output folder (default ``<file stem>_report`` next to the file).
        layers: as in :func:`analyze_run`.
        steps: as in :func:`analyze_run`.
        fit_steps: as in :func:`analyze_run`.
        fit_layers: as in :func:`analyze_run`.
        exclude_dead: as in :func:`analyze_run`.
        max_points: as in :func:`analyze_run`.
        progress: as in :func:`analyze_run`.
        formats: figure file formats besides the embedded PNG (``png``, ``svg``, ``pdf``).
        jobs: worker processes for the update fits and the figure renders (``None``: one
            per usable core, at most 8; 1: everything in this process). The report does
            not depend on it.
    """
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise ValueError(f"unknown figure formats {bad}; use png, svg or pdf")
    path = Path(path)
    profile: dict[str, float] = {}
    t0 = time.perf_counter()
    an = analyze_run(
        path,
        layers=layers,
        steps=steps,
        fit_steps=fit_steps,
        fit_layers=fit_layers,
        exclude_dead=exclude_dead,
        max_points=max_points,
        progress=progress,
        jobs=jobs,
    )
    _add(profile, "analysis", t0)
    out_dir = Path(out) if out is not None else path.with_name(f"{path.stem}_report")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures, files, drawn = draw_and_export(
        an, out_dir, formats, progress=progress, profile=profile, jobs=jobs
    )
    t0 = time.perf_counter()
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
            # verdicts not beside a figure stand among the conclusions
            verdicts={k: v for k, v in an.verdicts.items() if k not in drawn},
            table=layer_table(an),
        ),
        encoding="utf-8",
    )
    files.append(page)
    _add(profile, "html and summary", t0)
    return Report(
        out=out_dir, html=page, files=tuple(files), analysis=an, headline=head, profile=profile
    )


def layer_table(an: RunAnalysis) -> list[tuple[Any, ...]]:
    """Per-layer facts of the report's table (first row: the header).

    Size, eps-dominated fraction, dead coordinates, non-finite values, non-random fraction
    and signed mean cosine of successive gradients.
    """
    head = ["layer", "n"]
    cols: list[list[Any]] = []
    if an.epsilon is not None:
        head.append("eps-dominated fraction (max)")
        cols.append([float(x) for x in an.epsilon.fraction_max])
    if an.dead_counts is not None:
        head.append("dead coordinates (v = 0)")
        cols.append([int(x) if np.isfinite(x) else float("nan") for x in an.dead_counts])
    if an.nonfinite is not None and an.nonfinite.any:
        head.append("non-finite values (first step)")
        nf = an.nonfinite
        cells = []
        for li in range(len(an.layers)):
            hit = [
                f"{q} {int(nf.total[qi, li])} ({int(nf.first_step[qi, li])})"
                for qi, q in enumerate(nf.quantities)
                if nf.total[qi, li] > 0
            ]
            cells.append(", ".join(hit) or "0")
        cols.append(cells)
    if an.randomness_grad is not None:
        head += ["non-random grad steps", "mean signed grad cosine"]
        cols.append([float(x) for x in an.randomness_grad.fraction_nonrandom])
        cols.append([float(x) for x in an.randomness_grad.mean_cosine])
    rows: list[tuple[Any, ...]] = [tuple(head)]
    for i, name in enumerate(an.layers):
        rows.append((name, int(an.sizes[i]), *(c[i] for c in cols)))
    return rows


def _meta_rows(an: RunAnalysis) -> list[tuple[str, str]]:
    if len(an.layers) <= 12:
        layers = ", ".join(an.layers)
    else:  # the names are in the figures and the per-layer table; here the module groups
        g = A.layer_groups(an.layers)
        layers = f"{len(an.layers)} in {len(g.groups)} module groups: " + ", ".join(
            f"{p} ({b - a})" for p, a, b in g.groups
        )
    return [("file", an.path), ("optimizer", an.optimizer), ("layers (input to output)", layers)]


def _some(names: Sequence[str], k: int = 6) -> str:
    """``a, b, c`` or, for long lists, the first ``k`` and how many more."""
    names = list(names)
    if len(names) <= k:
        return ", ".join(names)
    return ", ".join(names[:k]) + f" and {len(names) - k} more"


def _json(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    return repr(x)


Figures = list[tuple[str, str, bytes, str]]


def draw_and_export(
    an: RunAnalysis,
    out_dir: Path,
    formats: Sequence[str],
    *,
    progress: Progress | None = None,
    profile: dict[str, float] | None = None,
    jobs: int | None = None,
) -> tuple[Figures, list[Path], set[str]]:
    """Draw every registered section the analysis has a record for; write its files.

    Each figure is drawn once: the PNG written is the one embedded in the page. The
    figures are drawn here and rendered by up to ``jobs`` worker processes
    (:func:`render_figures`). ``profile`` (when given) receives the seconds spent drawing,
    rendering and exporting.

    Returns ``([(title, caption, png_bytes, verdict), ...], files, keys of the sections
    that drew a figure)``.
    """
    from gradscope.plot import style

    ctx = SEC.context(an)
    prof = profile if profile is not None else {}
    todo = [(sec, rec) for sec in SEC.sections() if (rec := sec.record(an)) is not None]
    files: list[Path] = []
    drawn: list[tuple[Any, Any, Any]] = []
    with style.theme():
        for i, (sec, rec) in enumerate(todo):
            t0 = time.perf_counter()
            fig = sec.draw(rec, ctx) if sec.figure else None
            _add(prof, "draw figures", t0)
            if fig is not None:
                drawn.append((sec, rec, fig))
            t0 = time.perf_counter()
            files += sec.export(rec, out_dir)
            _add(prof, "export data", t0)
            if progress:
                progress("figures", i + 1, len(todo))
        rendered = render_figures(
            [(s.file_stem, f) for s, _, f in drawn], out_dir, formats, jobs=jobs, profile=prof
        )
    figures: Figures = []
    for (sec, rec, _), (written, png) in zip(drawn, rendered):
        files += written
        figures.append((sec.title, sec.caption(rec, ctx), png, an.verdicts.get(sec.key, "")))
    return figures, files, {sec.key for sec, _, _ in drawn}


def _add(profile: dict[str, float], key: str, t0: float) -> None:
    profile[key] = profile.get(key, 0.0) + time.perf_counter() - t0


def render_figures(
    figs: Sequence[tuple[str, Any]],
    out_dir: Path,
    formats: Sequence[str],
    *,
    jobs: int | None = None,
    profile: dict[str, float] | None = None,
) -> list[tuple[list[Path], bytes]]:
    """Write ``out_dir/<stem>.<fmt>`` of each ``(stem, figure)``, then close the figures.

    Returns each figure's paths and PNG bytes, in order.

    The figures are rendered by up to ``jobs`` forked worker processes (``None``: one per
    usable core; the bytes are the same as with ``jobs=1``) and closed afterwards, also
    when rendering fails. Call it inside the theme the figures were drawn in: rendering
    reads matplotlib's settings. ``profile`` receives the seconds under
    ``"render figures"``.
    """
    from gradscope.plot import style

    t0 = time.perf_counter()
    try:
        out = fork_map(
            lambda i: style.save(figs[i][1], out_dir / figs[i][0], formats), len(figs), jobs
        )
    finally:
        for _, fig in figs:
            style.close(fig)
    if profile is not None:
        _add(profile, "render figures", t0)
    return out
