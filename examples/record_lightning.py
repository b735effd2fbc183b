"""Record a PyTorch Lightning fit with gradscope's callback (needs ``lightning``).

Run: ``python examples/record_lightning.py [--out DIR] [--epochs 2]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

import gradscope.optim as O
from gradscope.demo import load_digits_tensors, make_digits_mlp
from gradscope.record.lightning import GradscopeCallback
from gradscope.runfile import RunFile


class Digits(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_digits_mlp()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return O.AdaBelief(self.parameters(), lr=1e-3)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp()))
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    x, y, _, _ = load_digits_tensors()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64,
                                         shuffle=True)  # fmt: skip
    path = args.out / "lightning.h5"
    trainer = pl.Trainer(
        max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[GradscopeCallback(path, every=2, overwrite=True)],
    )  # fmt: skip
    trainer.fit(Digits(), loader)
    with RunFile(path) as run:
        print(f"{path}: {run.n_rows} rows, steps {run.steps[0]}..{run.steps[-1]}, "
              f"loss {run.loss[0]:.3f} -> {run.loss[-1]:.3f}")  # fmt: skip
