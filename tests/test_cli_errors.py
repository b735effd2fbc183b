"""The CLI's error boundary and what leaves the process: user errors are one line and exit
2, bugs show their traceback and ask to be reported; hostile names are neutralised."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from gradscope.cli import app
from gradscope.cli._errors import one_line
from gradscope.cli._render import clean
from gradscope.errors import RunFileError
from gradscope.report.export import text_cell
from tests.helpers import runs

runner = CliRunner()
HOSTILE = '\x1b]0;pwned\x07\x1b[31m=HYPERLINK("http://x")\r\nfc.weight'


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return runs.synthetic_run(tmp_path_factory.mktemp("err") / "good.h5")


def _lines(res) -> list[str]:
    return [ln for ln in res.output.splitlines() if ln.strip()]


def test_a_gradscope_error_is_one_line_and_exit_2(good, monkeypatch):
    def boom(path):
        raise RunFileError(f"{path}: damaged\x1b[2J\nsecond line")

    monkeypatch.setattr("gradscope.report.info.run_info", boom)
    res = runner.invoke(app, ["info", str(good)])
    assert res.exit_code == 2
    assert _lines(res) == [f"gradscope: error: {good}: damaged [2J second line"]


def test_a_bad_argument_value_is_one_line_and_exit_2(good, tmp_path):
    res = runner.invoke(app, ["analyze", str(good), "--steps", "x:y", "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert _lines(res) == ["gradscope: error: --steps must look like 100:2000, 100: or :2000, "
                           "got 'x:y'"]  # fmt: skip


@pytest.mark.parametrize(
    "bug",
    [
        lambda: 1 / 0,  # a plain bug in gradscope
        lambda: np.zeros(3).reshape(2, 2),  # a ValueError raised inside NumPy is a bug too
    ],
)
def test_an_unexpected_exception_shows_its_traceback_and_asks_for_a_report(good, monkeypatch, bug):
    def broken(path):
        bug()

    monkeypatch.setattr("gradscope.report.info.run_info", broken)
    res = runner.invoke(app, ["info", str(good)])
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.output
    assert "in broken" in res.output  # the frame that failed is shown
    assert _lines(res)[-1].startswith("gradscope: internal error (")
    assert "this is a bug in gradscope" in _lines(res)[-1]


def test_control_characters_never_reach_the_terminal(tmp_path):
    path = runs.synthetic_run(tmp_path / "hostile.h5", names=(HOSTILE, "out.w"))
    res = runner.invoke(app, ["info", str(path)])
    assert res.exit_code == 0
    assert not any(c in res.output for c in "\x1b\x07\r")
    assert "pwned" in res.output  # the text is kept, only the control characters go
    assert clean("a\x1bb\x9bc\td") == "a b c d"
    assert one_line("x\n\ty\x1b") == "x y"


def test_csv_text_cells_cannot_be_formulas():
    assert [text_cell(s) for s in ("=1+2", "+x", "-x", "@SUM(A1)", "\tx", "fc.w")] == [
        "'=1+2", "'+x", "'-x", "'@SUM(A1)", "'\tx", "fc.w",
    ]  # fmt: skip


@pytest.mark.slow
def test_analyze_writes_no_formula_cells_and_escapes_html(tmp_path):
    path = runs.gaussian_adam_run(tmp_path / "run.h5")
    # rename the first layer to a formula (the layer table is plain HDF5)
    import h5py

    with h5py.File(path, "r+") as f:
        names = f["layers/name"][()]
        names[0] = b'=HYPERLINK("http://x","<b>x</b>")'
        f["layers/name"][...] = names
    out = tmp_path / "rep"
    res = runner.invoke(app, ["analyze", str(path), "-o", str(out), "-f", "png"])
    assert res.exit_code == 0, res.output
    cells = [c for p in out.glob("*.csv") for row in csv.reader(p.open()) for c in row]
    assert cells and not [c for c in cells if c.startswith("=")]
    assert any(c.startswith("'=HYPERLINK(") for c in cells)
    html = (out / "report.html").read_text()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_damaged_byte_in_stored_text_is_one_line_not_an_encoding_crash(good, tmp_path):
    # h5py hands back an invalid UTF-8 byte as a lone surrogate, which neither a terminal
    # nor a JSON encoder can print: the file's metadata text is damaged, so say so
    data = bytearray(good.read_bytes())
    at = data.find(b'"optimizer"')
    assert at > 0
    data[at + 2] = 0xE3  # a UTF-8 lead byte without its continuation bytes
    bad = tmp_path / "bad_text.h5"
    bad.write_bytes(bytes(data))
    for args in (["info", "--json"], ["info"]):
        res = runner.invoke(app, [*args, str(bad)])
        assert res.exit_code == 2, res.output
        assert _lines(res) == [f"gradscope: error: {bad}: attribute 'metadata_json' of the "
                               "file is not valid text (damaged)"]  # fmt: skip


def test_info_json_is_ascii_json_whatever_a_name_holds(tmp_path):
    import json

    names = ("caf\u00e9.w\udce3", "out.w")  # a lone surrogate in a name, as a crafted file
    path = runs.synthetic_run(tmp_path / "odd.h5", names=("caf\u00e9.w", "out.w"))
    import h5py

    with h5py.File(path, "r+") as f:
        f["layers/name"][0] = names[0].encode(errors="surrogateescape")
    res = runner.invoke(app, ["info", "--json", str(path)])
    assert res.exit_code == 0, res.output
    assert res.output.isascii()
    assert json.loads(res.output)["layers"][0] == "caf\u00e9.w\ufffd"  # the bad byte replaced
