"""Conclusions in words, computed from the analysis records (every number comes from them).

Each function turns one record into the short verdict that ends a report section. The
wording is chosen by comparing numbers with stated thresholds (a p-value with 0.05, a KS
distance with its 1 % critical value), so two runs that differ get different sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradscope.analysis.fit import rejects
from gradscope.analysis.results import (
    EpsilonCheck,
    NonfiniteSummary,
    RandomnessResult,
    SignificanceTrend,
    StepLength,
    StepsizeProfile,
    StepsizeRange,
    TwoPointCheck,
    UpdateFit,
)

__all__ = [
    "PairTable",
    "compare_step_length_verdicts",
    "compare_stepsize_verdicts",
    "epsilon_verdict",
    "fit_verdict",
    "nonfinite_verdict",
    "pair_table",
    "randomness_verdict",
    "range_verdict",
    "step_length_verdict",
    "stepsize_verdict",
]


def _g(x: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}g}"


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f}%"


def _steps_text(ts: Sequence[int], all_ts: Sequence[int]) -> str:
    """``t = 3..20`` when the steps are a run of consecutive fitted steps, else a list."""
    ts = sorted(set(int(t) for t in ts))
    order = sorted(set(int(t) for t in all_ts))
    if len(ts) == 1:
        return f"t = {ts[0]}"
    i, j = order.index(ts[0]), order.index(ts[-1])
    if order[i : j + 1] == ts:
        return f"t = {ts[0]}..{ts[-1]}"
    return "t = " + ", ".join(str(t) for t in ts)


def _trend_text(rho: float, p: float, what: str) -> str:
    if not np.isfinite(rho):
        return f"its relation to {what} cannot be tested"
    if p < 0.05:
        direction = "rises" if rho > 0 else "falls"
        return f"it {direction} with {what} (Spearman rho = {rho:.2f}, p = {_g(p)})"
    return f"it does not follow {what} (rho = {rho:.2f}, p = {_g(p)})"


def randomness_verdict(res: RandomnessResult, trend: SignificanceTrend) -> str:
    """Where successive vectors are non-random, whether that follows size or depth, signs."""
    q = res.quantity
    applies = np.asarray(res.null_applies, dtype=bool)
    f = res.fraction_nonrandom
    ok = applies & np.isfinite(f)
    parts = []
    if not ok.any():
        parts.append(
            f"Successive {q}s: the isotropic null does not apply to any layer, nothing tested."
        )
    else:
        fo = f[ok]
        names = [n for n, k in zip(res.layers, ok) if k]
        lo, hi = int(np.argmin(fo)), int(np.argmax(fo))
        flagged = int(np.sum(fo > 2 * res.alpha))
        span = (
            "in every layer"
            if fo[lo] == fo[hi]
            else f"from {_pct(fo[lo])} in {names[lo]} to {_pct(fo[hi])} in {names[hi]}"
        )
        parts.append(
            f"Successive {q}s are non-random (BH q < {res.alpha:g}) in a median "
            f"{_pct(float(np.median(fo)))} of tested steps over {ok.sum()} layers ({span}); "
            f"{flagged} layer{'s' if flagged != 1 else ''} above twice the "
            f"{res.alpha:g} false-discovery level."
        )
        if trend.n_layers >= 3:
            parts.append(
                "Across layers, "
                + _trend_text(trend.rho_size, trend.p_size, "layer size n")
                + "; "
                + _trend_text(trend.rho_depth, trend.p_depth, "depth")
                + "."
            )
        else:
            parts.append("Fewer than 3 tested layers: no trend with size or depth is tested.")
    mc = res.mean_cosine
    fin = np.isfinite(mc)
    if fin.any():
        neg = [n for n, c, k in zip(res.layers, mc, fin) if k and c < 0]
        i = int(np.nanargmin(np.where(fin, mc, np.nan)))
        j = int(np.nanargmax(np.where(fin, mc, np.nan)))
        s = (
            f"Mean signed cosine: negative (anti-correlated successive {q}s) in {len(neg)} of "
            f"{fin.sum()} layers"
        )
        if neg:
            s += f", most in {res.layers[i]} ({mc[i]:+.3f})"
        s += f"; largest {mc[j]:+.3f} in {res.layers[j]}."
        parts.append(s)
    if not applies.all() and ok.any():
        off = [n for n, a in zip(res.layers, applies) if not a]
        parts.append(f"Not tested (momentum, the null does not apply): {', '.join(off)}.")
    return " ".join(parts)


def stepsize_verdict(p: StepsizeProfile) -> str:
    """How much the stepsize varies within layers and across layers at the last row."""
    if not len(p.steps):
        return "No stepsize rows."
    rel = p.relative_std[-1]
    fin = np.isfinite(rel)
    n_one = int(np.sum(p.layerwise))
    if not fin.any():
        return "The within-layer spread of u is undefined at the last row (no finite values)."
    i, j = (
        int(np.nanargmin(np.where(fin, rel, np.nan))),
        int(np.nanargmax(np.where(fin, rel, np.nan))),
    )
    s = (
        f"At step {int(p.steps[-1])} the within-layer spread std/mean of u has median "
        f"{_g(float(np.median(rel[fin])))} over {fin.sum()} layers (least {_g(rel[i])} in "
        f"{p.layers[i]}, most {_g(rel[j])} in {p.layers[j]})"
    )
    s += f"; {n_one} layer{'s' if n_one != 1 else ''} use one stepsize"
    c = float(p.compactness[-1])
    s += f"; layer means span {_g(c)} decades (std of log10 mean u)."
    return s


def _common(a: Sequence[str], b: Sequence[str]) -> list[str]:
    return [n for n in a if n in b]


def _pair_lower(
    va: np.ndarray, vb: np.ndarray, la: str, lb: str, what: str, layers: Sequence[str]
) -> str:
    ok = np.isfinite(va) & np.isfinite(vb)
    if not ok.any():
        return f"{la} vs {lb}: no layer with a finite {what} in both runs."
    a_low = int(np.sum(va[ok] < vb[ok]))
    b_low = int(np.sum(vb[ok] < va[ok]))
    pos = ok & (va > 0) & (vb > 0)
    ratio = (
        f"median ratio {la}/{lb} = {_g(float(np.median(va[pos] / vb[pos])), 3)} over "
        f"{pos.sum()} layers where both are > 0"
        if pos.any()
        else f"{what} is 0 in {int(np.sum(ok & (va == 0)))} layers of {la} and "
        f"{int(np.sum(ok & (vb == 0)))} of {lb}"
    )
    if a_low == b_low:
        return (
            f"{la} vs {lb}: neither has the lower {what} in more layers "
            f"({a_low} each of {ok.sum()}; {ratio})."
        )
    winner, k = (la, a_low) if a_low > b_low else (lb, b_low)
    return (
        f"{la} vs {lb}: {winner} has the lower {what} in {k} of {ok.sum()} common layers ({ratio})."
    )


def compare_stepsize_verdicts(
    profiles: Sequence[StepsizeProfile], labels: Sequence[str]
) -> tuple[str, ...]:
    """For every pair of runs: which has the lower within-layer spread (last row).

    Counted in how many of the layers both runs have (matched by name).
    """
    out = []
    for a in range(len(profiles)):
        for b in range(a + 1, len(profiles)):
            pa, pb = profiles[a], profiles[b]
            names = _common(pa.layers, pb.layers)
            if not names or not len(pa.steps) or not len(pb.steps):
                out.append(f"{labels[a]} vs {labels[b]}: no common layers with stepsizes.")
                continue
            va = np.array([pa.relative_std[-1][pa.layers.index(n)] for n in names])
            vb = np.array([pb.relative_std[-1][pb.layers.index(n)] for n in names])
            out.append(
                _pair_lower(
                    va, vb, labels[a], labels[b], "within-layer spread std/mean of u", names
                )
            )
    return tuple(out)


def fit_verdict(fits: Sequence[UpdateFit], two_point: Sequence[TwoPointCheck] = ()) -> str:
    """Whether the zero-mean law holds, where it fails, and whether a gradient mean explains it."""
    parts = []
    if two_point:
        ok = [c for c in two_point if c.passed]
        worst = max((c.max_deviation for c in two_point if c.n), default=float("nan"))
        parts.append(
            f"At t = 1 the update is two-point (|u| = 1 up to eps) in {len(ok)} of "
            f"{len(two_point)} layers (largest | |u| - 1 | = {_g(worst)})."
        )
    if not fits:
        return " ".join(parts) or "No update fits."
    layers = sorted({f.layer for f in fits}, key=[f.layer for f in fits].index)
    all_t = [f.t for f in fits]
    bad = [f for f in fits if f.rejected]
    dead = sum(f.n_dead for f in fits)
    if not bad:
        ks = float(np.median([f.ks_distance for f in fits]))
        parts.append(
            f"The zero-mean law fits at every fitted step ({_steps_text(all_t, all_t)}) in all "
            f"{len(layers)} fitted layers (median KS {_g(ks)})."
        )
    else:
        bad_layers = sorted({f.layer for f in bad}, key=layers.index)
        vr = [f.var_ratio for f in bad if np.isfinite(f.var_ratio)]
        s = (
            f"The zero-mean law is rejected at {_steps_text([f.t for f in bad], all_t)} in "
            f"{len(bad_layers)} of {len(layers)} fitted layers (median KS "
            f"{_g(float(np.median([f.ks_distance for f in bad])))}"
        )
        if vr:
            s += f", variance {_g(min(vr))}-{_g(max(vr))}x theory"
        s += ")"
        nc = [f for f in bad if f.noncentral is not None]
        if nc:
            ks0 = float(np.median([f.ks_distance for f in nc]))
            ks1 = float(np.median([f.noncentral.ks_distance for f in nc]))  # type: ignore[union-attr]
            snr = float(np.median([f.noncentral.median_abs_snr for f in nc]))  # type: ignore[union-attr]
            full = sum(not rejects(f.noncentral.ks_distance, f.noncentral.n) for f in nc)  # type: ignore[union-attr]
            part = sum(f.noncentral.ks_distance <= 0.5 * f.ks_distance for f in nc) - full  # type: ignore[union-attr]
            s += (
                f"; a per-coordinate gradient mean (median |SNR| {_g(snr)}) explains it in "
                f"{full} of {len(nc)} rejected fits"
            )
            if part > 0:
                s += f" and halves the misfit in {part} more"
            s += f" (median KS {_g(ks1)} for the non-central law against {_g(ks0)})"
        else:
            s += "; no gradient subsample to test a per-coordinate mean"
        parts.append(s + ".")
        sp = [f for f in bad if f.n_sparse > 0 and np.isfinite(f.ks_without_sparse)]
        if sp:
            frac = float(np.median([f.n_sparse / max(f.n, 1) for f in sp]))
            ks_ns = float(np.median([f.ks_without_sparse for f in sp]))
            ks_all = float(np.median([f.ks_distance for f in sp]))
            parts.append(
                f"In {len(sp)} of the rejected fits a median {_pct(frac)} of the live "
                f"coordinates had an exactly zero gradient at an earlier step (gated, sparse "
                f"gradients, which the laws do not model: point masses at +-k); without them "
                f"the median KS is {_g(ks_ns)} against {_g(ks_all)}."
            )
    if dead:
        total = sum(f.n + (f.n_dead if f.dead_excluded else 0) for f in fits)
        how = "left out of" if fits[0].dead_excluded else "kept in"
        per_fit = [f.n_dead / max(f.n + (f.n_dead if f.dead_excluded else 0), 1) for f in fits]
        parts.append(
            f"Dead sampled coordinates (at the eps cap, or a gradient zero at every sampled "
            f"row so far) were {how} the fits: a median {_pct(float(np.median(per_fit)))} of "
            f"the sampled coordinates per fit, {dead} in all {len(fits)} fits (total "
            f"{_pct(dead / max(total, 1))})."
        )
    return " ".join(parts)


def epsilon_verdict(e: EpsilonCheck) -> str:
    """How many layers have coordinates whose stepsize eps decides."""
    fin = np.isfinite(e.fraction_max)
    if not fin.any():
        return "The eps-dominated fraction is unknown (no eps or no stepsizes recorded)."
    flagged = e.flagged_layers
    src = "" if e.source == "recorded" else " (estimated from the sampled coordinates)"
    if not flagged:
        return (
            f"eps decides the stepsize of at most {_pct(float(np.max(e.fraction_max[fin])))} of "
            f"the coordinates of any layer{src}."
        )
    top = int(np.nanargmax(np.where(fin, e.fraction_max, np.nan)))
    return (
        f"eps decides the stepsize (u >= 1/(1.01 eps)) of more than {_pct(e.threshold)} of the "
        f"coordinates in {len(flagged)} of {fin.sum()} layers{src}, up to "
        f"{_pct(e.fraction_max[top])} in {e.layers[top]}."
    )


def range_verdict(r: StepsizeRange) -> str:
    """The largest spread and whether eps-dominated coordinates drive it."""
    ms = r.max_spread
    fin = np.isfinite(ms)
    if not fin.any():
        return "The stepsize spread is undefined (no positive min)."
    i = int(np.nanargmax(np.where(fin, ms, np.nan)))
    capped = r.max_spread_eps_capped
    s = (
        f"The largest within-layer spread is {ms[i]:.2f} decades (log10 max u/min u) in "
        f"{r.layers[i]}"
    )
    if capped[i]:
        s += ", driven by eps-dominated coordinates (the max is at the eps cap 1/eps)"
    n_cap = int(np.sum(capped & fin))
    if n_cap:
        s += f"; in {n_cap} of {fin.sum()} layers the largest spread has its max at the eps cap"
    return s + "."


def step_length_verdict(s: StepLength) -> str:
    """How steady the global step length is over the run and within windows."""
    m, sd, cv = s.mean[-1], s.std[-1], s.cv[-1]
    wcv = s.global_window_cv[np.isfinite(s.global_window_cv)]
    out = (
        f"Global step length ||x_t - x_(t-1)||: mean {_g(m, 3)}, std {_g(sd, 3)}, coefficient "
        f"of variation {_g(cv)} over the run"
    )
    if wcv.size:
        out += f"; within windows of {s.window} rows the CV has median {_g(float(np.median(wcv)))}"
    lcv = s.cv[:-1]
    fin = np.isfinite(lcv)
    if fin.any():
        i = int(np.nanargmax(np.where(fin, lcv, np.nan)))
        out += f"; the least steady layer is {s.layers[i]} (CV {_g(lcv[i])})"
    return out + "."


def compare_step_length_verdicts(
    lengths: Sequence[StepLength], labels: Sequence[str]
) -> tuple[str, ...]:
    """For every pair of runs: which has the steadier (lower CV) step length.

    Per common layer and globally.
    """
    out = []
    for a in range(len(lengths)):
        for b in range(a + 1, len(lengths)):
            sa, sb = lengths[a], lengths[b]
            names = _common(sa.layers, sb.layers)
            va = np.array([sa.cv[sa.layers.index(n)] for n in names])
            vb = np.array([sb.cv[sb.layers.index(n)] for n in names])
            s = _pair_lower(va, vb, labels[a], labels[b], "step-length CV", names)
            s += f" Global CV: {_g(sa.cv[-1])} vs {_g(sb.cv[-1])}."
            out.append(s)
    return tuple(out)


def nonfinite_verdict(nf: NonfiniteSummary) -> str:
    """Which quantities had NaN/inf values, in which layers, from which step."""
    if not nf.any:
        return "No non-finite values were recorded."
    parts = []
    for qi, q in enumerate(nf.quantities):
        hit = np.flatnonzero(nf.total[qi] > 0)
        if hit.size:
            first = int(np.min(nf.first_step[qi][hit]))
            items = ", ".join(
                f"{nf.layers[i]} {int(nf.total[qi, i])} from step {int(nf.first_step[qi, i])}"
                for i in hit
            )
            parts.append(
                f"{q}: {hit.size} layer{'s' if hit.size != 1 else ''} from step {first} ({items})"
            )
    if int(nf.loss_total):
        parts.append(f"loss: {int(nf.loss_total)} rows from step {int(nf.loss_first_step)}")
    return (
        "Non-finite values (NaN/inf, counted by the recorder): "
        + "; ".join(parts)
        + ". Figures draw the finite values only."
    )


@dataclass(frozen=True)
class PairTable:
    """Runs against runs, counted over the layers both runs have.

    ``lower[i, j]`` is in how many layers that both runs have (matched by name, finite in
    both) run ``i`` has the lower ``what`` than run ``j``, of ``common[i, j]`` such layers.
    """

    labels: tuple[str, ...]
    what: str
    lower: np.ndarray
    common: np.ndarray

    def rows(self) -> list[tuple[str, ...]]:
        """A table (first row: header) whose cell (i, j) reads ``"k/n"``."""
        out: list[tuple[str, ...]] = [(f"{self.what}: row lower than column", *self.labels)]
        for i, lab in enumerate(self.labels):
            cells = [
                "" if i == j else f"{int(self.lower[i, j])}/{int(self.common[i, j])}"
                for j in range(len(self.labels))
            ]
            out.append((lab, *cells))
        return out


def pair_table(
    layers: Sequence[Sequence[str]],
    values: Sequence[np.ndarray],
    labels: Sequence[str],
    what: str,
) -> PairTable:
    """Count, for every ordered pair of runs, the common layers where the first is lower.

    Args:
        layers: each run's layer names.
        values: each run's per-layer value (aligned with its names), lower = better.
        labels: run labels.
        what: what the values are (the table's title).
    """
    n = len(labels)
    lower = np.zeros((n, n), dtype=np.int64)
    common = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            names = _common(layers[i], layers[j])
            vi = np.array([values[i][list(layers[i]).index(x)] for x in names], dtype=float)
            vj = np.array([values[j][list(layers[j]).index(x)] for x in names], dtype=float)
            ok = np.isfinite(vi) & np.isfinite(vj)
            lower[i, j] = int(np.sum(vi[ok] < vj[ok]))
            common[i, j] = int(ok.sum())
    return PairTable(tuple(labels), what, lower, common)
