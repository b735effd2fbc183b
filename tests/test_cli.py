"""CLI through typer's runner: every command, every bad input, exact library calls."""

from __future__ import annotations

from unittest import mock

from typer.testing import CliRunner

from gradscope import __version__
from gradscope.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gradscope {__version__}"


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "demo" in result.output


def test_demo_calls_the_library_with_the_parsed_options(tmp_path):
    fake = mock.Mock(
        rows=(), run_files=(tmp_path / "a.h5",), report=tmp_path / "r.html", seconds={}
    )
    with mock.patch("gradscope.demo.run_demo", return_value=fake) as call:
        result = runner.invoke(
            app,
            ["demo", "--out", str(tmp_path), "-o", "adam", "-o", "aida", "--epochs", "2",
             "--seed", "3", "--every", "5"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    args, kwargs = call.call_args
    assert args == (tmp_path, ["adam", "aida"])
    assert kwargs["epochs"] == 2
    assert kwargs["seed"] == 3
    assert kwargs["every"] == 5
    assert kwargs["device"] == "cpu"
    assert kwargs["threads"] == 1  # the demo's default: one torch thread
    assert f"report: {tmp_path / 'r.html'}" in result.stdout


def test_demo_records_compares_and_prints_a_row_per_optimizer(tmp_path):
    result = runner.invoke(
        app, ["demo", "--out", str(tmp_path), "-o", "adam", "-o", "ladam", "--epochs", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "adam" in result.stdout
    assert "ladam" in result.stdout
    assert (tmp_path / "adam.h5").exists()
    assert (tmp_path / "report" / "compare.html").exists()


def test_demo_unknown_optimizer_is_one_line_exit_2():
    result = runner.invoke(app, ["demo", "-o", "nadam"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "unknown optimizer" in result.output


def test_demo_rejects_zero_epochs():
    result = runner.invoke(app, ["demo", "--epochs", "0"])
    assert result.exit_code == 2
