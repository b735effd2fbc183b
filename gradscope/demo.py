"""A controlled optimizer comparison on embedded data (scikit-learn's bundled digits).

Every optimizer trains the same MLP from the same initial weights on the same data order;
what differs is only the optimizer. Besides loss and accuracy, each run reports the
layerwise statistics of its adaptive stepsizes u (update = -lr u m_hat), as the
:class:`gradscope.Recorder` logged them at the last recorded step: the quantities of the
Aida paper's Figs. 1, 2 and 6.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import gradscope.optim as O

#: name -> (constructor, learning rate) of the default comparison
DEFAULT_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd-momentum": lambda p: O.SGD(p, lr=0.05, momentum=0.9),
    "adam": lambda p: O.Adam(p, lr=1e-3),
    "adabelief": lambda p: O.AdaBelief(p, lr=1e-3),
    "aida": lambda p: O.Aida(p, lr=1e-3, k=2),
    "setadam": lambda p: O.SETAdam(p, lr=1e-3),
    "ladam": lambda p: O.LAdam(p, lr=1e-3),
}


@dataclass(frozen=True)
class ComparisonRow:
    """One optimizer's result: losses, accuracy and layerwise stepsize statistics.

    ``layer_std`` and ``layer_mean`` are the within-layer std and mean of the stepsizes
    u at the last step, one entry per parameter tensor (input -> output order). Every
    field is determined by the optimizer, the seed and the data; wall-clock time is not
    (it depends on the machine and its load), so it is kept apart, in
    :attr:`DemoResult.seconds`.
    """

    name: str
    steps: int
    final_train_loss: float
    test_accuracy: float
    layer_mean: tuple[float, ...]
    layer_std: tuple[float, ...]

    @property
    def median_layer_std(self) -> float:
        """Median over layers of the within-layer std of the stepsizes."""
        return float(np.median(self.layer_std))

    @property
    def median_relative_std(self) -> float:
        """Median over layers of the within-layer std/mean of the stepsize u (last recorded row).

        The report's "median within-layer std/mean of u (last step)".
        """
        m, s = np.asarray(self.layer_mean, dtype=float), np.asarray(self.layer_std, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = s / m
        rel = rel[np.isfinite(rel)]
        return float(np.median(rel)) if rel.size else math.nan

    @property
    def layer_mean_spread(self) -> float:
        """log10(max/min) of the layer means of u: how compact the layers' stepsizes are."""
        m = np.asarray(self.layer_mean)
        return float(np.log10(m.max() / m.min())) if np.all(m > 0) else math.nan


