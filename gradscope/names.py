"""The vocabulary at the bottom: every name a quantity, statistic or run-file path goes by.

The recorder writes these names, the run file stores them, the reader and the analyses
look them up and the figures are labelled with them, so each is defined here once: the
quantities (the optimizer's own state-key names, ``grad``, ``exp_avg``, ``exp_avg_sq``,
plus ``stepsize`` u with ``update = -lr * u * m_hat``, ``update`` and ``param``), the
per-layer statistics, the per-example statistics, the HDF5 dataset paths and the names of
per-rank files. ``docs/run-format.md`` describes the same layout for people who read a run
file with plain h5py.

This module imports only the standard library, so every tier may import it (tier 0).
"""

from __future__ import annotations

import re
from pathlib import PurePath

__all__ = [
    "COSINE_GROUP",
    "COSINE_QUANTITIES",
    "COUNT_STATS",
    "EPS_DOMINATED",
    "EXAMPLEWISE_GROUP",
    "EXAMPLEWISE_STATS",
    "EXAMPLEWISE_STEP",
    "FULL_GROUP",
    "FULL_STEP",
    "HIST_GROUP",
    "HIST_RECORDED",
    "HPARAMS_GROUP",
    "LAYERS",
    "LAYER_STEP",
    "LOSS",
    "LR",
    "MOMENT_STATS",
    "QUANTILE_LEVELS",
    "QUANTILE_STATS",
    "QUANTITIES",
    "RANKS_GROUP",
    "RANKS_LOSS",
    "RECORDER_STEP",
    "SAMPLES_GROUP",
    "SAMPLES_STEP",
    "SAMPLE_INDEX",
    "STATS",
    "STATS_GROUP",
    "STATS_V1",
    "STEP",
    "WALL_TIME",
    "ZERO_COUNTED",
    "full_dataset",
    "rank_path",
    "run_stem",
]

#: Quantities recorded per parameter tensor ("layer"), in the order used everywhere.
QUANTITIES: tuple[str, ...] = ("grad", "exp_avg", "exp_avg_sq", "stepsize", "update", "param")

#: Per-layer statistics stored in ``/stats/<quantity>`` (last axis, in this order): the
#: moments, then the quantiles at :data:`QUANTILE_LEVELS`.
MOMENT_STATS: tuple[str, ...] = ("mean", "std", "norm", "min", "max", "nonfinite")
QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_STATS: tuple[str, ...] = tuple(f"q{round(q * 100):02d}" for q in QUANTILE_LEVELS)
#: Counts taken on histogram rows only: ``zeros`` (coordinates exactly 0), counted for the
#: quantities in :data:`ZERO_COUNTED` (a zero second moment is a dead coordinate).
COUNT_STATS: tuple[str, ...] = ("zeros",)
ZERO_COUNTED: tuple[str, ...] = ("exp_avg_sq",)
STATS: tuple[str, ...] = MOMENT_STATS + QUANTILE_STATS + COUNT_STATS
#: The statistics of a schema version 1 file.
STATS_V1: tuple[str, ...] = MOMENT_STATS + QUANTILE_STATS

#: Quantities for which the cosine between successive recorded steps is stored.
COSINE_QUANTITIES: tuple[str, ...] = ("grad", "update")

#: Per-layer per-example gradient statistics in ``/examplewise/stats`` (last axis), as
#: computed by ``gradscope.examplewise.layer_stats``; the last row (layer axis index L) is
#: the whole network.
EXAMPLEWISE_STATS: tuple[str, ...] = (
    "variance",
    "grad_norm_sq",
    "gsnr",
    "norm_test",
    "inner_product_test",
    "orthogonality_test",
)

# Dataset and group paths inside a run file.
STEP = "step"
WALL_TIME = "wall_time"
LOSS = "loss"
LR = "lr"
RECORDER_STEP = "recorder_step"
LAYER_STEP = "layer_step"
HPARAMS_GROUP = "hparams"
EPS_DOMINATED = "eps_dominated"
LAYERS = "layers"
STATS_GROUP = "stats"
COSINE_GROUP = "cosine"
HIST_GROUP = "hist"
HIST_RECORDED = "hist/recorded"
SAMPLE_INDEX = "sample_index"
SAMPLES_GROUP = "samples"
SAMPLES_STEP = "samples/step"
FULL_GROUP = "full"
FULL_STEP = "full/step"
EXAMPLEWISE_GROUP = "examplewise"
EXAMPLEWISE_STEP = "examplewise/step"
#: Written by ``gradscope.runfile.merge_ranks``: every rank's logged loss, ``(T, R)``.
RANKS_GROUP = "ranks"
RANKS_LOSS = "ranks/loss"

_RANK_SUFFIX = re.compile(r"\.rank\d+$")


def full_dataset(quantity: str, layer: int) -> str:
    """Path of one layer's full-tensor dumps: ``full/<quantity>/<layer:05d>``."""
    return f"{FULL_GROUP}/{quantity}/{layer:05d}"


def rank_path(path: PurePath, rank: int) -> PurePath:
    """The per-rank file of ``path`` for ``rank``: ``run.h5`` -> ``run.rank00001.h5``."""
    return path.with_name(f"{path.stem}.rank{rank:05d}{path.suffix}")


def run_stem(path: PurePath) -> str:
    """``run.rank00001.h5`` -> ``run``: the run's name without the rank suffix."""
    return _RANK_SUFFIX.sub("", path.stem)
