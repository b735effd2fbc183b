"""Recorder overhead: recorded step time / plain step time (interleaved runs, medians).

Run: ``python benchmarks/recorder_overhead.py [--steps 60] [--repeats 5] [--threads 1]``.
Modes (all record every optimizer step of torch.optim.Adam unless ``--optimizer`` names
another: ``torch-rmsprop`` goes through an exact torch adapter, ``lion`` (written below, as
a user would) through the generic path, which copies the parameters before each recorded
step to form the update):

* ``introspect-only``: the hooks and ``introspect.last_step`` (which computes stepsize and
  update for torch's Adam), no statistics: the floor under every other mode;
* ``summary``: per-layer statistics and cosines of all six quantities, no histograms,
  no subsample;
* ``summary+hist``: the same plus fixed-bin histograms and histogram quantiles (default);
* ``summary+subsample``: ``summary`` plus 4,096 fixed coordinates per layer of grad,
  update and stepsize;
* ``defaults``: ``Recorder(model, opt, path)`` as is (summary+hist+subsample);
* ``full-every-100``: ``summary`` plus full grad/update/stepsize tensors every 100 steps.

Prints one table per model and device with two ratios per mode:

* ``ratio``: median over repeats of (median recorded step time / median plain step time
  of the same repeat), plain and recorded being separate runs, interleaved;
* ``paired``: one run that records every second step (``every=2``); median time of the
  recorded steps / median time of the unrecorded steps of that same run. Same model,
  same allocator and cache state, so run-to-run noise (large on a shared CPU: the plain
  CNN step varied 21-27 ms between runs) cancels. Not given for ``full-every-100``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import gradscope.optim
from gradscope.record import Recorder, every

UNPAIRED = {"plain", "full-every-100"}
MODES = {
    "plain": None,
    "introspect-only": {"quantities": (), "hist_every": None, "sample": 0},
    "summary": {"hist_every": None, "sample": 0},
    "summary+hist": {"sample": 0},
    "summary+subsample": {"hist_every": None, "sample": 4096},
    "defaults": {},
    "full-every-100": {"hist_every": None, "sample": 0, "full_every": every(100)},
}


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
        nn.Linear(512, 10),
    )  # fmt: skip


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


MODELS = {"mlp": (mlp, 128), "cnn": (cnn, 64)}


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms"), a user's version."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["exp_avg"] = torch.zeros_like(p)
                m = st["exp_avg"]
                c = m.mul(b1).add_(p.grad, alpha=1 - b1).sign_()
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(c, alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


OPTIMIZERS = {
    "torch-adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "torch-rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
    "lion": lambda p: Lion(p, lr=1e-4),
    "gradscope-adam": lambda p: gradscope.optim.Adam(p, lr=1e-3),
    "gradscope-aida": lambda p: gradscope.optim.Aida(p, lr=1e-3),
}


def run_once(
    make, batch, mode, steps, device, tmp: Path, tag: str, optim: str, paired: bool = False
) -> float:
    """Median step time of one run; with ``paired``, recorded / unrecorded step time."""
    torch.manual_seed(0)
    model = make().to(device)
    opt = OPTIMIZERS[optim](model.parameters())
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    kw = MODES[mode]
    if paired:
        kw = {**kw, "every": 2}
    rec = None if kw is None else Recorder(model, opt, tmp / f"{tag}.h5", overwrite=True, **kw)
    times = []
    for i in range(steps + 5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if rec is not None:
            rec.log_loss(loss)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 5:  # warm-up (the first recorded step creates the file)
            times.append(time.perf_counter() - t0)
    if rec is not None:
        rec.close()
    if paired:  # times[j] is step j + 6; every=2 records the even steps
        on = [t for j, t in enumerate(times) if (j + 6) % 2 == 0]
        off = [t for j, t in enumerate(times) if (j + 6) % 2 == 1]
        return statistics.median(on) / statistics.median(off)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--optimizer", default="torch-adam", choices=sorted(OPTIMIZERS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    if "plain" not in modes:
        modes.insert(0, "plain")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for device in devices:
            for name in args.models.split(","):
                make, batch = MODELS[name]
                n_par = sum(p.numel() for p in make().parameters())
                per = {m: [] for m in modes}
                pair = {m: [] for m in modes if m not in UNPAIRED}
                for r in range(args.repeats):  # interleaved: every mode once per repeat
                    for m in modes:
                        run = functools.partial(
                            run_once, make, batch, m, args.steps, device, tmp, f"{m}{r}",
                            args.optimizer,
                        )  # fmt: skip
                        per[m].append(run())
                        if m in pair:
                            pair[m].append(run(paired=True))
                base = statistics.median(per["plain"])
                print(f"\n{name} ({n_par:,} parameters, batch {batch}) on {device.type}, "
                      f"{args.threads} thread(s), {args.optimizer}; "
                      f"plain step {base * 1e3:.2f} ms")  # fmt: skip
                print(f"{'mode':<20} {'ms/step':>8} {'ratio':>6} {'paired':>6}")
                for m in modes:
                    ratio = statistics.median(t / b for t, b in zip(per[m], per["plain"]))
                    paired = f"{statistics.median(pair[m]):6.2f}" if m in pair else f"{'-':>6}"
                    print(f"{m:<20} {statistics.median(per[m]) * 1e3:8.2f} {ratio:6.2f} {paired}")


if __name__ == "__main__":
    main()
