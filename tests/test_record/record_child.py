"""Training processes the recorder tests start, kill and follow (not a test module).

Usage: python record_child.py MODE PATH [RANK WORLD PORT]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gradscope.record import Recorder  # noqa: E402

#: histograms and subsamples on every row: the tests check every published row
EVERY_ROW = {"hist_every": "same", "sample_every": "same"}


def batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(16, 8, generator=g), torch.randint(0, 2, (16,), generator=g)


def step(model, opt, x, y, rec=None):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    if rec is not None:
        rec.log_loss(loss)
    opt.step()


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    if mode in ("kill", "kill-live"):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        rec = Recorder(model, opt, path, flush_every=4, live=mode == "kill-live", **EVERY_ROW)
        for t, (x, y) in enumerate(batches(), start=1):
            step(model, opt, x, y, rec)
            if t == 12:
                rec.flush()
                print("flushed 12", flush=True)
            if t > 12:
                time.sleep(0.002)
    elif mode == "live":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with Recorder(
            model, opt, path, live=True, flush_every=2, flush_seconds=0.1, **EVERY_ROW
        ) as rec:
            print("started", flush=True)
            data = batches()
            for _ in range(60):
                step(model, opt, *next(data), rec)
                time.sleep(0.03)
    elif mode == "ddp":
        rank, world, port = (int(a) for a in sys.argv[3:6])
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
        rec0 = Recorder(ddp, opt, path, **EVERY_ROW)  # rank 0 only
        stem = Path(path)
        rec_all = Recorder(ddp, opt, stem.with_name("per_rank.h5"), per_rank=True, **EVERY_ROW)
        data = batches(seed=rank)  # different data per rank: local grads differ
        for _ in range(3):
            step(ddp, opt, *next(data), rec0)
        rec0.close()
        rec_all.close()
        torch.distributed.destroy_process_group()
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
