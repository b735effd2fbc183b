"""The Lightning callback records a real Trainer.fit, loss included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from gradscope.record.lightning import GradscopeCallback  # noqa: E402
from gradscope.runfile import RunFile  # noqa: E402


class Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
        self.losses = []

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        import gradscope.optim as O

        return O.Aida(self.parameters(), lr=1e-2)


def test_callback_records_every_step_with_its_loss(tmp_path):
    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(64, 6, generator=gen), torch.randint(0, 2, (64,), generator=gen)
    )
    module = Module()
    trainer = pl.Trainer(
        max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
        callbacks=[GradscopeCallback(tmp_path / "run.h5", sample=0)],
    )  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=16))
    with RunFile(tmp_path / "run.h5") as run:
        assert run.n_rows == 6
        np.testing.assert_array_equal(run.steps, np.arange(1, 7))
        np.testing.assert_allclose(run.loss, module.losses, rtol=1e-6)
        assert run.layers == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
        assert np.all(run.summary("stepsize", "mean") > 0)


class TwoOptimizers(Module):
    """Manual optimization with Muon on the matrices and AdamW on the biases."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.losses.append(float(loss.detach()))
        muon, adamw = self.optimizers()
        self.manual_backward(loss)
        self.trainer.callbacks[0].recorder.log_loss(loss)
        muon.step()
        adamw.step()
        muon.zero_grad()
        adamw.zero_grad()

    def configure_optimizers(self):
        mats = [p for p in self.parameters() if p.dim() == 2]
        rest = [p for p in self.parameters() if p.dim() != 2]
        return [torch.optim.Muon(mats, lr=0.02), torch.optim.AdamW(rest, lr=1e-2)]


def test_callback_records_every_optimizer_the_module_configures(tmp_path):
    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(64, 6, generator=gen), torch.randint(0, 2, (64,), generator=gen)
    )
    module = TwoOptimizers()
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
        callbacks=[GradscopeCallback(tmp_path / "run.h5", sample=0)],
    )  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=16))
    with RunFile(tmp_path / "run.h5") as run:
        assert run.n_rows == 4  # one row per training step, not per optimizer step
        np.testing.assert_array_equal(run.steps, np.arange(1, 5))
        np.testing.assert_allclose(run.loss, module.losses, rtol=1e-6)
        is_matrix = np.array([n.endswith("weight") for n in run.layers])
        np.testing.assert_array_equal(run.layer_optimizers, np.where(is_matrix, 0, 1))
        u = run.summary("stepsize", "mean")
        assert np.isnan(u[:, is_matrix]).all() and np.all(u[:, ~is_matrix] > 0)
