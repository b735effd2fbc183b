"""Run-file bytes per step by model and recording option (the sizing table of run-format.md).

Run: ``python benchmarks/file_size.py [--models mlp,cnn,resnet18,gpt2] [--rows 48]
[--steps 1000]``.

For each model (torch AdamW, batch of two: sizes do not depend on the batch) three short
runs of ``--rows`` steps give the bytes of one summary row (statistics and cosines of
every quantity, stored gzip-1), of the histograms of one row and of one subsample row
(4,096 coordinates per layer of grad, update and stepsize, float32). From them the table
gives the bytes per step averaged over ``--steps`` steps for the defaults (summaries
every step, histograms on ``default_hist()``, subsamples on ``default_samples()``),
with histograms on every step, and with subsamples on every step. The fixed part (layer
table, sample index, metadata) is reported once. Sizes are on-disk sizes of the datasets
(``h5py`` storage size, compression included), rounded up to whole chunks as HDF5 writes
them, which the short runs already do.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import h5py
import torch

from gradscope.record import default_hist, default_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recorder_overhead as R  # benchmarks/ is not a package: found through sys.path


def _sizes(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj.id.get_storage_size()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def per_row(model: str, rows: int, tmp: Path) -> dict[str, float]:
    """Bytes of one summary row, one row's histograms, one subsample row, and the fixed part."""
    kw = {"hist_every": "same", "sample_every": "same"}
    R.run_once(model, "torch-adamw", kw, rows - 3, tmp / "a.h5", batch_size=2)
    sizes = _sizes(tmp / "a.h5")
    total = os.path.getsize(tmp / "a.h5")

    def part(prefix: str) -> int:
        return sum(v for k, v in sizes.items() if k.startswith(prefix))

    hist = part("hist/") - sum(v for k, v in sizes.items() if k.endswith("_edges"))
    samples = part("samples/") - sizes.get("samples/step", 0)
    fixed = part("layers/") + sizes.get("sample_index", 0)
    summary = total - hist - samples - fixed
    return {"summary": summary / rows, "hist": hist / rows, "samples": samples / rows,
            "fixed": fixed}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,cnn,resnet18,gpt2")
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.steps
    n_hist = sum(default_hist()(t) for t in range(1, n + 1))
    n_samp = sum(default_samples()(t) for t in range(1, n + 1))
    print(f"over {n} steps: {n_hist} histogram rows and {n_samp} subsample rows by default")
    print(f"{'model':<10} {'params':>7} {'layers':>6} {'summary':>8} {'hist':>8} {'sample':>8} "
          f"{'fixed':>8} | {'defaults':>9} {'hist every':>10} {'sample every':>12}")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            m = R.MODELS[name][0]()
            n_par = sum(p.numel() for p in m.parameters())
            n_layers = len(list(m.parameters()))
            b = per_row(name, args.rows, Path(d))
            base = b["summary"] + b["fixed"] / n
            default = base + (n_hist * b["hist"] + n_samp * b["samples"]) / n
            print(f"{name:<10} {n_par / 1e6:6.2f}M {n_layers:6d} {b['summary'] / 1024:7.1f}K "
                  f"{b['hist'] / 1024:7.1f}K {b['samples'] / 1024:7.0f}K "
                  f"{b['fixed'] / 1024:7.0f}K | {default / 1024:8.1f}K "
                  f"{(default + (n - n_hist) * b['hist'] / n) / 1024:9.1f}K "
                  f"{(default + (n - n_samp) * b['samples'] / n) / 1024:11.0f}K",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
