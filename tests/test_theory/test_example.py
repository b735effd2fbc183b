"""The example script runs and writes a non-empty PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts other Python processes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "theory_pdfs.py"


def test_theory_pdfs_example(tmp_path):
    out = tmp_path / "pdfs.png"
    subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out)], check=True, timeout=60, cwd=tmp_path
    )
    assert out.exists()
    assert out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
