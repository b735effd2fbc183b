"""gradscope analyze / compare / info / theory through typer's CliRunner: output, exact
library calls (patched), and every bad input as one stderr line with exit code 2."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from gradscope.cli import app
from tests.helpers import runs

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    good = runs.synthetic_run(d / "good.h5")
    other = runs.synthetic_run(d / "other.h5", names=("x", "y", "z"))
    (d / "text.h5").write_text("not hdf5 at all")
    trunc = d / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[:3000])
    corrupt = d / "corrupt.h5"
    data = bytearray(good.read_bytes())
    data[2000:40000] = b"\xff" * (min(len(data), 40000) - 2000)
    corrupt.write_bytes(bytes(data))
    with h5py.File(d / "schema.h5", "w") as f:
        f.attrs["format"] = "gradscope-run"
        f.attrs["format_version"] = 99
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = np.zeros(3)
    empty = runs.synthetic_run(d / "params_only.h5", quantities=("param",), samples=False)
    return {
        "dir": d,
        "good": good,
        "other": other,
        "text": d / "text.h5",
        "trunc": trunc,
        "corrupt": corrupt,
        "schema": d / "schema.h5",
        "foreign": d / "foreign.h5",
        "missing": d / "missing.h5",
        "empty": empty,
    }


BAD = {
    "missing": "no such run file",
    "text": "not an HDF5",
    "trunc": "",
    "corrupt": "",
    "schema": "schema version 99",
    "foreign": "not a gradscope run file",
}


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gradscope: error:"), result.stderr
    assert "Traceback" not in result.output
    return err[0]


@pytest.mark.parametrize("command", ["info", "analyze"])
@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_files_one_line_exit_2(files, command, bad, tmp_path):
    args = [command, str(files[bad])] + (["--out", str(tmp_path)] if command == "analyze" else [])
    line = _one_error_line(runner.invoke(app, args))
    assert BAD[bad] in line and str(files[bad].name) in line


@pytest.mark.parametrize("bad", ["missing", "text", "schema"])
def test_compare_bad_file(files, bad, tmp_path):
    args = ["compare", str(files["good"]), str(files[bad]), "--out", str(tmp_path)]
    assert BAD[bad] in _one_error_line(runner.invoke(app, args))


def test_analyze_run_lacking_everything(files, tmp_path):
    line = _one_error_line(
        runner.invoke(app, ["analyze", str(files["empty"]), "-o", str(tmp_path)])
    )
    assert "nothing to analyse" in line


def test_analyze_bad_options(files, tmp_path):
    g, o = str(files["good"]), str(tmp_path)
    assert "--steps" in _one_error_line(
        runner.invoke(app, ["analyze", g, "-o", o, "--steps", "a:b"])
    )
    assert "empty" in _one_error_line(runner.invoke(app, ["analyze", g, "-o", o, "--steps", "9:3"]))
    assert "no layer" in _one_error_line(
        runner.invoke(app, ["analyze", g, "-o", o, "--layers", "nope"])
    )
    assert "formats" in _one_error_line(runner.invoke(app, ["analyze", g, "-o", o, "-f", "gif"]))


def test_info_output(files):
    r = runner.invoke(app, ["info", str(files["good"])])
    assert r.exit_code == 0, r.output
    for s in ("schema version", "in.w", "out.w", "1..5", "torch.optim.adam.Adam"):
        assert s in r.stdout
    r = runner.invoke(app, ["info", str(files["good"]), "--json"])
    assert '"format_version": 2' in r.stdout


def test_info_calls_library_exactly(files, monkeypatch):
    import gradscope.report.info as info_mod

    seen = {}

    def fake(path, **kw):
        seen["args"], seen["kw"] = (path,), kw
        raise info_mod.MissingDataError("stop here")

    monkeypatch.setattr(info_mod, "run_info", fake)
    r = runner.invoke(app, ["info", str(files["good"])])
    assert seen == {"args": (files["good"],), "kw": {}}
    assert "stop here" in _one_error_line(r)


@pytest.mark.slow
def test_info_imports_neither_torch_nor_matplotlib(files):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom gradscope.cli import app\n"
        f"r = CliRunner().invoke(app, ['info', {str(files['good'])!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_analyze_calls_build_exactly(files, monkeypatch, tmp_path):
    import gradscope.report.build as build_mod

    seen = {}

    def fake(*args, **kw):
        seen["args"], seen["kw"] = args, kw
        raise build_mod.MissingDataError("stop")

    monkeypatch.setattr(build_mod, "build", fake)
    runner.invoke(
        app,
        [
            "analyze",
            str(files["good"]),
            "-o",
            str(tmp_path),
            "-l",
            "in.w",
            "-l",
            "out.w",
            "--steps",
            "2:4",
            "-f",
            "pdf",
            "-j",
            "3",
        ],
    )
    assert seen["args"] == (files["good"], tmp_path)
    kw = dict(seen["kw"])
    assert callable(kw.pop("progress"))
    assert kw == {"layers": ["in.w", "out.w"], "steps": (2, 4), "formats": ("pdf",), "jobs": 3}
    r = runner.invoke(app, ["analyze", str(files["good"]), "-o", str(tmp_path), "-j", "0"])
    assert r.exit_code == 2 and "Invalid value for '--jobs'" in r.output


def test_analyze_writes_report_and_summary(files, tmp_path):
    r = runner.invoke(
        app, ["analyze", str(files["good"]), "-o", str(tmp_path / "rep"), "-f", "png"]
    )
    assert r.exit_code == 0, r.output
    assert "gradscope analyze" in r.stdout and "skipped examplewise" in r.stdout
    assert (tmp_path / "rep" / "report.html").exists()
    assert (tmp_path / "rep" / "stepsizes.png").exists()


def test_theory_writes_laws(tmp_path):
    r = runner.invoke(
        app, ["theory", "-t", "2", "-t", "10", "--average", "-o", str(tmp_path), "-f", "png"]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "update_laws.png").exists()
    with (tmp_path / "update_laws.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["case", "variance", "z", "pdf"] and len({x[0] for x in rows[1:]}) == 4


def test_theory_calls_library_exactly(monkeypatch, tmp_path):
    import gradscope.report.theory_figures as tf

    seen = {}

    def fake(out, **kw):
        seen["out"], seen["kw"] = out, kw
        return []

    monkeypatch.setattr(tf, "theory_figures", fake)
    r = runner.invoke(
        app, ["theory", "-t", "5", "-b", "0.5", "-b", "0", "--scaled", "-o", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    assert seen == {
        "out": tmp_path,
        "kw": {
            "ts": (5,),
            "beta1s": (0.5, 0.0),
            "average": False,
            "scaled": True,
            "formats": ("png", "svg"),
        },
    }


def test_theory_bad_values(tmp_path):
    assert "t must be >= 2" in _one_error_line(
        runner.invoke(app, ["theory", "-t", "1", "-o", str(tmp_path)])
    )
    assert "beta1" in _one_error_line(
        runner.invoke(app, ["theory", "-b", "1.5", "-o", str(tmp_path)])
    )


def test_compare_overlays_runs(files, tmp_path):
    r = runner.invoke(
        app, ["compare", str(files["good"]), str(files["other"]), "-o", str(tmp_path), "-f", "png"]
    )
    assert r.exit_code == 0, r.output
    assert "good" in r.stdout and "other" in r.stdout and "optimizer" in r.stdout
    assert (tmp_path / "compare.html").exists() and (tmp_path / "stepsizes.png").exists()


def test_compare_needs_two(files, tmp_path):
    line = _one_error_line(runner.invoke(app, ["compare", str(files["good"]), "-o", str(tmp_path)]))
    assert "at least two" in line


def test_compare_calls_library_exactly(files, monkeypatch, tmp_path):
    import gradscope.report.compare as cmp

    seen = {}

    def fake(paths, out, **kw):
        seen["paths"], seen["out"], seen["kw"] = paths, out, kw
        raise cmp.MissingDataError("stop")

    monkeypatch.setattr(cmp, "compare_runs", fake)
    runner.invoke(
        app,
        ["compare", str(files["good"]), str(files["other"]), "-o", str(tmp_path), "--steps", "3:"],
    )
    kw = dict(seen["kw"])
    assert callable(kw.pop("progress"))
    assert seen["paths"] == [files["good"], files["other"]] and seen["out"] == tmp_path
    assert kw == {"steps": (3, None), "formats": ("png",), "jobs": None}


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    for c in ("analyze", "compare", "info", "theory", "demo"):
        assert c in r.stdout


def test_empty_run_info_ok_analyze_error(tmp_path):
    """A run whose writer has not written a row yet: info works, analyze says why not."""
    path = runs.synthetic_run(tmp_path / "empty.h5", steps=0)
    r = runner.invoke(app, ["info", str(path)])
    assert r.exit_code == 0 and "None..None" in r.stdout
    line = _one_error_line(runner.invoke(app, ["analyze", str(path), "-o", str(tmp_path / "o")]))
    assert "nothing to analyse" in line and "no complete summary rows" in line


def test_analyze_rank_files_of_one_run(tmp_path):
    """Per-rank files (or a quoted glob of them) are merged into one view, then analysed."""
    opt = {"class": "torch.optim.adam.Adam", "defaults": {"lr": 0.1, "betas": [0.9, 0.999]}}
    ranks = [
        runs.synthetic_run(
            tmp_path / f"a.rank{r:05d}.h5", metadata={"optimizer": opt, "rank": r, "world_size": 2}
        )
        for r in (0, 1)
    ]
    out = tmp_path / "rep"
    r = runner.invoke(app, ["analyze", *map(str, ranks), "--out", str(out), "-f", "png"])
    assert r.exit_code == 0, r.output
    assert (out / "report.html").exists() and (out / "a.merged.h5").exists()
    r = runner.invoke(app, ["analyze", str(tmp_path / "a.rank*.h5"), "-o", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g" / "a.merged.h5").exists()
    other = runs.synthetic_run(tmp_path / "b.h5", names=("x", "y"))
    line = _one_error_line(
        runner.invoke(app, ["analyze", str(ranks[0]), str(other), "-o", str(out)])
    )
    assert "not ranks of one run" in line
    assert "no run file matches" in _one_error_line(
        runner.invoke(app, ["analyze", str(tmp_path / "zz*.h5"), "-o", str(out)])
    )


def test_analyze_profile_prints_where_time_went(files, tmp_path):
    r = runner.invoke(app, ["analyze", str(files["good"]), "-o", str(tmp_path), "--profile"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("time: "))
    for stage in ("analysis", "draw figures", "render figures", "html and summary"):
        assert f"{stage} " in line
    # the stages add up to the total printed first
    total = float(line.split()[1])
    parts = [float(p.split()[-2]) for p in line.split("(", 1)[1].rstrip(")").split(", ")]
    assert abs(sum(parts) - total) <= 0.01 * len(parts)
