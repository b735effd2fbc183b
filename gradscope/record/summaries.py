"""On-device per-layer reductions: moments, extremes, fixed-bin histograms, subsamples.

The tensor functions work on the device the tensors live on and never synchronise with
the host; the recorder concatenates their results and copies them once per recorded step,
then :func:`finalize_moments` turns the copied sums into moments on the host. The NumPy
oracles in ``tests/test_record`` recompute each quantity from full tensors.

A *layer value* is either a tensor of the parameter's shape or a 0-d tensor standing for
the same value at every coordinate (layerwise stepsizes, LAdam's second moment); a 0-d
value of a layer of size ``n`` has mean = value, std = 0, norm = |value| sqrt(n) and
contributes ``n`` counts to one histogram bin.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gradscope.names import MOMENT_STATS
from gradscope.runfile.schema import HistSpec

#: Columns of :func:`finalize_moments` (the first five of ``schema.STATS``).
MOMENTS: tuple[str, ...] = MOMENT_STATS[:5]
#: Columns of :func:`raw_moments` (float64): the shift ``c`` (a rough mean), the sums of
#: ``x - c`` and of ``(x - c)**2``, the minimum and the maximum.
RAW = ("shift", "sum_d", "sum_d2", "min", "max")

_ABS_MASK = 0x7FFFFFFF
_INF_BITS = 0x7F800000
#: Coordinates per float64 pass of a large layer. On the CPU a chunk that fits in cache
#: (64K coordinates, 512 KiB of float64) keeps the widening, the shift and the two sums
#: at the speed of one pass over the float32 data; accelerators take large chunks.
CPU_CHUNK = 1 << 16
DEVICE_CHUNK = 1 << 22


def flat32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a flat contiguous float32 tensor, a view when it already is one."""
    if x.dtype == torch.float32 and x.is_contiguous():
        return x.detach().view(-1)  # the common case: no copy, two calls
    return x.detach().reshape(-1).to(torch.float32).contiguous()


def _flat(x: torch.Tensor) -> torch.Tensor:
    """Flat values at their own precision when that is float64, else float32."""
    if x.dtype == torch.float64:
        return x.detach().reshape(-1)
    return flat32(x)


class Scratch:
    """Reusable float64 chunk buffers, one per device."""

    def __init__(self) -> None:
        self._buf: dict[torch.device, torch.Tensor] = {}

    def get(self, n: int, device: torch.device) -> torch.Tensor:
        """A float64 buffer of ``n`` coordinates on ``device`` (grown when needed)."""
        buf = self._buf.get(device)
        if buf is None or buf.numel() < n:
            buf = torch.empty(max(n, 1), dtype=torch.float64, device=device)
            self._buf[device] = buf
        return buf[:n]


def chunk_size(device: torch.device) -> int:
    """Coordinates per float64 pass on ``device`` (:data:`CPU_CHUNK` or :data:`DEVICE_CHUNK`)."""
    return CPU_CHUNK if device.type == "cpu" else DEVICE_CHUNK


