"""Recorder cost on real networks: added ms per recorded step against the optimizer step.

Run: ``python benchmarks/recorder_overhead.py [--models mlp,cnn,resnet18,gpt2]
[--optimizers gradscope-adam,torch-adamw,torch-sgd] [--steps 30] [--repeats 3]
[--threads 1] [--size-steps 1000] [--reduce eager,compiled] [--clock wall|cpu] [--floor]``.

``--clock cpu`` times with ``time.process_time`` (this process's CPU time) instead of the
wall clock: on a shared machine it leaves out the time other processes take the core, so
the ratios move less with the load (the caches are still shared).

For every model and optimizer it prints

* ``plain``: the median training step (zero_grad, forward, backward, step) without a
  recorder, and ``opt`` the median ``optimizer.step()`` alone of the same runs;
* per mode, from one run that records every second step (``every=2``) so that recorded and
  unrecorded steps share the model, allocator and cache state: ``added`` = median recorded
  step - median unrecorded step (ms), ``added/opt`` = that over the optimizer step's own
  time, ``x plain`` = median recorded step / median plain step;
* ``defaults``: ``Recorder(model, opt, path)`` as is, every step: the median step (the
  steady state: summaries every step, histograms and subsamples on their sparse default
  schedules) and the mean over the timed steps (which include the dense early schedule),
  both over the plain step, and the file's bytes per step.

Every mode and the defaults run once per reduction backend of ``--reduce``
(``Recorder(reduce=...)``: ``eager``, the reference, and ``compiled``, the one-pass kernel
that ``auto`` picks for large models on the CPU), side by side in the same rounds.

Modes: ``summary`` (statistics and cosines of every quantity, no histograms, no
subsample), ``summary+hist`` (and fixed-bin histograms with quantiles), ``all`` (and the
4,096-coordinate subsample of grad, update and stepsize). Runs are interleaved round by
round (every mode once per repeat) and the medians over repeats are printed, so slow
drifts of a shared machine hit all modes alike; still, quote the machine load with the
numbers. ``--floor`` adds the memory traffic any exact reader of the step pays, timed as
plain passes (:func:`floor`): a lower bound for ``added`` on this machine.
``--size-steps N`` adds one ``defaults`` run of N steps per model (batch of two: the file
size does not depend on the batch) and prints its bytes per step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import gradscope.optim
from gradscope.record import Recorder
from gradscope.record import schedules as sched

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # benchmarks/ is not a package: found through sys.path

MODES: dict[str, dict] = {
    "summary": {"hist_every": None, "sample": 0},
    "summary+hist": {"hist_every": "same", "sample": 0},
    "all": {"hist_every": "same", "sample_every": "same"},
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


def _images(shape: tuple[int, ...], classes: int) -> Callable[[int], tuple]:
    def batch(n: int) -> tuple:
        x = torch.randn(n, *shape)
        y = torch.randint(0, classes, (n,))
        return (x,), lambda out: nn.functional.cross_entropy(out, y)

    return batch


def _tokens(vocab: int, seq: int) -> Callable[[int], tuple]:
    def batch(n: int) -> tuple:
        ids = torch.randint(0, vocab, (n, seq))
        return (ids,), lambda out: nn.functional.cross_entropy(
            out.logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1)
        )

    return batch


#: name -> (model factory, batch factory, batch size)
MODELS = {
    "mlp": (mlp, _images((1, 28, 28), 10), 128),
    "cnn": (cnn, _images((1, 28, 28), 10), 64),
    "resnet18": (lambda: models.resnet18(10), _images((3, 32, 32), 10), 16),
    "gpt2": (lambda: models.gpt2(vocab=8192), _tokens(8192, 64), 8),
}

OPTIMIZERS = {
    "gradscope-adam": lambda p: gradscope.optim.Adam(p, lr=1e-3),
    "torch-adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
    "torch-sgd": lambda p: torch.optim.SGD(
        p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    ),
}


CLOCK = time.perf_counter


def run_once(model_name: str, optim: str, kw: dict | None, steps: int, path: Path,
             batch_size: int | None = None) -> dict:  # fmt: skip
    """One training run; per-step times (s), optimizer-step times and the file size."""
    make, make_batch, bs = MODELS[model_name]
    torch.manual_seed(0)
    model = make()
    opt = OPTIMIZERS[optim](model.parameters())
    inputs, loss_of = make_batch(batch_size or bs)
    rec = None if kw is None else Recorder(model, opt, path, overwrite=True, **kw)
    total, inner = [], []
    for i in range(steps + 3):
        t0 = CLOCK()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model(*inputs))
        loss.backward()
        if rec is not None:
            rec.log_loss(loss)
        t1 = CLOCK()
        opt.step()
        t2 = CLOCK()
        if i >= 3:  # warm-up: the first recorded step creates the file
            total.append(t2 - t0)
            inner.append(t2 - t1)
    size = 0
    if rec is not None:
        rec.close()
        size = os.path.getsize(path)
    return {"total": total, "inner": inner, "bytes": size}


def _median_ms(fn: Callable[[], object], repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times) * 1e3


def floor(model_name: str, optim: str, path: Path) -> dict[str, float]:
    """The memory traffic any exact reader of the step must pay, timed as plain passes (ms).

    After four recorded steps (which fix the recorded quantities), each layer value is
    moved the least number of times a reader that runs after the optimizer's step can move
    it, each move timed as the cheapest torch call that makes it (``sum``: one read,
    ``copy_``: one read and one write), per layer, summed over layers:

    * ``read``: one read of every recorded quantity (statistics need every coordinate);
    * ``cosine``: for grad and update, one read of the previous value and one write of this
      one (the inner product needs both, and the next step needs this one);
    * ``step`` (torch's optimizers only): the copy of the parameters before the step and
      the subtraction that gives the update after it, and for Adam the stepsize written
      once (read v, write u).

    No arithmetic is counted, so the sum is a lower bound for the recorder's added time
    on this machine, whatever the kernels; set against the targets it says whether a
    target can be met by reading the step after it (docs/run-format.md, "Cost").
    """
    make, make_batch, bs = MODELS[model_name]
    torch.manual_seed(0)
    model = make()
    opt = OPTIMIZERS[optim](model.parameters())
    inputs, loss_of = make_batch(bs)
    rec = Recorder(model, opt, path, overwrite=True, hist_every=None, sample=0)
    for _ in range(4):
        opt.zero_grad(set_to_none=True)
        loss_of(model(*inputs)).backward()
        opt.step()
    quantities, cosine = rec.quantities, rec.cosine_quantities
    rec.close()
    params = [p for p in model.parameters() if p.grad is not None]
    values: list[torch.Tensor] = []
    for p in params:
        st = opt.state.get(p, {})
        for q in quantities:
            if q == "grad":
                values.append(p.grad)
            elif q in ("param", "update", "stepsize"):
                values.append(p.detach())  # parameter-sized, as these are
            elif q in st and isinstance(st[q], torch.Tensor) and st[q].numel() == p.numel():
                values.append(st[q])
    bufs = [torch.empty_like(p) for p in params]
    out = {"read": _median_ms(lambda: [v.sum() for v in values])}
    prev = [b for b in bufs for _ in cosine]
    cur = [p.detach() for p in params for _ in cosine]
    out["cosine"] = _median_ms(lambda: [b.copy_(x) for b, x in zip(prev, cur)]) + _median_ms(
        lambda: [b.sum() for b in prev]
    )
    step = 0.0
    if not isinstance(opt, gradscope.optim.TrackedOptimizer):
        ps = [p.detach() for p in params]
        step += _median_ms(lambda: [b.copy_(x) for b, x in zip(bufs, ps)])
        step += _median_ms(lambda: [torch.sub(x, b, out=b) for b, x in zip(bufs, ps)])
        vs = [opt.state[p]["exp_avg_sq"] for p in params if "exp_avg_sq" in opt.state[p]]
        step += _median_ms(lambda: [b.copy_(v) for b, v in zip(bufs, vs)])
    out["step"] = step
    out["total"] = out["read"] + out["cosine"] + step
    return out


def paired(times: list[float]) -> tuple[float, float]:
    """Median recorded and unrecorded step of an ``every=2`` run (timed steps start at 4)."""
    on = [t for j, t in enumerate(times) if (j + 4) % 2 == 0]
    off = [t for j, t in enumerate(times) if (j + 4) % 2 == 1]
    return statistics.median(on), statistics.median(off)


def amortised(added: dict[str, float], plain: float, steps: int = 1000) -> float | None:
    """The defaults' mean step over ``steps`` steps / the plain step, from the modes' costs.

    Summaries every step, histograms on :func:`~gradscope.record.schedules.default_hist`'s
    steps and subsamples on :func:`~gradscope.record.schedules.default_samples`' (37 and 13
    of the first 1,000): what a long run with the defaults costs, without the dense start
    dominating a short benchmark.
    """
    if not {"summary", "summary+hist", "all"} <= added.keys():
        return None
    hist = sum(map(sched.default_hist(), range(1, steps + 1)))
    samples = sum(map(sched.default_samples(), range(1, steps + 1)))
    mean = (
        plain
        + added["summary"]
        + hist / steps * (added["summary+hist"] - added["summary"])
        + samples / steps * max(added["all"] - added["summary+hist"], 0.0)
    )
    return mean / plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,cnn,resnet18,gpt2")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size-steps", type=int, default=0)
    ap.add_argument("--reduce", default="eager,compiled")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--floor", action="store_true", help="also time the memory-traffic floor")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    backends = args.reduce.split(",")
    modes = [f"{m} [{b}]" for m in args.modes.split(",") for b in backends]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{args.clock} clock, load average {os.getloadavg()[0]:.2f} at start")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in args.models.split(","):
            n_par = sum(p.numel() for p in MODELS[name][0]().parameters())
            for optim in args.optimizers.split(","):
                plain, opt_ms = [], []
                defaults_med: dict[str, list[float]] = {b: [] for b in backends}
                defaults_mean: dict[str, list[float]] = {b: [] for b in backends}
                nbytes: list[float] = []
                added: dict[str, list[float]] = {m: [] for m in modes}
                over: dict[str, list[float]] = {m: [] for m in modes}
                for _ in range(args.repeats):
                    base = run_once(name, optim, None, args.steps, tmp / "p.h5")
                    p_med = statistics.median(base["total"])
                    plain.append(p_med)
                    opt_ms.append(statistics.median(base["inner"]))
                    for m in modes:
                        mode, backend = m.split(" [")
                        kw = {**MODES[mode], "every": 2, "reduce": backend.rstrip("]")}
                        res = run_once(name, optim, kw, args.steps, tmp / "m.h5")
                        on, off = paired(res["total"])
                        added[m].append(on - off)
                        over[m].append(on / p_med)
                    for b in backends:
                        res = run_once(name, optim, {"reduce": b}, args.steps, tmp / "d.h5")
                        defaults_med[b].append(statistics.median(res["total"]) / p_med)
                        defaults_mean[b].append(statistics.mean(res["total"]) / statistics.mean(
                            base["total"]))  # fmt: skip
                        nbytes.append(res["bytes"] / (args.steps + 3))
                med = statistics.median
                o = med(opt_ms)
                print(f"\n{name} ({n_par / 1e6:.2f}M parameters, batch {MODELS[name][2]}), "
                      f"{optim}: plain step {med(plain) * 1e3:.1f} ms, optimizer step "
                      f"{o * 1e3:.1f} ms")  # fmt: skip
                print(f"  {'mode':<25} {'added ms':>9} {'added/opt':>9} {'x plain':>8}")
                for m in modes:
                    a = med(added[m])
                    print(f"  {m:<25} {a * 1e3:9.1f} {a / o:9.2f} {med(over[m]):8.2f}")
                for b in backends:
                    print(
                        f"  defaults [{b}]: x plain {med(defaults_med[b]):.2f} (median step), "
                        f"{med(defaults_mean[b]):.2f} (mean over steps 4-{args.steps + 3})"
                    )
                print(f"  {med(nbytes) / 1024:.0f} KB per step over {args.steps + 3} steps")
                if args.floor:
                    fl = floor(name, optim, tmp / "f.h5")
                    x_plain = 1 + fl["total"] / (med(plain) * 1e3)
                    print(f"  floor (plain memory passes, summary mode): {fl['total']:.1f} ms = "
                          f"{fl['total'] / (o * 1e3):.2f} x opt, x plain {x_plain:.2f} "
                          f"(read {fl['read']:.1f}, cosine {fl['cosine']:.1f}, "
                          f"step {fl['step']:.1f})")  # fmt: skip
                for b in backends:
                    am = amortised({m.split(" [")[0]: med(added[m]) for m in modes
                                    if m.endswith(f"[{b}]")}, med(plain))  # fmt: skip
                    if am is not None:
                        print(f"  defaults [{b}] amortised over 1,000 steps: x plain {am:.2f}")
            if args.size_steps:
                optim = args.optimizers.split(",")[0]
                res = run_once(name, optim, {}, args.size_steps, tmp / "s.h5", batch_size=2)
                per = res["bytes"] / (args.size_steps + 3)
                print(
                    f"  defaults over {args.size_steps + 3} steps ({optim}): "
                    f"{per / 1024:.1f} KB per step, {res['bytes'] / 2**20:.1f} MB"
                )


if __name__ == "__main__":
    main()
