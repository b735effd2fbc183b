"""Fixtures for the recorder tests."""

from __future__ import annotations

import copy

import pytest

from gradscope.optim import introspect


@pytest.fixture
def spy(monkeypatch):
    """Record float64 NumPy copies of everything ``last_step`` hands the recorder."""
    seen: list[list[dict]] = []
    real = introspect.last_step

    def spying(optimizer):
        steps = real(optimizer)
        rows = []
        for ps in steps:
            row = {"param_id": id(ps.param), "lr": ps.lr, "group": ps.group}
            for q in ("grad", "exp_avg", "exp_avg_sq", "stepsize", "update"):
                v = getattr(ps, q)
                row[q] = None if v is None else v.detach().double().cpu().numpy().copy()
            row["param"] = ps.param.detach().double().cpu().numpy().copy()
            rows.append(row)
        seen.append(copy.deepcopy(rows))
        return steps

    monkeypatch.setattr(introspect, "last_step", spying)
    return seen


@pytest.fixture(params=["segmented", "per-layer", "compiled"])
def layer_path(request, monkeypatch):
    """Run a test on each reduction path of the recorder.

    ``segmented``: small layers reduced together (the default); ``per-layer``: every layer
    by the eager per-layer reference; ``compiled``: every layer by the compiled one-pass
    kernel (what ``reduce="auto"`` picks for large models on the CPU).
    """
    from gradscope.record import reducer

    if request.param in ("per-layer", "compiled"):
        monkeypatch.setattr(reducer, "SMALL_LAYER", 0)
        monkeypatch.setattr(reducer, "SMALL_LAYER_COMPILED", 0)
    if request.param == "compiled":
        monkeypatch.setattr(reducer, "AUTO_COMPILE_MIN", 0)
    return request.param
