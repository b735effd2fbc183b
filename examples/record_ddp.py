"""Record a 2-process DistributedDataParallel run (gloo, CPU); rank 0 writes the file.

Run: ``python examples/record_ddp.py [--out DIR] [--steps 30]``. The script spawns its two
ranks with torch.multiprocessing; each trains a shard of digits with gradscope's Aida.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import gradscope.optim as O
from gradscope.demo import load_digits_tensors, make_digits_mlp
from gradscope.record import Recorder
from gradscope.runfile import RunFile


def worker(rank: int, world: int, port: int, path: Path, steps: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)  # fmt: skip
    x, y, _, _ = load_digits_tensors()
    x, y = x[rank::world], y[rank::world]  # this rank's shard
    model = nn.parallel.DistributedDataParallel(make_digits_mlp())
    opt = O.Aida(model.parameters(), lr=1e-3)
    with Recorder(model, opt, path, overwrite=True) as rec:  # rank 0 records by default
        gen = torch.Generator().manual_seed(rank)
        for _ in range(steps):
            i = torch.randint(0, len(x), (32,), generator=gen)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            loss.backward()  # DDP all-reduces the gradients here
            rec.log_loss(loss)
            opt.step()
    dist.destroy_process_group()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp()))
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = args.out / "ddp.h5"
    mp.spawn(worker, args=(2, port, path, args.steps), nprocs=2)
    with RunFile(path) as run:
        print(f"{path}: world size {run.metadata['world_size']}, {run.n_rows} rows, "
              f"layers {run.layers}")  # fmt: skip
        print(f"loss first/last: {run.loss[0]:.3f} / {run.loss[-1]:.3f}")
