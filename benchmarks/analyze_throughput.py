"""Throughput and peak memory of ``analyze_run`` on a generated run file (prints; not a test).

python benchmarks/analyze_throughput.py [--rows 5000] [--layers 32] [--sample 256]
    [--sample-every 10] [--chunk 4096] [--figures]

Writes a synthetic Adam run with RunWriter (i.i.d. Gaussian updates in the subsample),
then times the streamed analysis: MB/s is the file size over the analysis wall time; peak
memory is tracemalloc's peak of Python/NumPy allocations during the analysis (HDF5's own
caches are outside it) and the process's max RSS. ``--figures`` also times the full
report (figures, CSV/JSON, HTML).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from gradscope.report.build import analyze_run, build
from gradscope.runfile import RunWriter
from gradscope.runfile import schema as S
from gradscope.theory import ema_update

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=5000)
parser.add_argument("--layers", type=int, default=32)
parser.add_argument("--sample", type=int, default=256)
parser.add_argument("--sample-every", type=int, default=10)
parser.add_argument("--chunk", type=int, default=4096)
parser.add_argument("--figures", action="store_true")
args = parser.parse_args()


def make(path: Path) -> None:
    """A synthetic run without histograms (they do not enter the analyses)."""
    n_l = args.layers
    layers = tuple(S.LayerInfo(f"layer{i}.weight", (1000 + 37 * i,), 0, i, i) for i in range(n_l))
    lay = S.Layout(
        layers=layers,
        n_groups=1,
        sample_quantities=("update",),
        sample_index=tuple(np.arange(min(args.sample, x.numel)) for x in layers),
    )
    rng = np.random.default_rng(0)
    meta = {"optimizer": {"class": "torch.optim.adam.Adam", "defaults": {"betas": [0.9, 0.999]}}}
    w = RunWriter(path, lay, meta, block=256)
    k = int(lay.sample_counts.sum())
    for t in range(1, args.rows + 1):
        stats = {q: np.abs(rng.standard_normal((n_l, len(S.STATS)))) + 0.1 for q in lay.quantities}
        cos = {q: rng.uniform(-0.05, 0.05, n_l) for q in S.COSINE_QUANTITIES}
        w.write_summary(S.SummaryRow(t, float(t), 1.0, np.array([1e-3]), stats, cos))
        if t % args.sample_every == 0 and t >= 2:
            x = ema_update.rvs(t, 0.9, size=k, random_state=rng) if t < 10**6 else None
            w.write_samples(t, {"update": (-1e-3 * x).astype(np.float32)})
    w.close()


with tempfile.TemporaryDirectory() as d:
    path = Path(d) / "bench.h5"
    start = time.perf_counter()
    make(path)
    size_mb = path.stat().st_size / 1e6
    print(
        f"generated {path.name}: {size_mb:.1f} MB, {args.rows} rows x {args.layers} layers, "
        f"subsample {args.sample}/layer every {args.sample_every} rows "
        f"({time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    tracemalloc.start()
    start = time.perf_counter()
    an = analyze_run(path, chunk=args.chunk)
    wall = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"analyze_run: {wall:.2f} s, {size_mb / wall:.1f} MB/s, {args.rows / wall:.0f} rows/s")
    print(f"peak traced memory {peak / 1e6:.1f} MB (file {size_mb:.1f} MB); max RSS {rss:.0f} MB")
    print(f"kept rows {len(an.stepsizes.steps)}, update fits {len(an.fits)}")
    if args.figures:
        start = time.perf_counter()
        build(path, Path(d) / "report", formats=("png",))
        print(f"full report (png): {time.perf_counter() - start:.2f} s")
