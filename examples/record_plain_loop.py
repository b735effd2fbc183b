"""Record a plain PyTorch training loop into a gradscope run file, then read it back.

Run: ``python examples/record_plain_loop.py [run.h5]`` (a temporary file by default).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

from gradscope.record import Recorder, any_of, every, log_spaced
from gradscope.runfile import RunFile

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(512, 20), torch.randint(0, 4, (512,))

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("path", nargs="?", type=Path, help="run file to write (replaced if it exists)")
path = ap.parse_args().path or Path(tempfile.mkdtemp()) / "run.h5"
schedule = any_of(log_spaced(10), every(25))  # dense early, then every 25 steps

with Recorder(model, optimizer, path, every=schedule, sample=256, overwrite=True) as rec:
    for _ in range(200):
        i = torch.randint(0, 512, (32,))
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        loss.backward()
        rec.log_loss(loss)  # optional; attached to the next optimizer.step()
        optimizer.step()  # the recorder's step hooks run here

with RunFile(path) as run:
    print(f"{path}: {run.n_rows} rows, steps {run.steps[:12].tolist()} ...")
    print("layers (input to output):", run.layers)
    stepsize = run.summary("stepsize", "mean")  # (rows, layers)
    print("mean adaptive stepsize at the last row:", dict(zip(run.layers, stepsize[-1].round(1))))
    print("cosine of successive recorded gradients, last row:", run.cosine("grad")[-1].round(3))
    print("loss first/last:", run.loss[0].round(3), run.loss[-1].round(3))
