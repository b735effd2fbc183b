"""The per-step reduction of a recorded step: layer values in, host arrays out.

:class:`StepReducer` is the part of the recorder that does arithmetic. The
:class:`~gradscope.record.recorder.Recorder` (hooks, lifecycle, schedules, the writer) hands
it, once per recorded step, each quantity's per-layer values as the optimizer left them; the
reducer computes every statistic on the values' device into preallocated tables, copies
everything to the host in **one** transfer, and turns the copied sums into the row's
statistics, histograms and cosines (:meth:`StepReducer.summarize`). It holds no hooks and no
file, so it can be tested and timed on plain tensors (``tests/test_record/test_reducer.py``,
``benchmarks/recorder_overhead.py``).

Its column layout is frozen at construction (:class:`ReducerLayout`): layer sizes, which
layers are reduced together (the small ones, by segmented reductions), which quantities have
cosines, histograms and subsamples. Large layers take one of two moment kernels:

* ``eager`` (the reference): :func:`~gradscope.record.summaries.raw_moments`, a float32
  pass for the shift and float64 chunks for the shifted sums;
* ``compiled``: :func:`~gradscope.record.summaries.fused_moments`, one generated pass over
  the float32 data (sum and sum of squares about a shift, in float64, and min/max; for
  cosine quantities also the inner product with the previous value and its copy), and
  :func:`~gradscope.record.summaries.fused_moments_many`, the same for all of a layer's
  full float32 values in one call (a compiled call costs ~0.1 ms on the CPU). Its shift
  is the layer's mean at the previous recorded step (its first coordinate at the first), so
  no pass is spent on it; a shift far from the mean is caught on the host and the layer is
  recomputed exactly (:func:`~gradscope.record.summaries.finalize_moments`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from gradscope.errors import GradscopeError
from gradscope.record import summaries as sm
from gradscope.runfile import schema as S

#: Layers of at most this many coordinates are reduced together (segmented reductions) on
#: the eager path, where a per-layer reduction costs a few calls per layer.
SMALL_LAYER = 1 << 16
#: The same bound on the compiled path: one call per layer value there, and the CPU's
#: segmented sums (~15 ns a coordinate) lose to it above a few thousand coordinates.
SMALL_LAYER_COMPILED = 1 << 12
#: ``reduce="auto"`` compiles the large-layer kernel on the CPU when the large layers hold
#: at least this many coordinates: below it the eager path costs less than the compile.
AUTO_COMPILE_MIN = 1 << 20
_N_MOMENTS = len(sm.MOMENTS)

Backend = Literal["auto", "eager", "compiled"]


@dataclass(frozen=True)
class ReducerLayout:
    """The frozen column layout of a run's per-step reductions.

    Args:
        n: coordinates of each layer (column), in column order.
        shapes: each layer's parameter shape.
        quantities: quantities with statistics (and histograms on histogram rows).
        cosine_quantities: quantities whose cosine to the previous recorded value is kept.
        sample_quantities: quantities whose fixed subsample is gathered.
        hist_specs: histogram bins of each quantity.
        eps_threshold: per layer, the stepsize at or above which eps decides it
            (``None``: no eps in the layer's group).
        small_max: layers of at most this many coordinates are reduced together.
    """

    n: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]
    quantities: tuple[str, ...]
    cosine_quantities: tuple[str, ...]
    sample_quantities: tuple[str, ...]
    hist_specs: Mapping[str, S.HistSpec]
    eps_threshold: tuple[float | None, ...]
    small_max: int = SMALL_LAYER

    @property
    def n_layers(self) -> int:
        """Number of layers (columns)."""
        return len(self.n)

    @property
    def small_cols(self) -> tuple[int, ...]:
        """Columns reduced together by segmented reductions (at least two small layers)."""
        small = tuple(c for c, k in enumerate(self.n) if k <= self.small_max)
        return small if len(small) >= 2 else ()


@dataclass(frozen=True)
class StepPlan:
    """What one recorded step computes: statistics, histograms, subsamples."""

    summary: bool
    hist: bool
    samples: bool


@dataclass
class StepSummary:
    """The host side of one summary row (before the writer's :class:`~S.SummaryRow`).

    Attributes:
        stats: per quantity, ``(L, len(STATS))`` float64 statistics.
        hist: per quantity, ``(L, n_bins)`` int64 counts (``None`` on rows without).
        cosine: per cosine quantity, ``(L,)`` cosine to the previous recorded value.
        eps_dominated: per layer, coordinates whose stepsize eps decides (histogram rows).
        loss: the loss the device held (NaN when it was not on the device).
    """

    stats: dict[str, np.ndarray]
    hist: dict[str, np.ndarray] | None
    cosine: dict[str, np.ndarray]
    eps_dominated: np.ndarray | None
    loss: float


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` unless ``backend`` is ``"auto"``, ``"eager"`` or ``"compiled"``."""
    if backend not in ("auto", "eager", "compiled"):
        raise ValueError(f"reduce must be 'auto', 'eager' or 'compiled', got {backend!r}")


def resolve_backend(backend: Backend, n: Sequence[int], device: torch.device) -> bool:
    """Whether the large layers take the compiled kernel (see :data:`AUTO_COMPILE_MIN`).

    ``"compiled"``: yes, or :class:`~gradscope.errors.GradscopeError` with the reason when
    the trial compile fails; ``"eager"``: no; ``"auto"``: on the CPU when the large layers
    are big enough for the compile to pay and the compile works here (inductor needs a C++
    compiler; without one the eager path is used and a warning says why).
    """
    check_backend(backend)
    if backend == "eager":
        return False
    if backend == "compiled":
        if not sm.fused_available(device):
            why = sm.fused_unavailable_reason(device)
            raise GradscopeError(f"reduce='compiled': torch.compile failed on {device.type}: {why}")
        return True
    big = sum(k for k in n if k > SMALL_LAYER)
    return device.type == "cpu" and big >= AUTO_COMPILE_MIN and sm.fused_available(device)


class StepReducer:
    """Every per-step reduction of a run, on the parameters' device, into one host copy.

    Args:
        layout: the frozen column layout.
        device: where the layer values live.
        sample_index: per layer, the flat coordinates of its subsample (int64 on ``device``).
        compiled: large layers take the compiled one-pass kernel (:func:`resolve_backend`).
    """

    def __init__(
        self,
        layout: ReducerLayout,
        device: torch.device,
        sample_index: Sequence[torch.Tensor] = (),
        compiled: bool = False,
    ) -> None:
        self.layout = layout
        self.device = device
        self.compiled = compiled
        self._sample_idx = list(sample_index)
        n_layers = layout.n_layers
        f32 = {"dtype": torch.float32, "device": device}
        f64 = {"dtype": torch.float64, "device": device}
        i64 = {"dtype": torch.int64, "device": device}
        qs, cq = layout.quantities, layout.cosine_quantities
        # Per-step results go into preallocated tables, one row view per layer: a recorded
        # step writes in place and stacks nothing (the Python overhead is per layer).
        self._raw = {q: torch.empty(n_layers, len(sm.RAW), **f64) for q in qs}
        self._raw_rows = {q: list(t.unbind(0)) for q, t in self._raw.items()}
        self._dot = {q: torch.empty(n_layers, **f64) for q in cq}
        self._dot_rows = {q: list(t.unbind(0)) for q, t in self._dot.items()}
        self._scratch = sm.Scratch()
        self._hist = sm.Histogrammer()
        # the compiled kernel's shifts: each layer's mean at the previous recorded step
        self._shift = {q: torch.zeros(n_layers, **f64) for q in qs}
        self._shift_rows = {q: list(t.unbind(0)) for q, t in self._shift.items()}
        self._shift_ok = {q: np.zeros(n_layers, dtype=bool) for q in qs}
        # cosines: the previous recorded value of every layer (float32) and its norm
        self._prev: dict[str, list[torch.Tensor | None]] = {q: [None] * n_layers for q in cq}
        self._prev_ok = {q: [False] * n_layers for q in cq}
        self._prev_norm = {q: np.full(n_layers, np.nan) for q in cq}
        # per cosine quantity, the layers whose dot the moment kernel took this step
        self._fused_dot: dict[str, set[int]] = {q: set() for q in cq}
        # Small layers (biases, norm scales) are reduced together: a handful of segmented
        # calls instead of a few calls per layer (the per-call cost dominates there).
        self._small_cols = list(layout.small_cols)
        self._small_set = frozenset(self._small_cols)
        self._big_cols = [c for c in range(n_layers) if c not in self._small_set]
        self._small_idx = torch.tensor(self._small_cols, **i64)
        self._big_idx = torch.tensor(self._big_cols, **i64)
        small_n = [layout.n[c] for c in self._small_cols]
        self._small_len = torch.tensor(small_n, **i64)
        self._small_ids = sm.segment_ids(self._small_len)
        self._small_ids32 = self._small_ids.to(torch.int32)
        # the small layers' previous values live in one buffer; per-layer views share it
        self._prev_small: dict[str, torch.Tensor] = {}
        for q in cq:
            buf = torch.empty(sum(small_n), **f32)
            self._prev_small[q] = buf
            for c, view in zip(self._small_cols, buf.split(small_n)):
                self._prev[q][c] = view

    # ------------------------------------------------------------------ device side
    def reduce(
        self,
        plan: StepPlan,
        values: Mapping[str, Sequence[torch.Tensor | None]],
        qn: Mapping[str, Sequence[int]],
        loss: torch.Tensor | float | None = None,
        extra: Sequence[tuple[str, str, torch.Tensor]] = (),
    ) -> dict[str, dict[str, np.ndarray]]:
        """Reduce one step on the device and copy every result to the host at once.

        Args:
            plan: what this step computes.
            values: per quantity, each layer's value (``None``: the layer has none); must
                hold ``"stepsize"`` and the zero-counted quantities (``None`` lists when
                absent).
            qn: per quantity, each layer value's number of coordinates.
            loss: the step's loss; a tensor joins the one transfer.
            extra: more ``(kind, name, tensor)`` to bring back in the same transfer.

        Returns:
            ``{kind: {quantity: float64 array}}`` with kinds ``raw``, ``dot``, ``hist``,
            ``zeros``, ``epsdom``, ``loss``, ``samples`` and those of ``extra``.
        """
        batch = sm.HostBatch()
        put = batch.put
        lay = self.layout
        if plan.summary:
            merged = self._merged_moments(values) if self.compiled else frozenset()
            flats: dict[str, torch.Tensor] = {}  # the small layers of a quantity, end to end
            for q in lay.quantities:
                flats_q = self._moments(q, values[q], qn[q], merged)
                if flats_q is not None:
                    flats[q] = flats_q
                put("raw", q, self._raw[q])
            for q in lay.cosine_quantities:
                put("dot", q, self._dots(q, values[q], flats.get(q)))
            if plan.hist:
                for q in lay.quantities:
                    put("hist", q, self._histograms(q, values[q], qn[q], flats.get(q)))
                for q in S.ZERO_COUNTED:
                    if q in lay.quantities:
                        put("zeros", q, self._count(values[q], sm.count_zeros))
                if "stepsize" in lay.quantities:
                    put("epsdom", "", self._count(values["stepsize"], None))
            if isinstance(loss, torch.Tensor):
                put("loss", "", loss.reshape(-1)[:1])
        for kind, q, t in extra:
            put(kind, q, t)
        if plan.samples:
            for q in lay.sample_quantities:
                cols = [
                    torch.full((ix.numel(),), float("nan"), device=self.device)
                    if v is None
                    else sm.gather(v, ix)
                    for v, ix in zip(values[q], self._sample_idx)
                ]
                put("samples", q, torch.cat(cols))
        return batch.fetch()  # the one transfer

    def _merged_moments(
        self, values: Mapping[str, Sequence[torch.Tensor | None]]
    ) -> frozenset[tuple[str, int]]:
        """Raw rows (and cosine products) of each large layer's values in one compiled call.

        Per large layer, the quantities whose value is a full contiguous float32 tensor of
        the layer's size go through :func:`~gradscope.record.summaries.fused_moments_many`
        together (cosine quantities last, with their previous values); the others are left
        to :meth:`_moments`. Returns the ``(quantity, column)`` pairs done here.
        """
        lay = self.layout
        done: set[tuple[str, int]] = set()
        for c in self._big_cols:
            n = lay.n[c]
            if n <= lay.small_max:
                continue
            full = [
                q
                for q in lay.quantities
                if (v := values[q][c]) is not None
                and v.dim() > 0
                and v.numel() == n
                and v.dtype == torch.float32
                and v.is_contiguous()
            ]
            if len(full) < 2:
                continue
            cos = [q for q in full if q in lay.cosine_quantities]
            order = [q for q in full if q not in cos] + cos
            xs = [v for q in order if (v := values[q][c]) is not None]  # all of them
            shifts = torch.stack(
                [
                    self._shift_rows[q][c] if self._shift_ok[q][c] else x.reshape(-1)[0].double()
                    for q, x in zip(order, xs)
                ]
            )
            rows = torch.empty(len(order), len(sm.RAW), dtype=torch.float64, device=self.device)
            dots = torch.empty(len(cos), dtype=torch.float64, device=self.device)
            prevs = [self._prev_for(q, c, n) for q in cos]
            sm.fused_moments_many(xs, shifts, rows, prevs, dots)
            for q, row in zip(order, rows.unbind(0)):
                self._raw_rows[q][c].copy_(row)
                done.add((q, c))
            for q, dot in zip(cos, dots.unbind(0)):
                if self._prev_ok[q][c]:
                    self._dot_rows[q][c].copy_(dot)
                else:
                    self._dot_rows[q][c].fill_(float("nan"))
                self._prev_ok[q][c] = True
                self._fused_dot[q].add(c)
        return frozenset(done)

    def _moments(
        self,
        q: str,
        vals: Sequence[torch.Tensor | None],
        qn: Sequence[int],
        merged: frozenset[tuple[str, int]] = frozenset(),
    ) -> torch.Tensor | None:
        """Fill ``q``'s raw moment rows; return the small layers' flat buffer if any.

        Rows of ``merged`` (filled by :meth:`_merged_moments`) are left as they are.
        """
        small = self._small_values(vals)
        fused = self.compiled
        cos = q in self.layout.cosine_quantities
        for c, (v, n, row) in enumerate(zip(vals, qn, self._raw_rows[q])):
            if (q, c) in merged:
                continue
            if v is None:
                row.fill_(float("nan"))
            elif small is not None and c in self._small_set:
                continue
            elif fused and v.dim() > 0 and n > self.layout.small_max:
                shift = self._shift_rows[q][c] if self._shift_ok[q][c] else None
                prev = self._prev_for(q, c, n) if cos and v.numel() == self.layout.n[c] else None
                dot_row = None
                if prev is not None:
                    dot_row = self._dot_rows[q][c] if self._prev_ok[q][c] else None
                sm.fused_moments(v, shift, out=row, prev=prev, dot_out=dot_row)
                if prev is not None:
                    if dot_row is None:
                        self._dot_rows[q][c].fill_(float("nan"))
                    self._prev_ok[q][c] = True
                    self._fused_dot[q].add(c)
            else:
                sm.raw_moments(v, n, out=row, scratch=self._scratch)
        if small is None:
            return None
        rows, flat = sm.segmented_moments(small, self._small_len, self._small_ids)
        self._raw[q].index_copy_(0, self._small_idx, rows)
        return flat

    def _prev_for(self, q: str, c: int, n: int) -> torch.Tensor:
        prev = self._prev[q][c]
        if prev is None:
            prev = torch.empty(n, dtype=torch.float32, device=self.device)
            self._prev[q][c] = prev
        return prev

    def _small_values(self, vals: Sequence[torch.Tensor | None]) -> list[torch.Tensor] | None:
        """The small layers' values when they can be reduced together (all full tensors)."""
        if not self._small_cols:
            return None
        small = [vals[c] for c in self._small_cols]
        out: list[torch.Tensor] = []
        for v, c in zip(small, self._small_cols):
            if v is None or v.dim() == 0 or v.numel() != self.layout.n[c]:
                return None
            out.append(v)
        return out

    def _histograms(
        self,
        q: str,
        vals: Sequence[torch.Tensor | None],
        qn: Sequence[int],
        flat: torch.Tensor | None,
    ) -> torch.Tensor:
        """``(L, n_bins)`` counts; the small layers from their flat buffer when there is one."""
        spec = self.layout.hist_specs[q]

        def one(v: torch.Tensor | None, n: int) -> torch.Tensor:
            if v is None:
                return torch.zeros(spec.n_bins, dtype=torch.int64, device=self.device)
            return self._hist(v, n, spec)

        if flat is None:
            return torch.stack([one(v, n) for v, n in zip(vals, qn)])
        table = torch.empty(
            self.layout.n_layers, spec.n_bins, dtype=torch.int64, device=self.device
        )
        if self._big_cols:
            big = [one(vals[c], qn[c]) for c in self._big_cols]
            table.index_copy_(0, self._big_idx, torch.stack(big))
        small = self._hist.segmented(flat, self._small_len, spec, self._small_ids32)
        table.index_copy_(0, self._small_idx, small)
        return table

    def _dots(
        self, q: str, vals: Sequence[torch.Tensor | None], flat: torch.Tensor | None
    ) -> torch.Tensor:
        """Inner products with the previous recorded value; keeps a float32 copy of this one.

        Layers whose product the compiled moment kernel already took (in float64) are
        skipped; the eager per-layer product is float32 BLAS (relative error ~1e-7). With
        ``flat`` (the small layers end to end), those layers take one segmented float64
        reduction against their previous values, which live in one buffer as well.
        """
        ok, rows = self._prev_ok[q], self._dot_rows[q]
        done = self._fused_dot[q]
        for c, (v, n) in enumerate(zip(vals, self.layout.n)):
            if c in done or (flat is not None and c in self._small_set):
                continue
            if v is None:
                rows[c].fill_(float("nan"))
                ok[c] = False
                continue
            f = sm.flat32(v.expand(self.layout.shapes[c])) if v.dim() == 0 else sm.flat32(v)
            p = self._prev_for(q, c, n)
            if ok[c]:
                rows[c].copy_(torch.dot(f, p))
            else:
                rows[c].fill_(float("nan"))
            p.copy_(f)  # in place: no allocation per step
            ok[c] = True
        done.clear()
        if flat is not None:
            before = self._prev_small[q]
            prod = flat.double().mul_(before.double())  # float64: exact products, sums
            dots = torch.segment_reduce(prod, "sum", lengths=self._small_len, unsafe=True)
            had = [ok[c] for c in self._small_cols]
            if not all(had):  # no previous value: NaN, as on the per-layer path
                dots = torch.where(torch.tensor(had, device=dots.device), dots, float("nan"))
            self._dot[q].index_copy_(0, self._small_idx, dots)
            before.copy_(flat)
            for c in self._small_cols:
                ok[c] = True
        return self._dot[q]

    def _count(self, vals: Sequence[torch.Tensor | None], count: Any | None) -> torch.Tensor:
        """Per-layer counts (float64, NaN where missing).

        ``count(v, n)`` for each layer, or with ``None`` the eps-dominated stepsizes
        (``u >= 1/(1.01 eps)`` of the layer's group).
        """
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        out = []
        for c, (v, n) in enumerate(zip(vals, self.layout.n)):
            if count is not None:
                out.append(nan if v is None else count(v, n).to(torch.float64))
                continue
            thr = self.layout.eps_threshold[c]
            if v is None or thr is None:
                out.append(nan)
            else:
                out.append(sm.count_at_least(v, n, thr).to(torch.float64))
        return torch.stack(out)

    # ------------------------------------------------------------------ host side
    def summarize(
        self,
        plan: StepPlan,
        out: Mapping[str, Mapping[str, np.ndarray]],
        values: Mapping[str, Sequence[torch.Tensor | None]],
        qn: Mapping[str, Sequence[int]],
    ) -> StepSummary:
        """Statistics, histograms and cosines of one step from :meth:`reduce`'s arrays.

        Moments come from the shifted sums (:func:`~gradscope.record.summaries.finalize_moments`);
        layers with non-finite values, or whose shift was too far from the mean, are
        recomputed exactly from ``values`` (one more transfer, rare). Quantiles are read
        off the histograms; cosines divide the inner products by this and the previous
        row's norms. The means become the next step's shifts of the compiled kernel.
        """
        lay = self.layout
        n_layers, qs = lay.n_layers, lay.quantities
        n = np.concatenate([np.asarray(qn[q], dtype=np.float64) for q in qs] or [[]])
        raw = np.stack([out["raw"][q].reshape(n_layers, len(sm.RAW)) for q in qs] or [[]])
        present = np.array([[v is not None for v in values[q]] for q in qs], dtype=bool)
        moments, fix = sm.finalize_moments(raw.reshape(-1, len(sm.RAW)), n, present.reshape(-1))
        moments = moments.reshape(len(qs), n_layers, _N_MOMENTS)
        fix = fix.reshape(len(qs), n_layers)
        stats: dict[str, np.ndarray] = {}
        for k, q in enumerate(qs):
            st = np.full((n_layers, len(S.STATS)), np.nan)
            st[:, :_N_MOMENTS] = moments[k]
            st[present[k], _N_MOMENTS] = 0.0
            stats[q] = st
        redo = [(qs[k], int(c)) for k, c in zip(*np.nonzero(fix))]
        if redo:  # rare: non-finite coordinates or a far shift; one more transfer
            exact = torch.stack(
                [sm.finite_moments(_present(values[q][c]), qn[q][c]) for q, c in redo]
            )
            for (q, c), row in zip(redo, exact.cpu().numpy()):
                stats[q][c, : _N_MOMENTS + 1] = row
        if self.compiled:
            self._update_shifts(stats)
        hist: dict[str, np.ndarray] | None = None
        if plan.hist:
            hist = {}
            zeros_col = S.STATS.index("zeros")
            for q in qs:
                spec = lay.hist_specs[q]
                h = out["hist"][q].reshape(n_layers, spec.n_bins).astype(np.int64)
                hist[q] = h
                has = ~np.isnan(stats[q][:, 0]) | (h.sum(axis=1) > 0)
                levels = S.quantiles_from_histogram(h, spec)
                cols = slice(_N_MOMENTS + 1, _N_MOMENTS + 1 + len(S.QUANTILE_STATS))
                stats[q][has, cols] = levels[has]
            for q, z in out.get("zeros", {}).items():
                stats[q][:, zeros_col] = z
        cosine: dict[str, np.ndarray] = {}
        for q in S.COSINE_QUANTITIES:
            if q not in qs:
                continue
            if q in lay.cosine_quantities:
                norm = stats[q][:, 2]
                with np.errstate(invalid="ignore", divide="ignore"):
                    cosine[q] = out["dot"][q] / (norm * self._prev_norm[q])
                self._prev_norm[q] = norm.copy()
            else:
                cosine[q] = np.full(n_layers, np.nan)
        loss = float(out["loss"][""][0]) if "loss" in out else float("nan")
        return StepSummary(
            stats=stats,
            hist=hist,
            cosine=cosine,
            eps_dominated=out["epsdom"][""] if "epsdom" in out else None,
            loss=loss,
        )

    def _update_shifts(self, stats: Mapping[str, np.ndarray]) -> None:
        """Keep this step's finite means as the next step's shifts (one small copy each)."""
        for q, st in stats.items():
            mean = st[:, 0]
            ok = np.isfinite(mean)
            self._shift_ok[q] = ok
            self._shift[q].copy_(torch.from_numpy(np.where(ok, mean, 0.0)))


def _present(v: torch.Tensor | None) -> torch.Tensor:
    if v is None:  # finalize_moments flags present layers only
        raise AssertionError("a missing layer was flagged for recomputation")
    return v
