"""Peak memory and time of examplewise_moments, chunked vs unchunked (CPU, Linux).

Each configuration runs in two fresh subprocesses. The memory one runs once, with large
blocks served by mmap, and reports the peak resident set size (VmHWM, which cannot be
reset, hence the subprocess) over the RSS after setup. The timing one runs with the default
allocator, warms up at full size and reports the best of 5 repeats. On a shared machine
the times are noisy; compare them within one run of this script.

    python benchmarks/examplewise_memory.py [--batch 256] [--width 256] [--depth 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(kind: str, mode: str, chunk: int | None, args: argparse.Namespace) -> dict:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from gradscope.examplewise import examplewise_moments, per_example_grads

    torch.manual_seed(0)
    # one thread: OpenMP spin-waiting on an oversubscribed shared machine wrecks timings
    torch.set_num_threads(args.threads)
    batch, width, depth = args.batch, args.width, args.depth
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    x, y = torch.randn(batch, width), torch.randint(0, 10, (batch,))
    n_params = sum(p.numel() for p in model.parameters())

    def run() -> None:
        if mode == "per_example_grads":
            per_example_grads(model, F.cross_entropy, x, y, chunk_size=chunk)
        elif mode == "moments":
            examplewise_moments(model, F.cross_entropy, x, y, chunk_size=chunk)
        elif mode == "moments_noproj":
            examplewise_moments(model, F.cross_entropy, x, y, chunk_size=chunk, projections=False)
        else:  # ordinary backward, for reference
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()

    examplewise_moments(model, F.cross_entropy, x[:2], y[:2], chunk_size=1)  # warm up
    model.zero_grad()
    F.cross_entropy(model(x[:2]), y[:2]).backward()
    if kind == "mem":
        base = _rss_kib("VmRSS")
        run()
        return {"params": n_params, "extra_peak_mib": (_rss_kib("VmHWM") - base) / 1024}
    run()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"params": n_params, "best_s": min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, mode, chunk = args.worker
        res = worker(kind, mode, None if chunk == "none" else int(chunk), args)
        print(json.dumps(res))
        return

    # the workers import gradscope from this checkout, installed or not
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env_time = {**os.environ, "PYTHONPATH": path}
    # Large blocks through mmap, so freed tensors leave the resident set at once and VmHWM
    # tracks live tensors rather than glibc's arena high-water mark (slow: memory run only).
    env_mem = {**env_time, "MALLOC_MMAP_THRESHOLD_": "131072"}
    configs = [("backward", "none"), ("per_example_grads", "none")]
    for chunk in ("none", "64", "16", "4"):
        configs += [("moments", chunk), ("moments_noproj", chunk)]
    print(
        f"B={args.batch}, {args.depth} x Linear({args.width}, {args.width}) + head, float32, "
        f"{args.threads} thread(s)"
    )
    print(f"{'mode':<18} {'chunk':>6} {'extra peak MiB':>15} {'best of 5 s':>12}")
    for mode, chunk in configs:
        res = {}
        for kind, env in (("mem", env_mem), ("time", env_time)):
            cmd = [sys.executable, __file__, "--worker", kind, mode, chunk]
            cmd += ["--batch", str(args.batch), "--width", str(args.width)]
            cmd += ["--depth", str(args.depth), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            res.update(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{mode:<18} {chunk:>6} {res['extra_peak_mib']:>15.1f} {res['best_s']:>12.3f}")
    print(f"(model: {res['params']} parameters = {res['params'] * 4 / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
