"""The numbers behind each figure as CSV/JSON, written from the same records the plots draw."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.analysis.results import (
    EpsilonCheck,
    NonfiniteSummary,
    RandomnessResult,
    StepLength,
    TwoPointCheck,
    UpdateFit,
)

__all__ = [
    "summary_dict",
    "write_epsilon",
    "write_fits",
    "write_nonfinite",
    "write_randomness",
    "write_series",
    "write_step_length",
    "write_two_point",
]


def write_series(record: Any, path: Path) -> list[Path]:
    """Long-format CSV ``step, layer, <field>...`` of a time-series record."""
    fields = [f for f in type(record)._ROWS if f != "steps"]
    per_layer = [f for f in fields if np.ndim(getattr(record, f)) == 2]
    shared = [f for f in fields if np.ndim(getattr(record, f)) == 1]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "layer", *per_layer, *shared])
        for r, step in enumerate(record.steps):
            extra = [_cell(getattr(record, f)[r]) for f in shared]
            for i, layer in enumerate(record.layers):
                vals = [_cell(getattr(record, f)[r, i]) for f in per_layer]
                w.writerow([int(step), text_cell(layer), *vals, *extra])
    return [path]


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
#: Injection"): such text cells get a leading apostrophe, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(name: Any) -> str:
    """A text cell (a layer name) safe for spreadsheets: ``'`` before a formula start."""
    s = str(name)
    return f"'{s}" if s.startswith(_FORMULA_START) else s


def _cell(x: Any) -> str:
    """Integers (a batch size) as integers, everything else as a round-tripping float."""
    if isinstance(x, np.integer):
        return str(int(x))
    return repr(float(x))


def write_randomness(res: RandomnessResult, out: Path, stem: str) -> list[Path]:
    """Per-step CSV and per-layer JSON (fractions, thresholds, FPRs) of a randomness test."""
    a = write_series(res, out / f"{stem}.csv")
    layer = {
        "quantity": res.quantity,
        "alpha": res.alpha,
        "note": res.note,
        "layers": [
            {
                "layer": name,
                "n": int(res.sizes[i]),
                "null_applies": bool(res.null_applies[i]),
                "steps_tested": int(res.n_tested[i]),
                "fraction_nonrandom": _f(res.fraction_nonrandom[i]),
                "mean_signed_cosine": _f(res.mean_cosine[i]),
                "fraction_sqrt_log_rule": _f(res.fraction_sqrt_log_nonrandom[i]),
                "exact_critical_value": _f(res.critical_value[i]),
                "sqrt_log_threshold": _f(res.sqrt_log_threshold[i]),
                "sqrt_log_threshold_true_fpr": _f(res.sqrt_log_threshold_fpr[i]),
            }
            for i, name in enumerate(res.layers)
        ],
    }
    p = out / f"{stem}_layers.json"
    p.write_text(json.dumps(layer, indent=2))
    return [*a, p]


def write_fits(fits: tuple[UpdateFit, ...], path: Path) -> list[Path]:
    """Every histogram, pdf grid and goodness-of-fit number as JSON."""
    rows = [{k: _plain(v) for k, v in dataclasses.asdict(f).items()} for f in fits]
    for row, f in zip(rows, fits):
        if f.noncentral is not None:
            row["noncentral"] = {k: _plain(v) for k, v in dataclasses.asdict(f.noncentral).items()}
    path.write_text(json.dumps(rows, indent=1))
    return [path]


def write_epsilon(e: EpsilonCheck, path: Path) -> Path:
    """Per layer: fraction of coordinates at the eps cap (last row, max), the flag, source."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["layer", "fraction_last", "fraction_max", "threshold", "eps_dominates", "source"]
        )
        for n, a, m, f in zip(e.layers, e.fraction_last, e.fraction_max, e.flagged):
            w.writerow(
                [text_cell(n), repr(float(a)), repr(float(m)), e.threshold, bool(f), e.source]
            )
    return path


def write_nonfinite(nf: NonfiniteSummary, path: Path) -> Path:
    """Per quantity and layer: non-finite values, rows with any, first step (-1: none)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["quantity", "layer", "nonfinite_values", "rows", "first_step"])
        for qi, q in enumerate(nf.quantities):
            for li, layer in enumerate(nf.layers):
                w.writerow(
                    [
                        q,
                        text_cell(layer),
                        int(nf.total[qi, li]),
                        int(nf.rows[qi, li]),
                        int(nf.first_step[qi, li]),
                    ]
                )
        w.writerow(["loss", "", int(nf.loss_total), int(nf.loss_total), int(nf.loss_first_step)])
    return path


