"""The recorder's example script runs and writes a readable run file (docs/design.md, rule 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradscope.runfile import RunFile

pytestmark = pytest.mark.slow  # starts other Python processes

ROOT = Path(__file__).resolve().parents[2]


def test_record_plain_loop_example(tmp_path):
    path = tmp_path / "run.h5"
    script = ROOT / "examples" / "record_plain_loop.py"
    out = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # a shared 2-core box: no oversubscription
    )
    assert out.returncode == 0, out.stderr
    assert "rows" in out.stdout
    with RunFile(path) as run:
        assert run.steps[:10].tolist() == list(range(1, 11))
        assert run.steps[-1] == 200
        assert np.isfinite(run.summary("stepsize", "mean")).all()
