"""Record a 2-process FSDP2 run (``fully_shard``, gloo, CPU); rank 0 writes one file.

Run: ``python examples/record_fsdp2.py [--out DIR] [--steps 30]``. The script spawns its
two ranks with torch.multiprocessing. Every parameter is sharded (each Linear layer and
the root), so each rank holds half of every weight, gradient and Adam moment; the recorder
reduces each rank's half and combines them in one collective per recorded step, and rank
0's file holds the statistics of the full layers (docs/run-format.md, "FSDP2").
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

from gradscope.demo import load_digits_tensors, make_digits_mlp
from gradscope.record import Recorder
from gradscope.runfile import RunFile


def worker(rank: int, world: int, port: int, path: Path, steps: int) -> None:
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)  # fmt: skip
    torch.set_num_threads(1)
    x, y, _, _ = load_digits_tensors()
    x, y = x[rank::world], y[rank::world]  # this rank's part of the data
    model = make_digits_mlp()  # the same seeded weights on both ranks
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with Recorder(model, opt, path, overwrite=True) as rec:  # every rank takes part
        gen = torch.Generator().manual_seed(rank)
        for _ in range(steps):
            i = torch.randint(0, len(x), (32,), generator=gen)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            loss.backward()  # FSDP2 reduce-scatters the averaged gradient here
            rec.log_loss(loss)
            opt.step()  # the recorder's step hook: local reductions, one all-reduce
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
    path = args.out / "fsdp2.h5"
    mp.spawn(worker, args=(2, port, path, args.steps), nprocs=2)
    with RunFile(path) as run:
        print(f"{path}: world size {run.metadata['world_size']}, {run.n_rows} rows, "
              f"layers {run.layers}")  # fmt: skip
        print(f"full shapes: {run.shapes}")
        print(f"placements: {run.metadata['sharding']['placements']}")
        print(f"loss (mean over the ranks) first/last: {run.loss[0]:.3f} / {run.loss[-1]:.3f}")
        norm = run.summary("grad", "norm", "0.weight")
        print(f"first layer's gradient norm first/last: {norm[0]:.4f} / {norm[-1]:.4f}")
