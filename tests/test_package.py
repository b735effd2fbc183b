"""Package-level promises: lazy imports, the registry, torch's setstate back-fill."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import gradscope.optim as O


def _imports_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.slow
def test_import_gradscope_does_not_import_torch():
    assert "torch" not in _imports_after("import gradscope")


@pytest.mark.slow
def test_cli_version_does_not_import_torch_or_matplotlib():
    mods = _imports_after(
        "from typer.testing import CliRunner\nfrom gradscope.cli import app\n"
        "CliRunner().invoke(app, ['--version'])"
    )
    assert "torch" not in mods
    assert "matplotlib" not in mods


def test_registry_names_every_optimizer_once():
    assert len(O.OPTIMIZERS) == 17
    assert O.OPTIMIZERS["aida"] is O.Aida
    assert all(issubclass(c, torch.optim.Optimizer) for c in O.OPTIMIZERS.values())


def test_setstate_backfills_new_defaults():
    opt = O.Aida([torch.zeros(2, requires_grad=True)])
    state = opt.__getstate__()
    for group in state["param_groups"]:
        del group["xi"]
    fresh = O.Aida.__new__(O.Aida)
    fresh.__setstate__(state)
    assert fresh.param_groups[0]["xi"] == 1e-20
    assert fresh._tracking is False


def test_foreach_defaults_to_the_loop_on_cpu():
    assert O.Adam._use_foreach(None, [torch.zeros(1)]) is False
    assert O.Adam._use_foreach(True, [torch.zeros(1)]) is True
