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


def test_timing_is_kept_apart_from_the_controlled_comparison(demo):
    import dataclasses

    from gradscope.demo import ComparisonRow

    _, result = demo
    assert "seconds" not in {f.name for f in dataclasses.fields(ComparisonRow)}
    assert list(result.seconds) == ["sgd-momentum", "adam", "aida", "ladam"]
    assert all(s > 0 for s in result.seconds.values())


def test_demo_trains_with_one_torch_thread_and_restores_the_setting(tmp_path):
    import torch

    before = torch.get_num_threads()
    seen = set()
    run_demo(tmp_path, ["adam"], epochs=1, progress=lambda *_: seen.add(torch.get_num_threads()))
    assert seen == {1}
    assert torch.get_num_threads() == before
    seen.clear()
    run_demo(tmp_path, ["adam"], epochs=1, threads=None, progress=lambda *_: seen.add(
        torch.get_num_threads()))  # fmt: skip
    assert seen == {before}
    with pytest.raises(ValueError, match="threads must be >= 1"):
        run_demo(tmp_path, ["adam"], threads=0)


def test_progress_off_a_terminal_is_one_line_per_task():
    import io

    from rich.console import Console

    from gradscope.cli._render import progress_bar

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with progress_bar(console, lines_off_terminal=True) as advance:
        for name in ("adam", "aida"):
            for done in range(1, 24):
                advance(name, done, 23)
        for done in (1, 2):  # a stage that comes again (one per run of a comparison)
            advance("figures", done, 2)
        for done in (1, 2):
            advance("figures", done, 2)
    lines = buf.getvalue().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["adam", "aida", "figures", "figures"]
    assert lines[0].startswith("adam: 23/23 done in ")
    with progress_bar(console) as advance:  # other commands: silent off a terminal
        advance("summaries", 1, 1)
    assert buf.getvalue().splitlines() == lines


def test_cli_demo_off_a_terminal_prints_progress_and_separates_timing(tmp_path):
    from typer.testing import CliRunner

    from gradscope.cli import app

    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "-o", "adam", "-o", "ladam", "--epochs", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "adam: 23/23 done in" in result.stderr
    assert "ladam: 23/23 done in" in result.stderr
    table, _, after = result.stdout.partition("wall-clock training time")
    assert "seconds" not in table  # no timing column inside the comparison
    assert "adam" in after and "ladam" in after


def test_examplewise_training_needs_an_optimizer_that_takes_the_moments():
    import gradscope.optim as O
    from gradscope.demo import make_digits_mlp, train_digits

    model = make_digits_mlp()
    with pytest.raises(ValueError, match=r"per-example moments \(Eve\), got Adam"):
        train_digits(model, O.Adam(model.parameters()), examplewise=True)
