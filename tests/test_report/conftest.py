"""Run files shared by the report, plot and CLI tests (made once per session)."""

from __future__ import annotations

import pytest

from tests.helpers import runs


@pytest.fixture(scope="session")
def adam_run(tmp_path_factory):
    """i.i.d. Gaussian gradients through torch.optim.Adam."""
    return runs.gaussian_adam_run(tmp_path_factory.mktemp("adam") / "adam.h5")


@pytest.fixture(scope="session")
def constant_run(tmp_path_factory):
    """Constant-direction gradients through SGD."""
    return runs.constant_sgd_run(tmp_path_factory.mktemp("const") / "const.h5")


@pytest.fixture(scope="session")
def layerwise_run(tmp_path_factory):
    """gradscope's LAdam: one stepsize per layer."""
    return runs.layerwise_run(tmp_path_factory.mktemp("lw") / "lw.h5")
