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


@pytest.fixture(params=["segmented", "per-layer"])
def layer_path(request, monkeypatch):
    """Run a test with small layers reduced together (the default) and one layer at a time."""
    if request.param == "per-layer":
        from gradscope.record import recorder

        monkeypatch.setattr(recorder, "_SMALL_LAYER", 0)
    return request.param
