"""The main job: controlled (same init, same data order), recorded, reporting u."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gradscope.demo import run_demo
from gradscope.runfile import RunFile


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, ["sgd-momentum", "adam", "aida", "ladam"], epochs=1)


def test_every_optimizer_runs_the_same_number_of_steps(demo):
    _, result = demo
    assert {r.steps for r in result.rows} == {23}  # ceil(1437 / 64)
    assert all(0.0 <= r.test_accuracy <= 1.0 for r in result.rows)
    assert all(math.isfinite(r.final_train_loss) for r in result.rows)


def test_stepsize_structure_matches_the_rules(demo):
    rows = {r.name: r for r in demo[1].rows}
    assert set(rows["sgd-momentum"].layer_mean) == {1.0}  # SGD's u is 1 by definition
    assert set(rows["ladam"].layer_std) == {0.0}  # one stepsize per layer
    assert len(rows["adam"].layer_std) == 6  # three Linear layers = six tensors
    # the Aida paper's finding: projections shrink the within-layer spread of u
    assert rows["aida"].median_layer_std < rows["adam"].median_layer_std


def test_every_run_is_recorded_and_in_the_report(demo):
    out, result = demo
    assert result.report.exists()
    html = result.report.read_text()
    text = json.dumps(json.loads((result.report.parent / "comparison.json").read_text()))
    for name in ("sgd-momentum", "adam", "aida", "ladam"):
        assert name in html
        assert name in text
        with RunFile(out / f"{name}.h5") as run:
            np.testing.assert_array_equal(run.steps, np.arange(1, 24))
            assert run.metadata["tags"]["optimizer"] == name
            assert np.all(np.isfinite(run.summary("grad", "norm")))


def test_one_optimizer_gets_its_own_report_and_the_schedule(tmp_path):
    result = run_demo(tmp_path, ["adam"], epochs=1, every=2)
    assert result.report == tmp_path / "report" / "report.html"
    assert result.report.exists()  # nothing to overlay: the run's own report
    with RunFile(tmp_path / "adam.h5") as run:
        np.testing.assert_array_equal(run.steps, np.arange(2, 24, 2))  # every(2)


def test_comparison_is_deterministic(tmp_path):
    a = run_demo(tmp_path / "a", ["adam"], epochs=1).rows[0]
    b = run_demo(tmp_path / "b", ["adam"], epochs=1).rows[0]
    assert a.final_train_loss == b.final_train_loss
    assert a.layer_std == b.layer_std


def test_unknown_optimizer_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown optimizer"):
        run_demo(tmp_path, ["nadam"])