def write_two_point(checks: tuple[TwoPointCheck, ...], path: Path) -> Path:
    """The t = 1 two-point checks, one row per layer."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["layer", "step", "n", "n_dead", "tol", "fraction_unit", "max_deviation"])
        for c in checks:
            w.writerow(
                [
                    text_cell(c.layer),
                    c.step,
                    c.n,
                    c.n_dead,
                    c.tol,
                    repr(float(c.fraction_unit)),
                    repr(float(c.max_deviation)),
                ]
            )
    return path


def write_step_length(s: StepLength, out: Path) -> list[Path]:
    """Per-row step lengths (``step_length.csv``) and window statistics (``_windows.csv``)."""
    a = write_series(s, out / "step_length.csv")
    p = out / "step_length_windows.csv"
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["window_last_step", "layer", "mean", "std", "cv"])
        for r, step in enumerate(s.window_steps):
            for i, layer in enumerate(s.layers):
                w.writerow(
                    [
                        int(step),
                        text_cell(layer),
                        _cell(s.window_mean[r, i]),
                        _cell(s.window_std[r, i]),
                        _cell(s.window_cv[r, i]),
                    ]
                )
            w.writerow(
                [
                    int(step),
                    "(network)",
                    _cell(s.global_window_mean[r]),
                    _cell(s.global_window_std[r]),
                    _cell(s.global_window_cv[r]),
                ]
            )
    return [*a, p]


def summary_dict(an: Any, head: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers, per-layer facts, fits (no arrays), skipped analyses and notes."""
    d: dict[str, Any] = {
        "headline": head,
        "skipped": an.skipped,
        "notes": list(an.notes),
        "layers": list(an.layers),
        "sizes": an.sizes.tolist(),
    }
    if an.stepsizes is not None:
        d["layerwise"] = dict(zip(an.layers, an.stepsizes.layerwise.tolist()))
    if an.randomness_grad is not None:
        d["fraction_nonrandom_grad"] = dict(
            zip(an.layers, [_f(x) for x in an.randomness_grad.fraction_nonrandom])
        )
    if an.epsilon is not None:
        d["eps_dominates"] = list(an.epsilon.flagged_layers)
        d["eps_dominated_fraction"] = {
            "source": an.epsilon.source,
            "last": dict(zip(an.layers, [_f(x) for x in an.epsilon.fraction_last])),
            "max": dict(zip(an.layers, [_f(x) for x in an.epsilon.fraction_max])),
        }
    d["verdicts"] = dict(getattr(an, "verdicts", {}))
    dc = getattr(an, "dead_counts", None)
    if dc is not None:
        d["dead_coordinates"] = dict(zip(an.layers, [_f(x) for x in dc]))
    sl = getattr(an, "step_length", None)
    if sl is not None:
        d["step_length"] = {
            "window": sl.window,
            "network": {"mean": _f(sl.mean[-1]), "std": _f(sl.std[-1]), "cv": _f(sl.cv[-1])},
            "layers": {
                name: {"mean": _f(sl.mean[i]), "std": _f(sl.std[i]), "cv": _f(sl.cv[i])}
                for i, name in enumerate(sl.layers)
            },
        }
    nf = getattr(an, "nonfinite", None)
    if nf is not None:
        nonfinite: dict[str, dict[str, Any]] = {
            q: {
                layer: {"values": int(nf.total[qi, li]), "first_step": int(nf.first_step[qi, li])}
                for li, layer in enumerate(nf.layers)
                if nf.total[qi, li] > 0
            }
            for qi, q in enumerate(nf.quantities)
        }
        nonfinite["loss"] = {
            "rows": int(nf.loss_total),
            "first_step": int(nf.loss_first_step),
        }
        d["nonfinite"] = nonfinite
    for key in ("randomness_grad", "randomness_update"):
        res = getattr(an, key, None)
        tr = getattr(an, "trends", {}).get(key)
        if res is not None:
            d[f"{key}_mean_signed_cosine"] = dict(zip(an.layers, [_f(x) for x in res.mean_cosine]))
        if tr is not None:
            d[f"{key}_trend"] = {
                "rho_size": _f(tr.rho_size),
                "p_size": _f(tr.p_size),
                "rho_depth": _f(tr.rho_depth),
                "p_depth": _f(tr.p_depth),
            }
    d["two_point"] = [dataclasses.asdict(c) for c in getattr(an, "two_point", ())]
    ew = getattr(an, "examplewise", None)
    if ew is not None:
        d["examplewise"] = {
            "theta": ew.theta,
            "network": {
                "median_gsnr": _f(ew.network_median_gsnr),
                "fraction_norm_test_above_theta": _f(ew.network_fraction_too_small),
                "rows_tested": int(ew.network_n_tested),
            },
            "layers": {
                name: {
                    "median_gsnr": _f(ew.median_gsnr[i]),
                    "fraction_norm_test_above_theta": _f(ew.fraction_too_small[i]),
                    "rows_tested": int(ew.n_tested[i]),
                }
                for i, name in enumerate(ew.layers)
            },
        }
    d["fits"] = [
        {
            k: _plain(v)
            for k, v in dataclasses.asdict(f).items()
            if k not in ("edges", "density", "grid", "pdf", "noncentral")
        }
        | {
            "noncentral": None
            if f.noncentral is None
            else {
                k: _plain(v)
                for k, v in dataclasses.asdict(f.noncentral).items()
                if k not in ("grid", "pdf")
            }
        }
        for f in an.fits
    ]
    return d


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_f(x) for x in v.ravel()]
    if isinstance(v, (np.floating, float)):
        return _f(v)
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    return v
