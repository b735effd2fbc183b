"""Sharded recording: exact global per-layer statistics of DTensor (FSDP2) parameters.

Under FSDP2 (``torch.distributed.fsdp.fully_shard``) every parameter, gradient and
optimizer state is a ``DTensor`` of which each rank holds one slice. The recorder never
gathers a full tensor: every rank reduces its own slice (``DTensor.to_local()``) and ONE
collective per recorded step, an ``all_reduce(SUM)`` of a packed float64 buffer, gives
rank 0 everything it writes (docs/run-format.md, "FSDP2"). It is an all-reduce rather
than a reduce to rank 0 so that every rank also learns whether another one failed: a
rank's failure is a flag in the buffer, and all ranks stop recording at the same step
instead of one waiting in a collective the others never join. The buffer holds:

* **moments** -- each rank's rows ``[n, mean, M2, min, max, nonfinite]`` per quantity and
  layer (``M2`` the centred second moment of its finite coordinates) sit in that rank's
  own slot of the buffer, every other slot holding ``-0.0``. ``-0.0`` is the neutral
  element of IEEE addition (``x + -0.0 == x`` for every x, ``+0.0``, ``inf`` and NaN
  included), so the SUM delivers every rank's rows bit for bit: an all-gather of a few
  numbers per layer folded into the same collective. Rank 0 combines them with the
  K-group form of Chan, Golub & LeVeque's parallel update (:func:`combine_moments`), which
  has no cancellation, and takes min/max over the ranks that hold coordinates;
* **additive parts** -- fixed-bin histogram counts, zero and eps-dominated counts, the
  cosine numerators (inner products with the previous recorded value), the number of
  ranks holding each value, the loss sum and count: plain sums (counts are exact in
  float64 up to 2**53);
* **subsample** -- the fixed subsample is drawn on *global* flat indices; every rank puts
  the sampled coordinates it owns in their global slots, ``-0.0`` elsewhere: the SUM is
  the subsample, exactly.

The arithmetic that maps a rank's local element to its global flat index is
:func:`shard_box` (torch's ``Shard(d)`` chunking: ``ceil(size / n)`` per rank, the last
ones shorter or empty; several mesh dims nest) and :func:`global_flat_index`. A
``Replicate`` mesh dim is counted once: only the ranks at coordinate 0 along it
contribute. ``Partial`` placements (pending reductions) are refused.

Ranks other than 0 write nothing: their recorder holds a :class:`NullWriter`.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gradscope.errors import GradscopeError, UnsupportedLayerError
from gradscope.record import summaries as sm
from gradscope.runfile import schema as S

#: Columns of a rank's moment row, the slot it fills in the reduced buffer.
ROW = ("n", "mean", "m2", "min", "max", "nonfinite")

__all__ = [
    "ROW",
    "NullWriter",
    "RanksStopped",
    "ShardBox",
    "ShardedRecording",
    "combine_moments",
    "global_flat_index",
    "is_dtensor",
    "local_rows",
    "shard_box",
]


def is_dtensor(x: Any) -> bool:
    """Whether ``x`` (or its ``.data``) is a ``torch.distributed.tensor.DTensor``."""
    return type(x).__name__ == "DTensor" or type(getattr(x, "data", None)).__name__ == "DTensor"


def _local(x: Any) -> torch.Tensor:
    """The local slice of a DTensor; any other tensor as it is."""
    return x.to_local() if type(x).__name__ == "DTensor" else x


# ---------------------------------------------------------------------- index arithmetic
@dataclass(frozen=True)
class ShardBox:
    """The block of a global tensor one rank holds: ``offset`` and ``shape`` per dim.

    ``owner`` is false on a rank whose block is a replica another rank already counts
    (coordinate != 0 along a ``Replicate`` mesh dim): it contributes nothing.
    """

    global_shape: tuple[int, ...]
    offset: tuple[int, ...]
    shape: tuple[int, ...]
    owner: bool

    @property
    def numel(self) -> int:
        """Coordinates this rank contributes (0 for a non-owner or an empty slice)."""
        return math.prod(self.shape) if self.owner else 0


def shard_box(
    global_shape: Sequence[int],
    mesh_shape: Sequence[int],
    coordinate: Sequence[int],
    placements: Sequence[Any],
) -> ShardBox:
    """The block of ``global_shape`` held at mesh ``coordinate`` under ``placements``.

    Mesh dims are applied in order (torch's convention): ``Shard(d)`` on a mesh dim of
    size ``k`` splits the current extent ``s`` of tensor dim ``d`` into chunks of
    ``ceil(s / k)``; chunk ``i`` is ``[min(i c, s), min((i + 1) c, s))``, so trailing ranks
    may hold fewer rows or none. ``Replicate()`` keeps the block; only coordinate 0 along
    that mesh dim owns it. ``Partial`` raises.

    Args:
        global_shape: the full tensor's shape.
        mesh_shape: the device mesh's shape.
        coordinate: this rank's coordinate on the mesh.
        placements: one placement per mesh dim (``Shard``, ``Replicate``).

    Returns:
        The :class:`ShardBox`.

    Raises:
        UnsupportedLayerError: a ``Partial`` or unknown placement.
    """
    shape = list(global_shape)
    offset = [0] * len(shape)
    owner = True
    for k, i, p in zip(mesh_shape, coordinate, placements):
        kind = type(p).__name__
        if kind == "Replicate":
            owner = owner and i == 0
        elif kind == "Shard" and hasattr(p, "dim"):
            d = p.dim % max(len(shape), 1)
            s = shape[d]
            c = -(-s // k)  # ceil
            lo, hi = min(i * c, s), min((i + 1) * c, s)
            offset[d] += lo
            shape[d] = hi - lo
        else:
            raise UnsupportedLayerError(
                f"DTensor placement {p!r} is not supported (Shard(d) and Replicate are)"
            )
    return ShardBox(tuple(global_shape), tuple(offset), tuple(shape), owner)


def global_flat_index(box: ShardBox) -> np.ndarray:
    """Global row-major flat index of every local element of ``box``, in local order.

    The local slice is the contiguous row-major block ``box.shape`` at ``box.offset``, so
    local element ``(j_0, ..., j_k)`` is global ``(offset_0 + j_0, ...)``; int64.
    """
    if not box.shape:
        return np.zeros(1, dtype=np.int64)
    axes = [np.arange(o, o + s, dtype=np.int64) for o, s in zip(box.offset, box.shape)]
    strides = np.cumprod((1, *box.global_shape[:0:-1]), dtype=np.int64)[::-1]
    out = np.zeros(box.shape, dtype=np.int64)
    for d, (ax, st) in enumerate(zip(axes, strides)):
        shape = [1] * len(box.shape)
        shape[d] = -1
        out = out + (ax * st).reshape(shape)
    return out.reshape(-1)


def owned_samples(box: ShardBox, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the sorted global flat ``index`` this rank owns, and where they are locally.

    Returns:
        ``(positions in index, local flat indices)``, both int64 (empty for a non-owner).
    """
    if not box.owner or box.numel == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if not box.shape:
        return np.arange(index.size, dtype=np.int64), np.zeros(index.size, dtype=np.int64)
    multi = np.unravel_index(index, box.global_shape)
    inside = np.ones(index.size, dtype=bool)
    for m, o, s in zip(multi, box.offset, box.shape):
        inside &= (m >= o) & (m < o + s)
    pos = np.nonzero(inside)[0]
    local = np.ravel_multi_index(
        tuple(m[pos] - o for m, o in zip(multi, box.offset)), box.shape
    ).astype(np.int64)
    return pos.astype(np.int64), local


def _box_of(x: Any, mesh_shape: Sequence[int], coordinate: Sequence[int]) -> ShardBox:
    """The :class:`ShardBox` of a DTensor on this rank, checked against its local shape."""
    box = shard_box(tuple(x.shape), mesh_shape, coordinate, x.placements)
    local = tuple(x.to_local().shape)
    if local != box.shape:
        raise UnsupportedLayerError(
            f"DTensor of shape {tuple(x.shape)} with placements {x.placements}: local shape "
            f"{local}, expected {box.shape} from torch's Shard chunking (uneven sharding "
            "other than torch's default is not supported)"
        )
    return box


# ---------------------------------------------------------------------- moments
def local_rows(raw: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:data:`ROW` rows from :func:`gradscope.record.summaries.raw_moments` rows.

    With ``m1 = S1 / n``: ``mean = c + m1``, ``M2 = S2 - n m1**2`` (the shift is within
    float32 rounding of the mean, so nothing cancels). ``n == 0`` gives an empty row
    ``[0, 0, 0, inf, -inf, 0]``; a non-finite row is left for the caller to redo.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(sm.RAW))
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    out = np.zeros((n.size, len(ROW)))
    out[:, 3], out[:, 4] = np.inf, -np.inf
    ok = n > 0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m1 = raw[ok, 1] / n[ok]
        out[ok, 0] = n[ok]
        out[ok, 1] = raw[ok, 0] + m1
        out[ok, 2] = np.maximum(raw[ok, 2] - n[ok] * m1 * m1, 0.0)
        out[ok, 3] = raw[ok, 3]
        out[ok, 4] = raw[ok, 4]
    return out


def finite_row(x: torch.Tensor, n: int) -> np.ndarray:
    """The :data:`ROW` row of a local value over its finite coordinates (the slow path)."""
    f = x.detach().double().reshape(-1)
    if x.dim() == 0:
        f = f.expand(n)
    g = f[torch.isfinite(f)].cpu().numpy()
    row = np.array([g.size, 0.0, 0.0, np.inf, -np.inf, n - g.size], dtype=np.float64)
    if g.size:
        mean = g.mean()
        row[1:5] = mean, float(np.sum((g - mean) ** 2)), g.min(), g.max()
    return row


def combine_moments(rows: np.ndarray) -> np.ndarray:
    """Global ``[mean, std, norm, min, max, nonfinite]`` from per-rank :data:`ROW` rows.

    The K-group form of the parallel update of Chan, Golub & LeVeque ("Algorithms for
    computing the sample variance: analysis and recommendations"): with ``n = sum n_r``
    and ``mean = sum n_r mean_r / n``, ``M2 = sum M2_r + sum n_r (mean_r - mean)**2``;
    every term is non-negative, so nothing cancels. ``std = sqrt(M2 / n)`` (population),
    ``norm = sqrt(M2 + n mean**2)``, ``nonfinite`` is the fraction of non-finite
    coordinates. Groups with no finite coordinate are ignored; none at all gives NaN
    moments.

    Args:
        rows: ``(R, ..., 6)`` float64, the rank axis first.

    Returns:
        ``(..., 6)`` float64.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n_r, mean_r, m2_r = rows[..., 0], rows[..., 1], rows[..., 2]
    n = n_r.sum(axis=0)
    has = n_r > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(has, n_r * mean_r, 0.0).sum(axis=0) / n
        dev = np.where(has, n_r * (mean_r - mean) ** 2, 0.0).sum(axis=0)
        m2 = np.where(has, m2_r, 0.0).sum(axis=0) + dev
        lo = np.where(has, rows[..., 3], np.inf).min(axis=0)
        hi = np.where(has, rows[..., 4], -np.inf).max(axis=0)
        total = n + rows[..., 5].sum(axis=0)
        out = np.stack(
            [
                mean,
                np.sqrt(m2 / n),
                np.sqrt(m2 + n * mean * mean),
                lo,
                hi,
                rows[..., 5].sum(axis=0) / total,
            ],
            axis=-1,
        )
    out[n == 0, :5] = np.nan
    return out


class RanksStopped(GradscopeError):
    """Every rank stops recording at this step (a rank failed, or the reduction did)."""


# ---------------------------------------------------------------------- writer stand-in
class NullWriter:
    """The writer of a rank that writes nothing (every rank but 0 under sharding)."""

    def write_summary(self, *args: Any, **kwargs: Any) -> None:
        """Nothing (rank 0 writes)."""

    def write_samples(self, *args: Any, **kwargs: Any) -> None:
        """Nothing (rank 0 writes)."""

    def write_full(self, *args: Any, **kwargs: Any) -> None:
        """Nothing (rank 0 writes)."""

    def write_examplewise(self, *args: Any, **kwargs: Any) -> None:
        """Nothing (rank 0 writes)."""

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""


# ---------------------------------------------------------------------- the recording
class ShardedRecording:
    """The recorder's sharded path: local reductions, one collective, rank 0 writes.

    Created by :meth:`create` when any recorded parameter is a DTensor. The recorder hands
    it each recorded step's values (:meth:`record`); it reads the recorder's layout
    (layers, quantities, histogram bins, subsample indices, eps thresholds) and writes
    through the recorder's writer (a :class:`NullWriter` off rank 0).

    Args:
        params: the recorded parameters, in the recorder's optimizer order.
        timeout: seconds the collective may wait for the other ranks before recording
            stops on this rank (a dead or stalled rank never hangs training forever).
    """

    def __init__(self, params: Sequence[Any], timeout: float) -> None:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            raise UnsupportedLayerError(
                "DTensor parameters need torch.distributed to be initialised"
            )
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.timeout = float(timeout)
        meshes = {id(p.device_mesh): p.device_mesh for p in params if is_dtensor(p)}
        problems = []
        self._boxes: list[ShardBox] = []
        for p in params:
            if is_dtensor(p):
                mesh = p.device_mesh
                if mesh.size() != self.world:
                    problems.append(
                        f"device mesh of {mesh.size()} ranks (the recorder reduces over "
                        f"all {self.world})"
                    )
                    continue
                coord = mesh.get_coordinate()
                try:
                    self._boxes.append(_box_of(p, mesh.shape, coord))
                except UnsupportedLayerError as exc:
                    problems.append(str(exc))
            else:  # a plain parameter next to sharded ones: replicated, counted on rank 0
                shape = tuple(p.shape)
                self._boxes.append(ShardBox(shape, (0,) * len(shape), shape, self.rank == 0))
        if problems:
            raise UnsupportedLayerError("cannot record sharded parameters: " + "; ".join(problems))
        self._mesh = next(iter(meshes.values()))
        backend = str(dist.get_backend())
        self._comm_device = (
            torch.device("cpu")
            if "gloo" in backend or not torch.cuda.is_available()
            else torch.device("cuda", torch.cuda.current_device())
        )
        self._index = {id(p): k for k, p in enumerate(params)}
        self._params = list(params)
        self._ready = False
        #: a local failure not yet announced to the other ranks (see :meth:`defer`)
        self.pending: BaseException | None = None
        #: seconds spent in the collective per recorded step (the last one)
        self.last_collective_s = float("nan")
        #: bytes of the reduced buffer (the last one)
        self.last_bytes = 0

    @classmethod
    def create(
        cls, params: Sequence[torch.Tensor], per_rank: bool, timeout: float
    ) -> ShardedRecording | None:
        """The sharded path when any of ``params`` is a DTensor, else ``None``."""
        if not any(is_dtensor(p) for p in params):
            return None
        if per_rank:
            raise UnsupportedLayerError(
                "per_rank=True with sharded DTensor parameters is not supported: rank 0 "
                "writes the global statistics of every layer"
            )
        return cls(params, timeout)

    def describe(self, layers: Sequence[Any]) -> dict[str, Any]:
        """The ``sharding`` metadata: mesh, each layer's placements, what is reduced."""
        by_index = {k: p for k, p in enumerate(self._params)}
        return {
            "mesh_shape": list(self._mesh.shape),
            "placements": {
                layer.name: [
                    repr(pl) for pl in getattr(by_index[layer.param_index], "placements", ())
                ]
                for layer in layers
            },
            "collective": "one all_reduce(SUM) of a float64 buffer per recorded step: each "
            "rank's [n, mean, M2, min, max, nonfinite] rows in its own slot (-0.0 elsewhere), "
            "histogram and zero counts, cosine numerators, the subsample in global slots",
            "combine": "Chan, Golub & LeVeque's parallel update over the ranks' rows",
        }

    # ------------------------------------------------------------------ layout
    def _setup(self, rec: Any) -> None:
        """Per column: this rank's box, contributed size, owned subsample positions."""
        boxes = [self._boxes[self._index[id(p)]] for p in rec._layer_params]
        self._col_box = boxes
        self._n_local = [b.numel for b in boxes]
        index = rec._layout.sample_index  # () when no quantity is subsampled
        self._samples = [owned_samples(b, ix) for b, ix in zip(boxes, index)]
        dev = rec._params[0].device
        self._sample_local = [torch.as_tensor(loc, device=dev) for _, loc in self._samples]
        self._sample_len = [ix.size for ix in index]
        self._prev: dict[str, list[torch.Tensor | None]] = {
            q: [None] * len(boxes) for q in rec.cosine_quantities
        }
        self._prev_norm = {q: np.full(len(boxes), np.nan) for q in rec.cosine_quantities}
        self._hist = sm.Histogrammer()
        self._scratch = sm.Scratch()
        self._ready = True

    def _size(self, rec: Any, c: int, v: Any) -> tuple[torch.Tensor, int]:
        """The local slice of one layer value and the coordinates it contributes."""
        if v.dim() == 0 and not is_dtensor(v):
            return v, self._n_local[c]  # one value for each of the layer's coordinates
        if is_dtensor(v):
            box = (
                self._col_box[c]
                if tuple(v.shape) == self._col_box[c].global_shape
                and tuple(v.placements) == tuple(getattr(rec._layer_params[c], "placements", ()))
                else _box_of(v, v.device_mesh.shape, v.device_mesh.get_coordinate())
            )
            return v.to_local(), box.numel
        # a plain tensor next to sharded ones: replicated, counted on rank 0
        return v, v.numel() if self.rank == 0 else 0

    # ------------------------------------------------------------------ failures
    def defer(self, exc: BaseException) -> bool:
        """Keep a local recording failure for the next reduction instead of stopping now.

        A rank that stopped on its own would leave the others waiting in a collective it
        never joins (and pair their next collectives with FSDP's): instead it keeps
        taking part, flags the failure in the next reduced buffer, and every rank stops
        at that step. ``False`` for errors that are already shared (or the reduction
        itself failing): the recorder stops at once.
        """
        if isinstance(exc, RanksStopped) or not self._ready:
            return False
        if self.pending is None:
            self.pending = exc
        return True

    def open_writer(self, make: Any) -> Any:
        """``make()`` (rank 0's run writer); a failure is deferred to the first reduction."""
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - announced to every rank, then raised
            self.pending = self.pending or exc
            return NullWriter()

    # ------------------------------------------------------------------ one step
    def record(
        self,
        rec: Any,
        plan: Any,
        values: dict[str, list[Any]],
        loss: torch.Tensor | float | None,
    ) -> None:
        """Reduce this rank's slices, combine across ranks, and (on rank 0) write the row.

        Every rank joins the one ``all_reduce`` whatever happened locally: the buffer's
        layout follows from the recorder's layout and the plan alone, and a local failure
        is a flag in it, so all ranks stop recording at the same step.

        Raises:
            RanksStopped: a rank flagged a failure, the ranks' layer orders differ, or the
                reduction failed or timed out.
        """
        if not self._ready:
            self._setup(rec)
        layout, size = self._layout(rec, plan)
        buf = np.full(size, -0.0)
        out: dict[str, dict[str, np.ndarray]] = {}
        if self.pending is None:
            try:
                out = self._reduce_local(rec, plan, values, loss)
                self._pack(rec, plan, out, values, loss, buf, layout)
            except Exception as exc:  # noqa: BLE001 - announced below, raised after
                self.pending = exc
                buf[:] = -0.0
        a, _ = layout["failed"]
        buf[a + self.rank] = 0.0 if self.pending is None else 1.0
        total = self._all_reduce(buf)
        failed = np.nonzero(total[slice(*layout["failed"])] > 0)[0]
        cols = total[slice(*layout["cols"])].reshape(self.world, -1)
        if failed.size or self.pending is not None:
            own, self.pending = self.pending, None
            who = ", ".join(map(str, failed))
            if own is not None:
                raise RanksStopped(
                    f"rank {self.rank}: {type(own).__name__}: {own}; every rank stops "
                    "recording at this step"
                ) from own
            raise RanksStopped(f"rank(s) {who} stopped recording; every rank stops at this step")
        if not (cols == cols[0]).all():
            raise RanksStopped("the ranks order the layers differently: cannot combine them")
        if self.rank != 0:
            return
        got = {key: total[a:b] for key, (a, b) in layout.items()}
        try:
            layer_step = rec._layer_steps(out.get("lstep", {}).get(""))
            known = layer_step[(layer_step >= 0) & rec._first_opt_cols]
            if not known.size:
                known = layer_step[layer_step >= 0]
            t = int(known.max()) if known.size else rec._step
            if plan.summary:
                self._write_summary(rec, plan, got, loss, t, layer_step)
            if plan.samples:
                rec._writer.write_samples(
                    t, {q: got[f"samples/{q}"].astype(np.float32) for q in rec.sample_quantities}
                )
        except Exception as exc:  # noqa: BLE001 - a write failure: announced at the next step
            self.pending = exc

    def _all_reduce(self, buf: np.ndarray) -> np.ndarray:
        """SUM of every rank's buffer, on every rank, within :attr:`timeout` seconds."""
        dist = torch.distributed
        t0 = time.perf_counter()
        tensor = torch.from_numpy(buf).to(self._comm_device)
        try:
            work = dist.all_reduce(tensor, op=dist.ReduceOp.SUM, async_op=True)
            if work is None or work.wait(timeout=datetime.timedelta(seconds=self.timeout)) is False:
                raise TimeoutError(f"not finished in {self.timeout:g} s")
        except Exception as exc:  # a dead or stalled rank
            raise RanksStopped(
                f"the ranks' reduction failed ({type(exc).__name__}: {exc}); recording stops"
            ) from exc
        self.last_collective_s = time.perf_counter() - t0
        self.last_bytes = buf.nbytes
        return tensor.cpu().numpy()

    def _layout(self, rec: Any, plan: Any) -> tuple[dict[str, tuple[int, int]], int]:
        """Where each part lies in the reduced buffer: a function of the layout and plan."""
        qs = rec.quantities
        n_layers = len(rec._n)
        sizes: list[tuple[str, int]] = [
            ("failed", self.world),
            ("cols", self.world * n_layers),
        ]
        if plan.summary:
            sizes += [("rows", self.world * len(qs) * n_layers * len(ROW)),
                      ("present", len(qs) * n_layers)]  # fmt: skip
            sizes += [(f"dot/{q}", n_layers) for q in rec.cosine_quantities]
            if plan.hist:
                sizes += [(f"hist/{q}", n_layers * rec._layout.hist_specs[q].n_bins) for q in qs]
                sizes += [(f"zeros/{q}", n_layers) for q in S.ZERO_COUNTED if q in qs]
                if "stepsize" in qs:
                    sizes.append(("epsdom", n_layers))
            sizes.append(("loss", 2))
        if plan.samples:
            sizes += [(f"samples/{q}", sum(self._sample_len)) for q in rec.sample_quantities]
        layout, pos = {}, 0
        for key, k in sizes:
            layout[key] = (pos, pos + k)
            pos += k
        return layout, pos

    def _reduce_local(
        self,
        rec: Any,
        plan: Any,
        values: dict[str, list[Any]],
        loss: torch.Tensor | float | None,
    ) -> dict[str, dict[str, np.ndarray]]:
        """This rank's reductions of its slices, copied to the host at once."""
        qs = rec.quantities
        n_layers = len(rec._n)
        device = rec._params[0].device
        local = {
            q: [None if v is None else self._size(rec, c, v) for c, v in enumerate(values[q])]
            for q in qs
        }
        batch = sm.HostBatch()
        put = batch.put
        f64 = {"dtype": torch.float64, "device": device}
        if plan.summary:
            for q in qs:
                raw = torch.zeros(n_layers, len(sm.RAW), **f64)
                for c, item in enumerate(local[q]):
                    if item is not None and item[1] > 0:
                        sm.raw_moments(item[0], item[1], out=raw[c], scratch=self._scratch)
                put("raw", q, raw)
            for q in rec.cosine_quantities:
                put("dot", q, self._dots(q, local[q], device))
            if plan.hist:
                for q in qs:
                    spec = rec._layout.hist_specs[q]
                    rows = [
                        self._hist(it[0], it[1], spec)
                        if it is not None and it[1] > 0
                        else torch.zeros(spec.n_bins, dtype=torch.int64, device=device)
                        for it in local[q]
                    ]
                    put("hist", q, torch.stack(rows))
                for q in S.ZERO_COUNTED:
                    if q in qs:
                        put("zeros", q, self._count(local[q], sm.count_zeros, device))
                if "stepsize" in qs:
                    put("epsdom", "", self._epsdom(rec, local["stepsize"], device))
            if isinstance(loss, torch.Tensor):
                put("loss", "", loss.reshape(-1)[:1])
        lsteps = rec._layer_step_tensors()
        if lsteps is not None:
            put("lstep", "", lsteps)
        if plan.samples:
            for q in rec.sample_quantities:
                cols = []
                for c, v in enumerate(values[q]):
                    li = self._sample_local[c]
                    if v is None:
                        cols.append(torch.full((li.numel(),), float("nan"), device=device))
                    else:
                        cols.append(sm.gather(_local(v), li))
                put("samples", q, torch.cat(cols) if cols else torch.zeros(0, device=device))
        self._local_items = local
        return batch.fetch()  # one local copy

    def _dots(self, q: str, items: list[Any], device: torch.device) -> torch.Tensor:
        """This rank's part of each layer's inner product with its previous recorded value."""
        out = torch.full((len(items),), float("nan"), dtype=torch.float64, device=device)
        prev = self._prev[q]
        for c, item in enumerate(items):
            if item is None:
                prev[c] = None
                continue
            v, n = item
            if n == 0:
                out[c] = 0.0
                prev[c] = torch.zeros(0, dtype=torch.float32, device=device)
                continue
            f = sm.flat32(v.expand(n) if v.dim() == 0 else v)
            before = prev[c]
            if before is not None and before.numel() == f.numel():
                out[c] = torch.dot(f, before).double()
                before.copy_(f)
            else:
                prev[c] = f.clone()
        return out

    def _count(self, items: list[Any], count: Any, device: torch.device) -> torch.Tensor:
        zero = torch.zeros((), dtype=torch.float64, device=device)
        return torch.stack(
            [
                zero if it is None or it[1] == 0 else count(it[0], it[1]).to(torch.float64)
                for it in items
            ]
        )

    def _epsdom(self, rec: Any, items: list[Any], device: torch.device) -> torch.Tensor:
        zero = torch.zeros((), dtype=torch.float64, device=device)
        out = []
        for c, it in enumerate(items):
            thr = rec._eps_threshold[c]
            if it is None or it[1] == 0 or thr is None:
                out.append(zero)
            else:
                out.append(sm.count_at_least(it[0], it[1], thr).to(torch.float64))
        return torch.stack(out)

    def _pack(
        self,
        rec: Any,
        plan: Any,
        out: dict[str, dict[str, np.ndarray]],
        values: dict[str, list[Any]],
        loss: torch.Tensor | float | None,
        buf: np.ndarray,
        layout: dict[str, tuple[int, int]],
    ) -> None:
        """Fill this rank's parts of ``buf`` (its slots, its additive parts, its samples)."""
        qs = rec.quantities
        n_layers = len(rec._n)
        local = self._local_items

        def view(key: str) -> np.ndarray:
            a, b = layout[key]
            return buf[a:b]

        cols = view("cols").reshape(self.world, n_layers)
        cols[self.rank] = [layer.param_index for layer in rec._layout.layers]
        if plan.summary:
            rows = np.zeros((len(qs), n_layers, len(ROW)))
            present = view("present").reshape(len(qs), n_layers)
            for k, q in enumerate(qs):
                n = np.array([0 if it is None else it[1] for it in local[q]], dtype=np.float64)
                rows[k] = local_rows(out["raw"][q], n)
                present[k] = [it is not None for it in local[q]]
                bad = np.nonzero((n > 0) & ~np.isfinite(rows[k]).all(axis=1))[0]
                for c in bad:  # rare: non-finite coordinates; one more transfer
                    item = local[q][c]
                    if item is not None:
                        rows[k, c] = finite_row(*item)
            view("rows").reshape(self.world, -1)[self.rank] = rows.reshape(-1)
            for q in rec.cosine_quantities:
                view(f"dot/{q}")[:] = out["dot"][q]
            if plan.hist:
                for q in qs:
                    view(f"hist/{q}")[:] = out["hist"][q]
                for q in out.get("zeros", {}):
                    view(f"zeros/{q}")[:] = out["zeros"][q]
                if "epsdom" in out:
                    view("epsdom")[:] = out["epsdom"][""]
            if isinstance(loss, torch.Tensor):
                lv = float(out["loss"][""][0])
            else:
                lv = float("nan") if loss is None else float(loss)
            view("loss")[:] = (0.0, 0.0) if math.isnan(lv) else (lv, 1.0)
        if plan.samples:
            for q in rec.sample_quantities:
                vec = view(f"samples/{q}")
                got = out["samples"][q]
                start, k = 0, 0
                for c, (posn, _loc) in enumerate(self._samples):
                    m = posn.size
                    vec[start + posn] = got[k : k + m]
                    start += self._sample_len[c]
                    k += m

    def _write_summary(
        self,
        rec: Any,
        plan: Any,
        got: dict[str, np.ndarray],
        loss: torch.Tensor | float | None,
        t: int,
        layer_step: np.ndarray,
    ) -> None:
        """Rank 0: the row's statistics from the reduced buffer, written as one row."""
        qs = rec.quantities
        n_layers = len(rec._n)
        n_mom = len(sm.MOMENTS)
        rows = got["rows"].reshape(self.world, len(qs), n_layers, len(ROW))
        moments = combine_moments(rows)
        present = got["present"].reshape(len(qs), n_layers) > 0
        stats: dict[str, np.ndarray] = {}
        for k, q in enumerate(qs):
            st = np.full((n_layers, len(S.STATS)), np.nan)
            st[present[k], : n_mom + 1] = moments[k][present[k]]
            stats[q] = st
        hist: dict[str, np.ndarray] | None = None
        if plan.hist:
            hist = {}
            for q in qs:
                spec = rec._layout.hist_specs[q]
                h = np.rint(got[f"hist/{q}"]).astype(np.int64).reshape(n_layers, spec.n_bins)
                hist[q] = h
                has = ~np.isnan(stats[q][:, 0]) | (h.sum(axis=1) > 0)
                levels = S.quantiles_from_histogram(h, spec)
                stats[q][has, n_mom + 1 : n_mom + 1 + len(S.QUANTILE_STATS)] = levels[has]
            zeros_col = S.STATS.index("zeros")
            k_of = {q: k for k, q in enumerate(qs)}
            for q in S.ZERO_COUNTED:
                if f"zeros/{q}" in got:
                    z = got[f"zeros/{q}"].copy()
                    z[~present[k_of[q]]] = np.nan
                    stats[q][:, zeros_col] = z
        cosine = {}
        for q in S.COSINE_QUANTITIES:
            if q not in qs:
                continue
            if q in rec.cosine_quantities:
                norm = stats[q][:, 2]
                with np.errstate(invalid="ignore", divide="ignore"):
                    cosine[q] = got[f"dot/{q}"] / (norm * self._prev_norm[q])
                self._prev_norm[q] = norm.copy()
            else:
                cosine[q] = np.full(n_layers, np.nan)
        eps_dominated = None
        if "epsdom" in got:
            eps_dominated = got["epsdom"].copy()
            no_thr = np.array([thr is None for thr in rec._eps_threshold])
            k = qs.index("stepsize")
            eps_dominated[no_thr | ~present[k]] = np.nan
        loss_sum, n_loss = got["loss"]
        groups = rec._groups_all
        per_group = [S.hparam_values(g) for g in groups]
        rec._writer.write_summary(
            S.SummaryRow(
                step=t,
                recorder_step=rec._step,
                layer_step=layer_step,
                hparams={
                    k: np.array([h.get(k, np.nan) for h in per_group], dtype=np.float64)
                    for k in rec._layout.hparam_names
                },
                eps_dominated=eps_dominated,
                wall_time=time.time(),
                loss=float(loss_sum / n_loss) if n_loss > 0 else float("nan"),
                lr=np.array([_float(g.get("lr", np.nan)) for g in groups], dtype=np.float64),
                stats=stats,
                cosine=cosine,
                hist=hist,
            )
        )


def _float(x: Any) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)
