"""Run files with known answers: real training through Recorder, or RunWriter directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from gradscope.record import Recorder
from gradscope.runfile import RunWriter
from gradscope.runfile import schema as S


class Linear(nn.Module):
    """Parameters whose loss is linear: the gradient is exactly the given noise."""

    def __init__(self, sizes):
        super().__init__()
        self.ps = nn.ParameterList([nn.Parameter(torch.zeros(n)) for n in sizes])

    def forward(self, noise):
        return sum((p * z).sum() for p, z in zip(self.ps, noise))


def train(path: Path, opt_factory, sizes, steps: int, noise_fn, **rec_kw) -> Path:
    """Run ``steps`` optimizer steps with gradients ``noise_fn(step, i, n)`` and record.

    Histograms and subsamples on every summary row unless ``rec_kw`` says otherwise (the
    report tests fit laws at chosen steps; the default schedules are tested on their own).
    """
    rec_kw = {"hist_every": "same", "sample_every": "same", **rec_kw}
    torch.manual_seed(0)
    model = Linear(sizes)
    opt = opt_factory(model.parameters())
    with Recorder(model, opt, path, **rec_kw) as rec:
        for t in range(1, steps + 1):
            opt.zero_grad()
            loss = model([noise_fn(t, i, n) for i, n in enumerate(sizes)])
            loss.backward()
            rec.log_loss(loss)
            opt.step()
    return path


def gaussian_adam_run(path: Path, steps: int = 24) -> Path:
    """i.i.d. Gaussian gradients through torch's Adam (eps tiny vs gradient scale 1)."""
    g = torch.Generator().manual_seed(1)
    return train(
        path,
        lambda p: torch.optim.Adam(p, lr=1e-3),
        [6000, 3000],
        steps,
        lambda t, i, n: torch.randn(n, generator=g),
        sample=6000,
    )


def constant_sgd_run(path: Path, steps: int = 12) -> Path:
    """Gradients with a constant direction in every layer, through SGD."""
    dirs = {}

    def noise(t, i, n):
        if i not in dirs:
            dirs[i] = torch.randn(n, generator=torch.Generator().manual_seed(10 + i))
        return dirs[i] * (1 + 0.1 * t)

    return train(
        path, lambda p: torch.optim.SGD(p, lr=0.01), [50, 400, 3000], steps, noise, sample=64
    )


def layerwise_run(path: Path, steps: int = 8) -> Path:
    """A layerwise optimizer (one stepsize per layer): within-layer std must be 0."""
    from gradscope.optim import LAdam

    g = torch.Generator().manual_seed(2)
    return train(
        path,
        lambda p: LAdam(p, lr=1e-3),
        [100, 30],
        steps,
        lambda t, i, n: torch.randn(n, generator=g) * (i + 1),
        sample=16,
    )


def synthetic_run(
    path: Path,
    names=("in.w", "out.w"),
    steps: int = 5,
    samples: bool = True,
    quantities=S.QUANTITIES,
    metadata=None,
) -> Path:
    """A RunWriter file with given layer names and plausible numbers."""
    layers = tuple(S.LayerInfo(n, (8,), 0, i, i) for i, n in enumerate(names))
    lay = S.Layout(
        layers=layers,
        n_groups=1,
        quantities=tuple(quantities),
        sample_quantities=("grad", "update", "stepsize") if samples else (),
        sample_index=tuple(np.arange(8) for _ in layers) if samples else (),
    )
    rng = np.random.default_rng(0)
    meta = (
        metadata
        if metadata is not None
        else {
            "optimizer": {
                "class": "torch.optim.adam.Adam",
                "defaults": {"lr": 0.1, "betas": [0.9, 0.999], "weight_decay": 0},
            }
        }
    )
    w = RunWriter(path, lay, meta, block=2)
    L = len(layers)
    for t in range(1, steps + 1):
        stats = {}
        for q in lay.quantities:
            st = np.abs(rng.standard_normal((L, len(S.STATS)))) + 0.1
            stats[q] = st
        w.write_summary(
            S.SummaryRow(
                step=t,
                wall_time=float(t),
                loss=1.0 / t,
                lr=np.array([0.1]),
                stats=stats,
                cosine={
                    q: rng.uniform(-0.5, 0.5, L) for q in S.COSINE_QUANTITIES if q in lay.quantities
                },
            )
        )
        if samples:
            w.write_samples(
                t,
                {
                    q: rng.standard_normal(8 * L).astype(np.float32) * 0.03
                    for q in lay.sample_quantities
                },
            )
    w.close()
    return path
