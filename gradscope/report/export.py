"""The numbers behind each figure as CSV/JSON, written from the same records (Rule 8)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.analysis.results import EpsilonCheck, RandomnessResult, UpdateFit

__all__ = ["summary_dict", "write_epsilon", "write_fits", "write_randomness", "write_series"]


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
        "null_applies": res.null_applies,
        "note": res.note,
        "layers": [
            {
                "layer": name,
                "n": int(res.sizes[i]),
                "steps_tested": int(res.n_tested[i]),
                "fraction_nonrandom": _f(res.fraction_nonrandom[i]),
                "fraction_seed_rule": _f(res.fraction_seed_nonrandom[i]),
                "exact_critical_value": _f(res.critical_value[i]),
                "seed_threshold": _f(res.seed_threshold[i]),
                "seed_threshold_true_fpr": _f(res.seed_fpr[i]),
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
    path.write_text(json.dumps(rows, indent=1))
    return [path]


def write_epsilon(e: EpsilonCheck, path: Path) -> Path:
    """Median gradient RMS per layer and the eps flag."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["layer", "median_grad_rms", "threshold", "eps_dominates"])
        for n, r, f in zip(e.layers, e.median_rms, e.flagged):
            w.writerow([text_cell(n), repr(float(r)), e.threshold, bool(f)])
    return path


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
            if k not in ("edges", "density", "grid", "pdf")
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
