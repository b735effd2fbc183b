"""The run-file schema: one vocabulary for the recorder, the file, the reader and the docs.

Every name a run file uses (docs/design.md, rule 4) is defined once in :mod:`gradscope.names`
and re-exported here: the quantities (``grad``, ``exp_avg``, ``exp_avg_sq``, ``stepsize``,
``update``, ``param``), the per-layer statistics and the dataset paths; this module adds
the fixed histogram edges, the layout and the row records. ``docs/run-format.md`` describes the same
layout for people who read the file with plain h5py.

This module imports only the standard library, NumPy and :mod:`gradscope.names`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "gradscope-run"
FORMAT_VERSION = 2
#: Versions this gradscope reads (version 1 lacks the per-layer optimizer step, the
#: per-group hyperparameters, the zero counts and the eps-dominated counts).
READABLE_VERSIONS: tuple[int, ...] = (1, 2)

# The names (quantities, statistics, dataset paths) are defined once in gradscope.names and
# re-exported here. The core quantities keep their meaning everywhere; a run may hold fewer
# (an optimizer without an elementwise stepsize has no ``stepsize``) and more: every other
# optimizer state entry under its own key (``square_avg``, ``sum``, ``momentum_buffer``,
# Adafactor's ``row_var`` and ``col_var`` with their own shapes, 0-d entries as one value
# per layer and row).
from gradscope.names import (  # noqa: E402, F401 - re-exported: the one vocabulary
    COSINE_GROUP,
    COSINE_QUANTITIES,
    COUNT_STATS,
    EPS_DOMINATED,
    EXAMPLEWISE_GROUP,
    EXAMPLEWISE_STATS,
    EXAMPLEWISE_STEP,
    FULL_GROUP,
    FULL_STEP,
    HIST_GROUP,
    HIST_RECORDED,
    HPARAMS_GROUP,
    LAYER_STEP,
    LAYERS,
    LOSS,
    LR,
    MOMENT_STATS,
    QUANTILE_LEVELS,
    QUANTILE_STATS,
    QUANTITIES,
    RECORDER_STEP,
    SAMPLE_INDEX,
    SAMPLES_GROUP,
    SAMPLES_STEP,
    STATS,
    STATS_GROUP,
    STATS_V1,
    STEP,
    WALL_TIME,
    ZERO_COUNTED,
)

#: A coordinate is eps-dominated when its stepsize u >= 1 / (EPS_MARGIN * eps), that is
#: when sqrt(v_hat) <= (EPS_MARGIN - 1) eps: eps, not the gradient statistics, sets its step.
EPS_MARGIN = 1.01

#: Rows written per HDF5 write call and per flush (the chunk length along the step axis).
DEFAULT_BLOCK = 16


@dataclass(frozen=True)
class HistSpec:
    """Fixed histogram bins of one quantity, on a log2 magnitude grid.

    Magnitudes are binned on the edges ``2**e * (1 + k / 2**sub)`` for ``e`` in
    ``[e_lo, e_hi)`` and ``k`` in ``[0, 2**sub)`` (``2**sub`` linear sub-bins per octave:
    exactly the leading mantissa bits of a float32, so the device computes the bin with
    integer operations and every edge is an exact float). ``nb = (e_hi - e_lo) * 2**sub``
    magnitude bins.

    Signed quantities (grad, exp_avg, update, param) use the real line, in increasing order:
    ``(-inf, -2**e_hi)``, the ``nb`` negative bins, the central bin ``(-2**e_lo, 2**e_lo)``
    (zero included), the ``nb`` positive bins, ``[2**e_hi, inf)``: ``2 nb + 3`` finite bins.
    Positive quantities (exp_avg_sq, stepsize) use ``(-inf, 2**e_lo)`` (zero and any negative
    value), the ``nb`` positive bins and ``[2**e_hi, inf)``: ``nb + 2`` finite bins.
    In both cases one last bin counts non-finite values (NaN, +-inf), so every layer's
    histogram sums to its size ``n``. A value of magnitude exactly on an edge belongs to the
    bin above in magnitude (``[a, b)`` on ``|x|``; for negative values that is ``(-b, -a]``).
    """

    signed: bool
    e_lo: int
    e_hi: int
    sub: int = 2

    @property
    def n_magnitude(self) -> int:
        """Number of log-magnitude bins per sign."""
        return (self.e_hi - self.e_lo) << self.sub

    @property
    def n_bins(self) -> int:
        """Total number of bins, the non-finite bin included."""
        nb = self.n_magnitude
        return 2 * nb + 4 if self.signed else nb + 3

    def magnitude_edges(self) -> np.ndarray:
        """The ``nb + 1`` magnitude edges ``2**e_lo ... 2**e_hi`` (float64, exact)."""
        k = np.arange(self.n_magnitude + 1)
        e = self.e_lo + (k >> self.sub)
        frac = 1.0 + (k & ((1 << self.sub) - 1)) / float(1 << self.sub)
        return np.ldexp(frac, e)

    def edges(self) -> np.ndarray:
        """Edges of the finite bins on the real line (``n_bins`` values, +-inf at the ends)."""
        mag = self.magnitude_edges()
        if self.signed:
            return np.concatenate([[-np.inf], -mag[::-1], mag, [np.inf]])
        return np.concatenate([[-np.inf], mag, [np.inf]])

    def to_json(self) -> dict[str, Any]:
        """JSON-able form, stored as the attributes of ``/hist/<quantity>``."""
        return {"signed": self.signed, "e_lo": self.e_lo, "e_hi": self.e_hi, "sub": self.sub}


#: Default bins: signed quantities cover 2**-40 (9e-13) ... 2**16 (65536); the second moment
#: 2**-90 ... 2**20 (it is a square); the stepsize 2**-16 ... 2**60 (1/eps can be 1e8..1e16).
HIST_SPECS: dict[str, HistSpec] = {
    "grad": HistSpec(True, -40, 16),
    "exp_avg": HistSpec(True, -40, 16),
    "exp_avg_sq": HistSpec(False, -90, 20),
    "stepsize": HistSpec(False, -16, 60),
    "update": HistSpec(True, -40, 16),
    "param": HistSpec(True, -40, 16),
}


#: Bins of a quantity outside :data:`HIST_SPECS` (an optimizer state entry of unknown sign
#: and scale): signed, 2**-90 ... 2**20.
STATE_HIST_SPEC = HistSpec(True, -90, 20)


def hist_spec(quantity: str) -> HistSpec:
    """The default bins of a quantity (:data:`STATE_HIST_SPEC` for state entries)."""
    return HIST_SPECS.get(quantity, STATE_HIST_SPEC)


def check_quantity_name(name: str) -> None:
    """Raise ValueError unless ``name`` can name a quantity's datasets."""
    if not isinstance(name, str) or not name or "/" in name or name.endswith("_edges"):
        raise ValueError(f"invalid quantity name {name!r}")


