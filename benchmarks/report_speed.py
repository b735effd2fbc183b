"""Wall time of ``analyze``/``compare`` at the scale of real networks (prints; not a test).

python benchmarks/report_speed.py [--dir /tmp/gs_report_speed] [--demo gradscope-demo]

Records (once, reused when present) three kinds of run file through the Recorder:

* ``mlp64_*.h5``: a 32-block MLP (64 parameter tensors) trained 60 steps with Adam / AdaBelief;
* ``resnet18.h5``: a hand-written ResNet-18 (62 parameter tensors, the torchvision layout)
  trained 30 steps with Adam on random 32 x 32 images;

then times ``gradscope.report.build.build`` (analyze) on the demo's Adam run (when
``--demo`` points at a ``gradscope demo`` folder), on one MLP-64 run and on the ResNet-18
run, and ``compare_runs`` on the two MLP-64 runs, each with its ``--profile`` breakdown.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import nn

from gradscope.record import Recorder
from gradscope.report.build import build
from gradscope.report.compare import compare_runs


class Block(nn.Module):
    """ResNet basic block (two 3x3 convolutions, batch norm, identity or 1x1 shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 with torchvision's parameter names (62 parameter tensors)."""

    def __init__(self, width: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        chans = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, c, stride), Block(c, c, 1)))
            cin = c
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean(dim=(2, 3)))


def mlp(blocks: int = 32, width: int = 48) -> nn.Module:
    """``blocks`` Linear layers (weights and biases: 2 x blocks parameter tensors)."""
    mods: list[nn.Module] = []
    for _ in range(blocks - 1):
        mods += [nn.Linear(width, width), nn.Tanh()]
    mods.append(nn.Linear(width, 10))
    return nn.Sequential(*mods)


def record(model: nn.Module, opt: torch.optim.Optimizer, path: Path, steps: int, shape) -> None:
    """Train ``steps`` steps on random inputs/labels with cross-entropy, recording every step."""
    g = torch.Generator().manual_seed(0)
    with Recorder(model, opt, path, sample=1024, overwrite=True) as rec:
        for _ in range(steps):
            x = torch.randn(*shape, generator=g)
            y = torch.randint(0, 10, (shape[0],), generator=g)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            rec.log_loss(loss)
            opt.step()


def files(d: Path) -> dict[str, Path]:
    """The run files (recorded when absent)."""
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        p = d / f"mlp64_{name}.h5"
        if not p.exists():
            torch.manual_seed(0)
            m = mlp()
            record(m, cls(m.parameters(), lr=1e-3), p, 60, (64, 48))
        out[f"mlp64_{name}"] = p
    p = d / "resnet18.h5"
    if not p.exists():
        torch.manual_seed(0)
        m = ResNet18(width=16)
        record(m, torch.optim.Adam(m.parameters(), lr=1e-3), p, 30, (8, 3, 32, 32))
    out["resnet18"] = p
    return out


def main() -> None:
    """Record the files if needed, then time each report with its profile."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path("/tmp/gs_report_speed"))
    ap.add_argument("--demo", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    fs = files(args.dir)
    print(f"load average before timing: {os.getloadavg()}")
    jobs = []
    if args.demo is not None:
        jobs.append(
            ("analyze demo adam", lambda: build(args.demo / "adam.h5", args.dir / "r_demo"))
        )
    jobs += [
        ("analyze mlp64 x 60", lambda: build(fs["mlp64_adam"], args.dir / "r_mlp")),
        (
            "compare mlp64 x 2",
            lambda: compare_runs([fs["mlp64_adam"], fs["mlp64_adamw"]], args.dir / "r_cmp"),
        ),
        ("analyze resnet18 x 30", lambda: build(fs["resnet18"], args.dir / "r_resnet")),
    ]
    for name, job in jobs:
        t0 = time.perf_counter()
        rep = job()
        took = time.perf_counter() - t0
        prof = getattr(rep, "profile", {}) or {}
        parts = ", ".join(f"{k} {v:.2f}" for k, v in prof.items())
        print(f"{name}: {took:.2f} s ({parts}) load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