def load_digits_tensors(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Digits (1797 8x8 images, 10 classes) standardized, split 80/20 with a fixed seed.

    The three pixels that are blank in every image are dropped: their weights would get
    exactly zero gradients, so Adam's stepsize there is 1/eps = 1e8 and such dead inputs
    would dominate every stepsize statistic. 61 features remain.
    """
    from sklearn.datasets import load_digits

    pixels, labels = load_digits(return_X_y=True)
    x = torch.tensor(pixels, dtype=torch.float32) / 16.0
    x = x[:, x.std(0) > 0]
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(labels, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.8 * len(x))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


@dataclass(frozen=True)
class TrainResult:
    """What one training run on digits ended with."""

    steps: int
    final_train_loss: float
    test_accuracy: float
    seconds: float


#: input width of :func:`load_digits_tensors`
DIGITS_FEATURES = 61


def make_digits_mlp(hidden: Sequence[int] = (128, 64), seed: int = 0) -> nn.Module:
    """A tanh MLP 61 -> hidden... -> 10 with seeded initial weights."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = DIGITS_FEATURES
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train_digits(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    recorder: Any = None,
    examplewise: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train ``model`` on the digits training split; the data order depends only on ``seed``.

    ``recorder`` (a :class:`gradscope.Recorder`) gets the losses; ``examplewise=True``
    computes per-example moments every step and hands them to the optimizer (Eve).
    """
    set_examplewise = getattr(optimizer, "set_examplewise", None)
    if examplewise and set_examplewise is None:
        raise ValueError(
            f"examplewise=True needs an optimizer that takes per-example moments (Eve), "
            f"got {type(optimizer).__name__}"
        )
    xtr, ytr, xte, yte = (t.to(device) for t in load_digits_tensors(seed))
    gen = torch.Generator().manual_seed(seed)  # the same data order for every optimizer
    total = epochs * math.ceil(len(xtr) / batch_size)
    steps, t0, loss = 0, time.perf_counter(), torch.tensor(math.nan)
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=gen).to(device)
        for i in range(0, len(xtr), batch_size):
            idx = order[i : i + batch_size]
            optimizer.zero_grad()
            if set_examplewise is not None and examplewise:
                from gradscope import examplewise as ew

                mom = ew.examplewise_moments(
                    model, nn.functional.cross_entropy, xtr[idx], ytr[idx], projections=False
                )
                ew.set_grads_from_moments(model, mom)
                set_examplewise(ew.sq_mean_by_param(model, mom), mom.batch_size)
                loss = mom.loss
            else:
                loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                loss.backward()
            if recorder is not None:
                recorder.log_loss(loss)
            optimizer.step()
            steps += 1
            if progress:
                progress(steps, total)
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    return TrainResult(steps, float(loss.detach()), acc, time.perf_counter() - t0)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        rows: one comparison row per optimizer (the controlled comparison).
        run_files: one run file per optimizer.
        report: the HTML report.
        report_result: ``report.compare.Comparison``, or ``report.build.Report`` for a
            single optimizer.
        seconds: wall-clock seconds of each optimizer's training (recording included);
            machine- and load-dependent, so not part of the comparison.
    """

    rows: tuple[ComparisonRow, ...]
    run_files: tuple[Path, ...]
    report: Path
    report_result: Any
    seconds: Mapping[str, float]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: leave torch's setting)."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads must be >= 1 (or None for torch's default), got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_demo(
    out: str | os.PathLike[str] = "gradscope-demo",
    names: Sequence[str] | None = None,
    *,
    epochs: int = 10,
    seed: int = 0,
    device: str = "cpu",
    every: int = 1,
    threads: int | None = 1,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoResult:
    """The main job: record every optimizer on digits, then analyze and compare the runs.

    Each optimizer trains the same MLP (same initial weights, same data order) under a
    :class:`gradscope.Recorder`; the run files land in ``out`` and
    :func:`gradscope.report.compare.compare_runs` writes the overlaid report to
    ``out/report``.

    Args:
        out: folder for the run files and the report.
        names: optimizers to compare (keys of :data:`DEFAULT_OPTIMIZERS`); default all six.
        epochs: epochs over the digits training split.
        seed: seed of the initial weights and of the data order.
        device: torch device of the model and the data.
        every: record every k-th optimizer step.
        threads: torch intra-op threads while the demo runs (restored afterwards); ``None``
            keeps torch's setting. One by default: the layers are so small (at most
            128 x 64) that more threads only add synchronisation, and on a busy machine they
            oversubscribe the cores (measured side by side on a 2-core machine at load average
            about 5: the whole demo took 339 s with torch's default of 2 threads against 68 s
            with one, with the same table).
        progress: ``progress(name, done, total)`` after every training step and report stage.

    Raises:
        ValueError: an unknown optimizer name, or ``threads < 1``.
    """
    names = list(names or DEFAULT_OPTIMIZERS)
    _check_names(names)
    with torch_threads(threads):
        return _run_demo(Path(out), names, epochs, seed, device, every, progress)


def _run_demo(
    out: Path,
    names: Sequence[str],
    epochs: int,
    seed: int,
    device: str,
    every: int,
    progress: Callable[[str, int, int], None] | None,
) -> DemoResult:
    from gradscope.record import Recorder
    from gradscope.report.build import build
    from gradscope.report.compare import compare_runs
    from gradscope.runfile import RunFile

    out.mkdir(parents=True, exist_ok=True)
    rows, paths, seconds = [], [], {}
    for name in names:
        model = make_digits_mlp(seed=seed).to(device)
        opt = DEFAULT_OPTIMIZERS[name](model.parameters())
        path = out / f"{name}.h5"
        tags = {"demo": "digits", "optimizer": name, "epochs": epochs}
        with Recorder(
            model, opt, path, every=every, sample=1024, overwrite=True, seed=seed, tags=tags
        ) as rec:
            res = train_digits(
                model,
                opt,
                epochs=epochs,
                seed=seed,
                device=device,
                recorder=rec,
                progress=(lambda d, t, name=name: progress(name, d, t)) if progress else None,
            )
        with RunFile(path) as run:  # the stepsize columns of the table: last recorded row
            mean, std = run.summary("stepsize", "mean")[-1], run.summary("stepsize", "std")[-1]
        rows.append(
            ComparisonRow(
                name=name,
                steps=res.steps,
                final_train_loss=res.final_train_loss,
                test_accuracy=res.test_accuracy,
                layer_mean=tuple(float(x) for x in mean),
                layer_std=tuple(float(x) for x in std),
            )
        )
        paths.append(path)
        seconds[name] = res.seconds
    if len(paths) == 1:  # nothing to overlay: the single run's own report
        report = build(paths[0], out / "report", progress=progress)
    else:
        report = compare_runs(paths, out / "report", progress=progress)
    return DemoResult(tuple(rows), tuple(paths), report.html, report, seconds)


def _check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in DEFAULT_OPTIMIZERS]
    if unknown:
        raise ValueError(
            f"unknown optimizer(s) {unknown}; choose from {sorted(DEFAULT_OPTIMIZERS)}"
        )