@dataclass(frozen=True)
class LayerInfo:
    """One recorded parameter tensor.

    Attributes:
        name: qualified parameter name (``model.named_parameters()``).
        shape: the parameter's shape.
        group: index into ``optimizer.param_groups``.
        param_index: position of the parameter in the optimizer's parameter order.
        forward_rank: order of first use in the first forward pass (0 = nearest the input),
            -1 when the owning module never ran in a forward pass the recorder saw.
        optimizer: index of the optimizer that steps it (several optimizers: their param
            groups are numbered globally, in the order the optimizers were given).
    """

    name: str
    shape: tuple[int, ...]
    group: int
    param_index: int
    forward_rank: int = -1
    optimizer: int = 0

    @property
    def numel(self) -> int:
        """Number of coordinates (the layer size ``n``)."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class Layout:
    """Everything the writer needs to create all datasets up front (SWMR forbids later ones).

    Attributes:
        layers: the recorded layers, in column order.
        n_groups: number of optimizer parameter groups (columns of ``/lr``).
        quantities: quantities with statistics and histograms (core ones and state keys).
        sample_quantities: quantities whose fixed coordinate subsample is stored.
        sample_index: per layer, the sorted flat coordinate indices that are sampled.
        full_quantities: quantities stored as full tensors on the full-dump schedule.
        hist_specs: histogram bins per quantity.
        hparam_names: the numeric param-group entries recorded per row in
            ``/hparams/<name>`` (see :func:`hparam_values`).
    """

    layers: tuple[LayerInfo, ...]
    n_groups: int
    quantities: tuple[str, ...] = QUANTITIES
    sample_quantities: tuple[str, ...] = ("grad", "update", "stepsize")
    sample_index: tuple[np.ndarray, ...] = ()
    full_quantities: tuple[str, ...] = ()
    hist_specs: Mapping[str, HistSpec] = field(default_factory=lambda: dict(HIST_SPECS))
    hparam_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for q in self.quantities:
            check_quantity_name(q)
        unknown = set(self.sample_quantities) | set(self.full_quantities)
        unknown -= set(QUANTITIES)
        if unknown:
            raise ValueError(
                f"subsampled and full quantities must be core quantities {list(QUANTITIES)}, "
                f"got {sorted(unknown)}"
            )
        missing = [q for q in self.quantities if q not in self.hist_specs]
        if missing:
            specs = dict(self.hist_specs)
            specs.update({q: hist_spec(q) for q in missing})
            object.__setattr__(self, "hist_specs", specs)
        if self.sample_quantities and len(self.sample_index) != len(self.layers):
            raise ValueError("sample_index needs one index array per layer")

    @property
    def sample_counts(self) -> np.ndarray:
        """Number of sampled coordinates per layer."""
        if not self.sample_quantities:
            return np.zeros(len(self.layers), dtype=np.int64)
        return np.array([len(ix) for ix in self.sample_index], dtype=np.int64)

    @property
    def sample_offsets(self) -> np.ndarray:
        """Start column of each layer's samples in ``/samples/<quantity>``."""
        counts = self.sample_counts
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


