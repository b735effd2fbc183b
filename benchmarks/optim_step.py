"""ms/step of every gradscope optimizer on every backend against torch.optim.Adam.

CPU: ~5M parameters in 50 tensors (25 x Linear(448, 448)); CUDA (if present): ~100M in
200 tensors. Fixed gradients, candidates interleaved round by round, medians reported,
ratios against torch's default Adam (the per-tensor loop on CPU) and its fused Adam.
Each gradscope optimizer runs per tensor, with ``foreach=True`` and with ``fused=True``
(compiled in the first round's warm-up, outside the timings; the compile time of each
fused candidate is printed).

    python benchmarks/optim_step.py [--rounds 5] [--steps 20] [--device cpu|cuda]
        [--only aida adam] [--backends loop foreach fused] [--stat median|min]

``--stat min`` reports each candidate's fastest step instead of the median: on a machine
shared with other jobs the median measures the scheduler, the minimum the step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import gradscope.optim as O


def make_params(device: str, n_layers: int, width: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for _ in range(n_layers):
        w = torch.randn(width, width, generator=gen).to(device).requires_grad_()
        b = torch.randn(width, generator=gen).to(device).requires_grad_()
        w.grad, b.grad = torch.randn_like(w) * 1e-2, torch.randn_like(b) * 1e-2
        params += [w, b]
    return params


def candidates(backends: list[str]) -> dict:
    c = {
        "torch Adam (default)": lambda p: torch.optim.Adam(p, lr=1e-3),
        "torch Adam foreach": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
        "torch Adam fused": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
    }
    flags = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    for name, cls in O.OPTIMIZERS.items():
        for backend in backends:
            if backend == "fused" and not issubclass(cls, O.AdaptiveOptimizer):
                continue
            kw = flags[backend]
            c[f"gradscope {name} {backend}"] = lambda p, cls=cls, kw=kw: cls(p, **kw)
    if "loop" in backends:
        c["gradscope aida k=8 loop"] = lambda p: O.Aida(p, k=8)  # cost must not grow with K
    if "fused" in backends:
        c["gradscope aida k=8 fused"] = lambda p: O.Aida(p, k=8, fused=True)
    return c


def time_steps(
    opt: torch.optim.Optimizer, params, steps: int, device: str, stat: str = "median"
) -> float:
    eve = isinstance(opt, O.Eve)
    sq = {p: p.grad * p.grad for p in params} if eve else None
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for _ in range(steps):
        if eve:
            opt.set_examplewise(sq, 1)
        sync()
        t0 = time.perf_counter()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    return (min(times) if stat == "min" else statistics.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--only", nargs="*", help="substrings of candidate names to run")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument(
        "--backends", nargs="*", default=["loop", "foreach", "fused"], help="gradscope backends"
    )
    ap.add_argument(
        "--stat", choices=["median", "min"], default="median", help="per round: median or min"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_layers, width = (25, 448) if args.device == "cpu" else (100, 1000)
    params = make_params(args.device, n_layers, width)
    n = sum(p.numel() for p in params)
    print(
        f"{n / 1e6:.2f}M parameters in {len(params)} tensors on {args.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{args.stat} step per round, median over rounds"
    )
    cands = candidates(args.backends)
    if args.only:
        keep = {"torch Adam (default)", "torch Adam fused"}
        cands = {k: v for k, v in cands.items() if k in keep or any(s in k for s in args.only)}
    results: dict[str, list[float]] = {k: [] for k in cands}
    for r in range(args.rounds):
        for name, make in cands.items():
            ps = [p.detach().clone().requires_grad_() for p in params]
            for p, q in zip(ps, params):
                p.grad = q.grad.clone()
            opt = make(ps)
            t0 = time.perf_counter()
            time_steps(opt, ps, 3, args.device)  # warm-up, creates state (and compiles)
            if r == 0 and name.endswith("fused") and name.startswith("gradscope"):
                took = time.perf_counter() - t0
                print(f"  {name}: first 3 steps (compile) {took:.1f} s", flush=True)
            results[name].append(time_steps(opt, ps, args.steps, args.device, args.stat))
        print(f"after round {r + 1} of {args.rounds}:")
        table(results)


def table(results: dict[str, list[float]]) -> None:
    """Medians over the rounds so far, with ratios to torch's default and fused Adam."""
    base = statistics.median(results["torch Adam (default)"])
    fused = statistics.median(results["torch Adam fused"])
    print(f"{'optimizer':32s} {'ms/step':>9s} {'x default':>10s} {'x fused':>8s}")
    for name, vals in results.items():
        if vals:
            ms = statistics.median(vals)
            print(f"{name:32s} {ms:9.2f} {ms / base:10.2f} {ms / fused:8.2f}", flush=True)


if __name__ == "__main__":
    main()