def raw_moments(
    x: torch.Tensor,
    n: int,
    out: torch.Tensor | None = None,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """``[c, sum(x - c), sum((x - c)**2), min, max]`` of one layer value, in float64.

    Exact to float64 accuracy whatever the ratio mean**2/var: the shift ``c`` is the
    layer's mean from one float32 pass, and the differences ``x - c`` are formed and summed
    in float64 (widening a float32 is exact, and so is, nearly always, the difference), so
    ``S2/n - (S1/n)**2`` has nothing left to cancel and the squares cannot overflow or
    underflow for any float32 magnitude. The float64 work runs over chunks of
    :func:`chunk_size` coordinates with the same shift (their sums add), so the scratch
    memory is bounded. Non-finite coordinates make the result non-finite;
    :func:`finalize_moments` flags those layers and the recorder recomputes them with
    :func:`finite_moments`. No host synchronisation.

    Args:
        x: the layer value (any float dtype, or 0-d for a value shared by all coordinates).
        n: the layer size.
        out: float64 ``(5,)`` tensor on ``x``'s device to write into (the recorder passes
            rows of one preallocated table, so a step stacks nothing).
        scratch: reusable float64 buffers (allocated per call when ``None``).

    Returns:
        ``out`` (or a new float64 tensor of shape ``(5,)``) on ``x``'s device.
    """
    if out is None:
        out = torch.empty(len(RAW), dtype=torch.float64, device=x.device)
    if x.dim() == 0:
        v = x.detach().to(torch.float64)
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        return torch.stack([v, zero, zero, v, v], out=out)
    f = _flat(x)
    scratch = scratch or Scratch()
    shift = out[0]
    torch.div(f.sum(), n, out=shift)  # float32 pass; widened into the float64 row
    step = chunk_size(f.device)
    for lo in range(0, f.numel(), step):
        part = f[lo : lo + step]
        d = scratch.get(part.numel(), f.device).copy_(part).sub_(shift)
        if lo == 0:
            torch.sum(d, dim=0, out=out[1])
            torch.dot(d, d, out=out[2])
        else:
            out[1].add_(d.sum())
            out[2].add_(torch.dot(d, d))
    lo_hi = torch.aminmax(f)
    out[3].copy_(lo_hi[0])
    out[4].copy_(lo_hi[1])
    return out


def _one_pass(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``[c, sum(x - c), sum((x - c)**2), min, max]``: the body of :func:`fused_moments`."""
    d = x.to(torch.float64) - c
    lo, hi = x.min().to(torch.float64), x.max().to(torch.float64)
    return torch.stack([c, d.sum(), (d * d).sum(), lo, hi])


def _one_pass_dot(
    x: torch.Tensor, c: torch.Tensor, prev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_one_pass`, the inner product with ``prev``, and ``x`` copied into ``prev``."""
    xd = x.to(torch.float64)
    d = xd - c
    lo, hi = x.min().to(torch.float64), x.max().to(torch.float64)
    row = torch.stack([c, d.sum(), (d * d).sum(), lo, hi])
    dot = (xd * prev.to(torch.float64)).sum()
    prev.copy_(x)
    return row, dot


def _many_pass(
    xs: list[torch.Tensor], c: torch.Tensor, prevs: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_one_pass` of each of ``xs`` (shift ``c[i]``): the body of :func:`fused_moments_many`.

    The last ``len(prevs)`` of them also get :func:`_one_pass_dot`'s product and copy.
    """
    rows = []
    for i, x in enumerate(xs):
        d = x.to(torch.float64) - c[i]
        lo, hi = x.min().to(torch.float64), x.max().to(torch.float64)
        rows.append(torch.stack([c[i], d.sum(), (d * d).sum(), lo, hi]))
    k0 = len(xs) - len(prevs)
    dots = [(xs[k0 + j].to(torch.float64) * p.to(torch.float64)).sum() for j, p in enumerate(prevs)]
    for j, p in enumerate(prevs):
        p.copy_(xs[k0 + j])
    return torch.stack(rows), torch.stack(dots) if dots else c[:0]


_COMPILED: dict[str, Any] = {}
_AVAILABLE: set[str] = set()  # device kinds where the trial compile worked
_UNAVAILABLE: dict[str, str] = {}  # and where it failed, with the reason


def _kernel(name: str) -> Any:
    """The compiled form of ``_one_pass``, ``_one_pass_dot`` or ``_many_pass``.

    Compiled once per process; ``dynamic=True``: one generated kernel serves every layer
    size (and a float64 input, or another number of tensors for ``_many_pass``, its own).
    """
    fn = _COMPILED.get(name)
    if fn is None:
        body = {"moments": _one_pass, "dot": _one_pass_dot, "many": _many_pass}[name]
        fn = torch.compile(body, dynamic=True, fullgraph=True)
        _COMPILED[name] = fn
    return fn


def fused_available(device: torch.device) -> bool:
    """Whether :func:`fused_moments` compiles on ``device``'s kind (tried once per process).

    Inductor needs a C++ compiler on the CPU (Triton on CUDA). When the trial compile
    fails, a ``RuntimeWarning`` says why and :func:`fused_unavailable_reason` keeps it.
    """
    kind = device.type
    if kind in _UNAVAILABLE:
        return False
    if kind in _AVAILABLE:
        return True
    x = torch.linspace(-1.0, 1.0, 1000, device=device)
    prev = torch.zeros_like(x)
    try:
        with torch.no_grad():
            _kernel("moments")(x, x[0].to(torch.float64))
            _kernel("dot")(x, x[0].to(torch.float64), prev)
    except Exception as exc:  # noqa: BLE001 - any compile failure means: use the eager path
        _UNAVAILABLE[kind] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        warnings.warn(
            "gradscope: the compiled reduction is unavailable on "
            f"{kind} ({_UNAVAILABLE[kind]}); using the eager one",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    _AVAILABLE.add(kind)
    return True


def fused_unavailable_reason(device: torch.device) -> str | None:
    """Why :func:`fused_available` said no on ``device``'s kind (``None``: it did not)."""
    return _UNAVAILABLE.get(device.type)


def fused_moments(
    x: torch.Tensor,
    shift: torch.Tensor | None,
    out: torch.Tensor,
    prev: torch.Tensor | None = None,
    dot_out: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`raw_moments` of a full layer value in one compiled pass over its data.

    The generated kernel widens each float32 coordinate to float64, subtracts ``shift`` and
    accumulates the sum and the sum of squares in float64, and the minimum and maximum, in
    one read of ``x``; with ``prev`` it also accumulates ``sum(x * prev)`` in float64 and
    copies ``x`` into ``prev`` (the cosine's previous value), in the same call.

    The shift is given rather than computed (that would be a second pass): the recorder
    passes the layer's mean at the previous recorded step, or the first coordinate when it
    has none. Any shift inside the data's range keeps the result exact to float64
    accuracy up to a factor ``1 + (mean - shift)**2 / var``; :func:`finalize_moments`
    sends a layer whose factor exceeds 1e6 to the exact slow path.

    Args:
        x: the layer value (full, not 0-d; any float dtype).
        shift: float64 0-d tensor on ``x``'s device, or ``None`` for ``x``'s first
            coordinate.
        out: float64 ``(5,)`` row to write.
        prev: float32 tensor of ``x.numel()`` coordinates: the previous value (read, then
            overwritten with ``x``).
        dot_out: float64 0-d tensor for ``sum(x * prev)`` (``None``: not needed).

    Returns:
        ``out``.
    """
    f = _standalone(_flat(x))
    c = f[0].to(torch.float64) if shift is None else shift.clone()
    with torch.no_grad():  # the optimizer's step runs without grad: one graph for both
        if prev is None:
            out.copy_(_kernel("moments")(f, c))
            return out
        row, dot = _kernel("dot")(f, c, _standalone(prev))
    out.copy_(row)
    if dot_out is not None:
        dot_out.copy_(dot)
    return out


def fused_moments_many(
    xs: Sequence[torch.Tensor],
    shifts: torch.Tensor,
    out: torch.Tensor,
    prevs: Sequence[torch.Tensor] = (),
    dots_out: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`fused_moments` of several values of one layer in one compiled call.

    The same arithmetic as one :func:`fused_moments` call per value (each sum in float64
    about its own shift), in one generated kernel whose loops run side by side over the
    layer's coordinates: a layer's grad, moments, stepsize, update and parameter cost one
    call instead of six. On the CPU a call costs about 0.1 ms before any arithmetic, which
    on layers of 10^4-10^5 coordinates is most of the reduction (a transformer's layers:
    0.87 against 0.40 ms a layer for six values of 16K coordinates, two with cosines).

    Args:
        xs: full float32 layer values, all of one size; the last ``len(prevs)`` of them
            have a previous value (the cosine quantities).
        shifts: float64 ``(len(xs),)``: each value's shift (see :func:`fused_moments`).
        out: float64 ``(len(xs), 5)`` rows to write.
        prevs: float32 previous values (read, then overwritten with their ``xs``).
        dots_out: float64 ``(len(prevs),)`` for the inner products.

    Returns:
        ``out``.
    """
    fs = [_standalone(_flat(x)) for x in xs]
    with torch.no_grad():
        rows, dots = _kernel("many")(fs, shifts, [_standalone(p) for p in prevs])
    out.copy_(rows)
    if dots_out is not None:
        dots_out.copy_(dots)
    return out


def _standalone(f: torch.Tensor) -> torch.Tensor:
    """``f`` (flat, contiguous) as a tensor of its own rather than a view of another.

    Dynamo guards a view on the shape of the tensor it views (1x1 against 3x3 convolution
    kernels would each compile a kernel); a tensor on the same storage, no view, does not.
    Used only on detached data under ``no_grad``.
    """
    if f._base is None:
        return f
    alias = torch.empty(0, dtype=f.dtype, device=f.device)
    return alias.set_(f.untyped_storage(), f.storage_offset(), f.shape, f.stride())


def segment_ids(lengths: torch.Tensor) -> torch.Tensor:
    """Segment index of every coordinate of layers of ``lengths`` laid end to end."""
    ids = torch.arange(lengths.numel(), device=lengths.device)
    return torch.repeat_interleave(ids, lengths)


def segmented_moments(
    values: Sequence[torch.Tensor],
    lengths: torch.Tensor,
    ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`raw_moments` rows of many layer values at once, and their flat concatenation.

    One copy into a flat float32 buffer, then segmented reductions whatever the number of
    layers: the recorder uses it for the small layers (biases, norm scales) where per-layer
    calls cost more than the arithmetic. The shift of each layer is its mean, and the
    shifted sums run in float64 as in :func:`raw_moments` (a segmented sum adds
    sequentially, so float32 accumulation would lose digits on long segments).

    Args:
        values: full (not 0-d) layer values.
        lengths: int64 tensor of their sizes, on their device.
        ids: :func:`segment_ids` of ``lengths`` (the recorder keeps it; computed if absent).

    Returns:
        ``(len(values), 5)`` float64 rows and the flat float32 buffer (for
        :meth:`Histogrammer.segmented`).
    """
    flat = torch.cat([flat32(v) for v in values])
    wide64 = any(v.dtype == torch.float64 for v in values)
    wide = torch.cat([_flat(v).double() for v in values]) if wide64 else flat.double()
    if flat.device.type == "cpu":
        # CPU segmented min/max are ~10x slower than one aminmax per layer (measured)
        mins, maxs = (torch.stack(t) for t in zip(*(torch.aminmax(_flat(v)) for v in values)))
    else:
        src = wide if wide64 else flat
        mins = torch.segment_reduce(src, "min", lengths=lengths, unsafe=True)  # no sync
        maxs = torch.segment_reduce(src, "max", lengths=lengths, unsafe=True)
    if ids is None:
        ids = segment_ids(lengths)
    sums = torch.segment_reduce(wide, "sum", lengths=lengths, unsafe=True)
    shift = sums / lengths.to(torch.float64)
    d = wide.sub_(shift.index_select(0, ids))
    s1 = torch.segment_reduce(d, "sum", lengths=lengths, unsafe=True)
    s2 = torch.segment_reduce(d.square_(), "sum", lengths=lengths, unsafe=True)
    rows = torch.stack([shift, s1, s2, mins.to(torch.float64), maxs.to(torch.float64)], dim=1)
    return rows, flat


def finalize_moments(
    raw: np.ndarray, n: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``[mean, std, norm, min, max]`` from :func:`raw_moments` rows, on the host.

    With ``m1 = S1/n``: ``mean = c + m1``, ``var = S2/n - m1**2`` (population, ddof = 0),
    ``sum x**2 = S2 + 2 c S1 + n c**2``. When ``c`` is within float32 rounding of the
    mean (:func:`raw_moments`), ``m1**2`` is negligible against ``var`` and the subtraction
    loses nothing; with another shift (:func:`fused_moments`) it loses a factor
    ``1 + m1**2 / var`` of float64's accuracy, and beyond 1e6 the layer is flagged.

    Args:
        raw: ``(L, 5)`` rows of :func:`raw_moments` (NaN rows for missing layers).
        n: ``(L,)`` layer sizes.
        present: ``(L,)`` mask of the layers that have this quantity.

    Returns:
        ``(L, 5)`` float64 moments and an ``(L,)`` mask of the layers to recompute
        exactly (non-finite values, or a shift that could not be formed).
    """
    raw = np.asarray(raw, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    c, s1, s2 = raw[:, 0], raw[:, 1], raw[:, 2]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m1 = s1 / n
        var = np.maximum(s2 / n - m1 * m1, 0.0)
        sumsq = np.maximum(s2 + c * (2.0 * s1 + n * c), 0.0)
        out = np.stack([c + m1, np.sqrt(var), np.sqrt(sumsq), raw[:, 3], raw[:, 4]], axis=1)
        # m1**2 > 1e6 var would cost 1e-10 of the variance: only a broken shift gets there
        redo = present & (~np.isfinite(raw).all(axis=1) | (m1 * m1 > 1e6 * var))
    return out, redo


def count_zeros(x: torch.Tensor, n: int) -> torch.Tensor:
    """Number of coordinates exactly equal to zero (int64, 0-d, on ``x``'s device)."""
    if x.dim() == 0:
        return (x == 0).to(torch.int64) * n
    return n - torch.count_nonzero(x)


def count_at_least(x: torch.Tensor, n: int, threshold: float) -> torch.Tensor:
    """Number of coordinates ``>= threshold`` (int64, 0-d, on ``x``'s device)."""
    if x.dim() == 0:
        return (x >= threshold).to(torch.int64) * n
    return torch.count_nonzero(x >= threshold)


def finite_moments(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[mean, std, norm, min, max, nonfinite]`` over the finite coordinates only.

    ``nonfinite`` is the fraction of NaN/+-inf coordinates. The slow path, used only for
    layers whose :func:`moments` came out non-finite. All-non-finite layers give NaN stats.

    Returns:
        float64 tensor of shape ``(6,)``.
    """
    f = x.detach().double().reshape(-1)
    if x.dim() == 0:
        f = f.expand(n)
    ok = torch.isfinite(f)
    k = ok.sum()
    nonfinite = (n - k).double() / n
    g = f[ok]
    if g.numel() == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=f.device)
        return torch.stack([nan, nan, nan, nan, nan, nonfinite])
    mean = g.mean()
    std = torch.linalg.vector_norm(g - mean) / torch.sqrt(k.double())
    norm = torch.linalg.vector_norm(g)
    return torch.stack([mean, std, norm, g.min(), g.max(), nonfinite])


def hist_bins(x: torch.Tensor, spec: HistSpec) -> torch.Tensor:
    """Bin index of every coordinate (int64), the layout of :class:`HistSpec`.

    The magnitude bin is read from the float32 bit pattern: exponent and the leading
    ``spec.sub`` mantissa bits, so no logarithm is taken and every edge is exact.
    """
    b = flat32(x).view(torch.int32)
    a = b & _ABS_MASK
    nb = spec.n_magnitude
    base = (spec.e_lo + 127) << spec.sub
    m = ((a >> (23 - spec.sub)) - base).clamp_(-1, nb)
    neg = b < 0
    if spec.signed:
        idx = torch.where(neg, nb - m, m + (nb + 2))
    else:
        idx = torch.where(neg, torch.zeros_like(m), m + 1)
    idx = torch.where(a >= _INF_BITS, torch.full_like(idx, spec.n_bins - 1), idx)
    return idx.long()


def count_keys(key: torch.Tensor, n: int) -> torch.Tensor:
    """Occurrences of each key in ``[0, n)`` (int64, ``(n,)``), without a host sync.

    ``torch.bincount`` is the fastest on the CPU, but on CUDA it reads the largest key back
    to the host to size its output (a sync per call); a fixed-size ``index_add_`` does not.
    """
    if key.device.type == "cpu":
        return torch.bincount(key, minlength=n)
    return scatter_count(key, n)


def scatter_count(key: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`count_keys` by ``index_add_`` into ``n`` fixed bins (the accelerator path)."""
    out = torch.zeros(n, dtype=torch.int64, device=key.device)
    return out.index_add_(0, key, torch.ones_like(key, dtype=torch.int64))


class Histogrammer:
    """Fixed-bin histograms of layer values, with reusable scratch memory.

    Each coordinate's float32 bit pattern shifted right by ``23 - sub`` is a fine key
    (sign, exponent and ``sub`` leading mantissa bits: ``2**(9 + sub)`` keys);
    :func:`count_keys` counts them, and a precomputed table folds the fine counts into the
    bins of a :class:`HistSpec` (whose edges lie on the fine grid). One int32 scratch
    buffer the size of the largest layer is kept, so a step allocates nothing large.
    """

    def __init__(self) -> None:
        self._scratch: dict[torch.device, torch.Tensor] = {}
        self._maps: dict[tuple[HistSpec, torch.device], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, n: int, spec: HistSpec) -> torch.Tensor:
        """Counts of one layer value on the bins of ``spec`` (int64, ``(spec.n_bins,)``)."""
        if x.dim() == 0:
            idx = hist_bins(x.reshape(1), spec)
            out = torch.zeros(spec.n_bins, dtype=torch.int64, device=x.device)
            return out.index_fill_(0, idx, n)
        f = flat32(x)
        buf = self._scratch.get(f.device)
        if buf is None or buf.numel() < f.numel():
            buf = torch.empty(f.numel(), dtype=torch.int32, device=f.device)
            self._scratch[f.device] = buf
        key = buf[: f.numel()]
        torch.bitwise_right_shift(f.view(torch.int32), 23 - spec.sub, out=key)
        key.add_(1 << (8 + spec.sub))
        fine = count_keys(key, 1 << (9 + spec.sub))
        out = torch.zeros(spec.n_bins, dtype=torch.int64, device=f.device)
        return out.index_add_(0, self._map(spec, f.device), fine)

    def segmented(
        self,
        flat: torch.Tensor,
        lengths: torch.Tensor,
        spec: HistSpec,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Counts of many layers laid end to end in ``flat`` (float32), one row per layer.

        Each coordinate's fine key is offset by its layer's index times the number of fine
        keys, so one count covers every layer; the fold into ``spec``'s bins is one
        ``index_add_`` over the layer rows. ``ids`` (the int32 :func:`segment_ids`) saves
        recomputing each coordinate's layer.

        Returns:
            int64 ``(len(lengths), spec.n_bins)``.
        """
        n_fine = 1 << (9 + spec.sub)
        n_layers = lengths.numel()
        key = torch.bitwise_right_shift(flat.view(torch.int32), 23 - spec.sub)
        if ids is None:
            base = torch.arange(n_layers, dtype=torch.int32, device=flat.device) * n_fine
            key.add_(torch.repeat_interleave(base, lengths, output_size=flat.numel()))
        else:  # the recorder's cached segment_ids(lengths)
            key.add_(ids * n_fine)
        key.add_(1 << (8 + spec.sub))
        fine = count_keys(key, n_layers * n_fine).view(n_layers, n_fine)
        out = torch.zeros(n_layers, spec.n_bins, dtype=torch.int64, device=flat.device)
        return out.index_add_(1, self._map(spec, flat.device), fine)

    def _map(self, spec: HistSpec, device: torch.device) -> torch.Tensor:
        m = self._maps.get((spec, device))
        if m is None:
            keys = torch.arange(1 << (9 + spec.sub), dtype=torch.int64) - (1 << (8 + spec.sub))
            low = (keys << (23 - spec.sub)).to(torch.int32).view(torch.float32)
            m = hist_bins(low, spec).to(device)  # every fine bin lies inside one spec bin
            self._maps[(spec, device)] = m
        return m


def histogram(x: torch.Tensor, n: int, spec: HistSpec) -> torch.Tensor:
    """Counts of one layer value on the bins of ``spec`` (the reference, allocating path)."""
    if x.dim() == 0:
        return Histogrammer()(x, n, spec)
    return torch.bincount(hist_bins(x, spec), minlength=spec.n_bins)


def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Values at fixed flat coordinates ``index`` (float32); a 0-d value is repeated."""
    if x.dim() == 0:
        return x.detach().to(torch.float32).expand(index.numel())
    return x.detach().reshape(-1).index_select(0, index).to(torch.float32)


class HostBatch:
    """Device results of one recorded step, brought to the host in one copy.

    :meth:`put` queues a tensor under a kind and a name (flattened, as float64);
    :meth:`fetch` concatenates everything, copies it once and splits it back.
    """

    def __init__(self) -> None:
        self._parts: list[torch.Tensor] = []
        self._sizes: list[tuple[str, str, int]] = []

    def put(self, kind: str, name: str, t: torch.Tensor) -> None:
        """Queue ``t`` as ``out[kind][name]`` of :meth:`fetch`."""
        self._parts.append(t.reshape(-1).to(torch.float64))
        self._sizes.append((kind, name, t.numel()))

    def fetch(self) -> dict[str, dict[str, np.ndarray]]:
        """``{kind: {name: float64 array}}``: the one device-to-host copy, split back."""
        host = torch.cat(self._parts).cpu().numpy() if self._parts else np.zeros(0)
        out: dict[str, dict[str, np.ndarray]] = {}
        pos = 0
        for kind, name, k in self._sizes:
            out.setdefault(kind, {})[name] = host[pos : pos + k]
            pos += k
        return out


def stack_rows(
    rows: Sequence[torch.Tensor | None], width: int, device: torch.device
) -> torch.Tensor:
    """Stack per-layer rows; a missing layer (``None``) becomes a NaN row."""
    nan = None
    out = []
    for r in rows:
        if r is None:
            if nan is None:
                nan = torch.full((width,), float("nan"), device=device)
            out.append(nan)
        else:
            out.append(r.to(torch.float32))
    return torch.stack(out)
