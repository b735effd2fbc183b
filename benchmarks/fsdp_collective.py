"""Cost of recording FSDP2 training: the one collective per recorded step, and the step.

Run: ``python benchmarks/fsdp_collective.py [--worlds 2,4] [--steps 40] [--width 512]
[--depth 8] [--threads 1] [--mode all|summary]``. For each world size the script
spawns that many gloo processes on this machine; each trains an MLP of ``depth`` square
Linear layers, sharded per layer and at the root (``fully_shard``), with torch's Adam,
recorded on every second step (``every=2``). ``all``: histograms and the
4,096-coordinate subsample on every recorded step (the largest buffer; the recorder's
default schedules thin both out over time); ``summary``: per-layer moments and cosines
only. Rank 0 prints, as medians over the
recorded steps:

* ``bytes``: the size of the reduced float64 buffer;
* ``collective``: the wall time of the recorder's ``all_reduce`` on rank 0 (from handing
  the buffer to torch.distributed until the sum is back), which includes waiting for the
  slowest rank to finish its local reductions;
* ``alone``: an ``all_reduce`` of a float64 buffer of the same size right after a
  barrier (20 repeats): the transfer and summation without the ranks' skew;
* ``recorded`` / ``plain``: step time of the recorded and of the unrecorded steps of the
  same run, and their ratio (same process, same caches: run-to-run noise cancels).

gloo on one machine moves the buffer through loopback TCP; NCCL on GPUs was not measured
here. On a busy machine with fewer cores than
processes the times mostly measure scheduling: report the load with the numbers.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gradscope.record import Recorder


def worker(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    """One rank: train, record every second step, rank 0 prints the medians."""
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(args.depth):
        layers += [nn.Linear(args.width, args.width), nn.ReLU()]
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            fully_shard(m)
    fully_shard(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kw = (
        {"hist_every": "same", "sample_every": "same"}
        if args.mode == "all"
        else {"hist_every": None, "sample": 0}
    )
    rec = Recorder(model, opt, Path(out) / "bench.h5", every=2, overwrite=True, **kw)
    x = torch.randn(32, args.width)
    coll, nbytes, on, off = [], [], [], []
    for t in range(1, args.steps + 1):
        dist.barrier()  # every rank starts the step together
        t0 = time.perf_counter()
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        dt = time.perf_counter() - t0
        if t <= 4:  # warm-up: the first recorded step creates the file
            continue
        if t % 2 == 0:
            on.append(dt)
            coll.append(rec._sharded.last_collective_s)
            nbytes.append(rec._sharded.last_bytes)
        else:
            off.append(dt)
    rec.close()
    buf = torch.zeros(int(statistics.median(nbytes)) // 8, dtype=torch.float64)
    alone = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        alone.append(time.perf_counter() - t0)
    if rank == 0:
        n_par = sum(p.numel() for p in model.parameters())
        c, a, b = (statistics.median(v) for v in (coll, on, off))
        print(
            f"{args.mode}, world {world}: {n_par:,} parameters in {2 * args.depth} layers; buffer "
            f"{statistics.median(nbytes) / 1e3:.1f} kB; collective {c * 1e3:.2f} ms "
            f"(alone {statistics.median(alone) * 1e3:.2f} ms); "
            f"recorded step {a * 1e3:.1f} ms, plain step {b * 1e3:.1f} ms, "
            f"ratio {a / b:.2f}",
            flush=True,
        )
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default="2,4")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", default="all", choices=("all", "summary"))
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} before the runs")
    for world in map(int, args.worlds.split(",")):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            mp.spawn(worker, args=(world, port, args, d), nprocs=world)


if __name__ == "__main__":
    main()
