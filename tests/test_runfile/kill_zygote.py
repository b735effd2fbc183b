"""Zygote for the SIGKILL test: import torch and gradscope once, then fork one training
run per request, so each of many kills costs a fork instead of a Python start-up.

Reads lines ``<run file> <seed> <overwrite 0|1>`` on stdin; for each forks a child that
trains a small MLP with Adam under a Recorder (``flush_every=8``, subsamples, full dumps
every 25 steps) for 80 steps, appending each finished step number to ``<run file>.progress``
(unbuffered, so the parent knows which steps training had passed when it killed the child),
and prints ``pid <pid>`` for it. Children are reaped automatically.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch import nn

import gradscope  # noqa: F401 - imported before forking
from gradscope.record import Recorder

FLUSH_EVERY = 8
STEPS = 80


def _train(path: str, seed: int, overwrite: bool) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(64, 20), torch.randn(64, 4)
    fd = os.open(path + ".progress", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, b"0\n")  # the child exists; no step finished yet
    with Recorder(
        model, opt, path, flush_every=FLUSH_EVERY, hist_every="same", sample_every="same",
        full_every=25, full_quantities=("grad",),
        overwrite=overwrite, strict=True, tags={"trial": seed},
    ) as rec:  # fmt: skip
        for t in range(1, STEPS + 1):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            rec.log_loss(loss)
            opt.step()
            os.write(fd, f"{t}\n".encode())


def main() -> None:
    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # reap children automatically
    for line in sys.stdin:
        path, seed, overwrite = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _train(path, int(seed), overwrite == "1")
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)


if __name__ == "__main__":
    main()