@dataclass(frozen=True)
class SummaryRow:
    """One recorded step's summaries, as host arrays (the writer's unit of work).

    Attributes:
        step: the optimizer's own step number t (``state["step"]``, the largest over the
            layers; the recorder's count when no state has one), so a resumed run goes on
            counting where its checkpoint stopped.
        wall_time: seconds since the epoch.
        loss: the logged loss, NaN when none was given.
        lr: learning rate per parameter group, shape ``(G,)``.
        stats: per quantity, shape ``(L, len(STATS))``.
        cosine: per quantity in ``COSINE_QUANTITIES``, shape ``(L,)``.
        hist: per quantity, shape ``(L, n_bins)``; ``None`` on steps without histograms.
        recorder_step: the recorder's own count (1 = the first step it saw).
        layer_step: ``(L,)`` each layer's own t (-1: no step in its state).
        hparams: per name of ``Layout.hparam_names``, shape ``(G,)``.
        eps_dominated: ``(L,)`` eps-dominated coordinates (see :data:`EPS_MARGIN`), NaN
            where unknown.
    """

    step: int
    wall_time: float
    loss: float
    lr: np.ndarray
    stats: Mapping[str, np.ndarray]
    cosine: Mapping[str, np.ndarray]
    hist: Mapping[str, np.ndarray] | None = None
    recorder_step: int = 0
    layer_step: np.ndarray | None = None
    hparams: Mapping[str, np.ndarray] = field(default_factory=dict)
    eps_dominated: np.ndarray | None = None


def stat_index(stat: str, stats: Sequence[str] = STATS) -> int:
    """Column of ``stat`` in ``/stats/<quantity>`` (of a file whose columns are ``stats``)."""
    try:
        return tuple(stats).index(stat)
    except ValueError:
        raise KeyError(f"unknown statistic {stat!r}; known: {list(stats)}") from None


def hparam_values(group: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of one optimizer param group, flattened to names and floats.

    Numbers (and 0-d tensors, via ``float``) keep their key; bools become 0/1; numeric
    sequences give ``<key>.<i>`` (``betas.0``, ``betas.1``); ``params`` and anything
    else (strings, None, nested objects) are left out. These are the per-row columns of
    ``/hparams``: schedulers change them, and every analysis reads the layer's own group.
    """
    out: dict[str, float] = {}

    def number(v: Any) -> float | None:
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return float(v)
        if hasattr(v, "numel") and hasattr(v, "item") and v.numel() == 1:  # a 0-d tensor
            return float(v.item())
        return None

    for k, v in group.items():
        if k == "params" or "/" in str(k):
            continue
        x = number(v)
        if x is not None:
            out[str(k)] = x
        elif isinstance(v, (list, tuple)) and 0 < len(v) <= 16:
            xs = [number(e) for e in v]
            if all(e is not None for e in xs):
                for i, e in enumerate(xs):
                    out[f"{k}.{i}"] = e  # type: ignore[assignment]
    return out


def quantiles_from_histogram(
    counts: np.ndarray, spec: HistSpec, levels: Sequence[float] = QUANTILE_LEVELS
) -> np.ndarray:
    """Quantiles of the finite values from fixed-bin counts (exact to the bin).

    The q-quantile is located by rank ``q (n - 1)`` among the finite values (NumPy's
    "linear" rule) and interpolated linearly inside its bin; in an outer bin with an infinite
    edge the finite edge is returned. The result therefore lies in the same bin as the exact
    quantile.

    Args:
        counts: ``(..., n_bins)`` histogram counts, the non-finite bin last.
        spec: the bins.
        levels: quantile levels in [0, 1].

    Returns:
        ``(..., len(levels))`` float64; NaN where a histogram holds no finite value.
    """
    counts = np.asarray(counts, dtype=np.float64)[..., :-1]
    edges = spec.edges()
    lo_e = np.where(np.isfinite(edges[:-1]), edges[:-1], edges[1:])
    hi_e = np.where(np.isfinite(edges[1:]), edges[1:], edges[:-1])
    cum = np.cumsum(counts, axis=-1)
    total = cum[..., -1:]
    rank = np.asarray(levels, dtype=np.float64) * (total - 1.0)  # (..., k), 0-based rank
    # the bin holding the order statistic floor(rank): first bin whose cumulative count
    # exceeds the rank
    b = np.sum(cum[..., None, :] <= rank[..., :, None], axis=-1)
    b = np.minimum(b, counts.shape[-1] - 1)
    inbin = np.take_along_axis(counts, b, axis=-1)
    before = np.take_along_axis(cum, b, axis=-1) - inbin
    frac = np.clip((rank - before + 0.5) / np.maximum(inbin, 1.0), 0.0, 1.0)
    out = lo_e[b] + frac * (hi_e[b] - lo_e[b])
    return np.where(total > 0, out, np.nan)


def to_json(obj: Any) -> str:
    """JSON text of metadata; anything not JSON-able is stored as its ``repr``."""
    return json.dumps(obj, default=repr, sort_keys=True)
