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

from collections.abc import Sequence

import numpy as np
import torch

from gradscope.runfile.schema import HistSpec

#: Columns of :func:`finalize_moments` (the first five of ``schema.STATS``).
MOMENTS = ("mean", "std", "norm", "min", "max")
#: Columns of :func:`raw_moments`.
RAW = ("sum", "sumsq", "min", "max")

_ABS_MASK = 0x7FFFFFFF
_INF_BITS = 0x7F800000
# std from sums loses digits when mean**2 >> var (relative error ~ 1e-7 * mean**2 / var);
# beyond this ratio the layer is recomputed exactly (two passes, float64): BatchNorm and
# LayerNorm weights near 1, for instance.
_CANCELLATION = 1e3


def flat32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a flat contiguous float32 tensor, a view when it already is one."""
    if x.dtype == torch.float32 and x.is_contiguous():
        return x.detach().view(-1)  # the common case: no copy, two calls
    return x.detach().reshape(-1).to(torch.float32).contiguous()


def raw_moments(x: torch.Tensor, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``[sum, sum of squares, min, max]`` of one layer value over all ``n`` coordinates.

    Three passes over the data and no temporaries (``sum``, ``dot``, ``aminmax``): on the
    CPU, allocating large temporaries costs more than the arithmetic. Non-finite
    coordinates make the result non-finite; :func:`finalize_moments` flags those layers
    and the recorder recomputes them with :func:`finite_moments`.

    Args:
        x: the layer value (any float dtype, or 0-d for a value shared by all coordinates).
        n: the layer size.
        out: float32 ``(4,)`` tensor on ``x``'s device to write into (the recorder passes
            rows of one preallocated table, so a step allocates and stacks nothing).

    Returns:
        ``out`` (or a new float32 tensor of shape ``(4,)``) on ``x``'s device.
    """
    if out is None:
        out = torch.empty(4, dtype=torch.float32, device=x.device)
    if x.dim() == 0:
        v = x.detach().to(torch.float32)
        return torch.stack([v * n, v * v * n, v, v], out=out)
    f = flat32(x)
    torch.sum(f, dim=0, out=out[0])
    torch.dot(f, f, out=out[1])
    torch.aminmax(f, out=(out[2], out[3]))
    return out


def segmented_moments(
    values: Sequence[torch.Tensor], lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`raw_moments` rows of many layer values at once, and their flat concatenation.

    One copy into a flat float32 buffer, three segmented reductions (sum, min, max) and one
    multi-tensor norm, whatever the number of layers: the recorder uses it for the small
    layers (biases, norm scales) where per-layer calls cost more than the arithmetic.

    Args:
        values: full (not 0-d) layer values.
        lengths: int64 tensor of their sizes, on their device.

    Returns:
        ``(len(values), 4)`` float32 rows and the flat buffer (for :meth:`Histogrammer.segmented`).
    """
    flats = [flat32(v) for v in values]
    flat = torch.cat(flats)
    sums = torch.segment_reduce(flat, "sum", lengths=lengths, unsafe=True)  # unsafe: no sync
    mins = torch.segment_reduce(flat, "min", lengths=lengths, unsafe=True)
    maxs = torch.segment_reduce(flat, "max", lengths=lengths, unsafe=True)
    sumsq = torch.stack(torch._foreach_norm(flats)).square_()
    return torch.stack([sums, sumsq, mins, maxs], dim=1), flat


def finalize_moments(
    raw: np.ndarray, n: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``[mean, std, norm, min, max]`` from :func:`raw_moments` rows, on the host.

    The standard deviation is the population one (ddof = 0).

    Args:
        raw: ``(L, 4)`` rows of :func:`raw_moments` (NaN rows for missing layers).
        n: ``(L,)`` layer sizes.
        present: ``(L,)`` mask of the layers that have this quantity.

    Returns:
        ``(L, 5)`` float64 moments and an ``(L,)`` mask of the layers to recompute
        exactly (non-finite values, or too much cancellation in ``E[x^2] - E[x]^2``).
    """
    raw = np.asarray(raw, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = raw[:, 0] / n
        msq = raw[:, 1] / n
        var = msq - mean * mean
        out = np.stack(
            [mean, np.sqrt(np.maximum(var, 0.0)), np.sqrt(raw[:, 1]), raw[:, 2], raw[:, 3]],
            axis=1,
        )
        redo = present & (~np.isfinite(raw).all(axis=1) | (mean * mean > _CANCELLATION * var))
    return out, redo


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

    def segmented(self, flat: torch.Tensor, lengths: torch.Tensor, spec: HistSpec) -> torch.Tensor:
        """Counts of many layers laid end to end in ``flat`` (float32), one row per layer.

        Each coordinate's fine key is offset by its layer's index times the number of fine
        keys, so one count covers every layer; the fold into ``spec``'s bins is one
        ``index_add_`` over the layer rows.

        Returns:
            int64 ``(len(lengths), spec.n_bins)``.
        """
        n_fine = 1 << (9 + spec.sub)
        n_layers = lengths.numel()
        key = torch.bitwise_right_shift(flat.view(torch.int32), 23 - spec.sub)
        base = torch.arange(n_layers, dtype=torch.int32, device=flat.device) * n_fine
        key.add_(torch.repeat_interleave(base, lengths, output_size=flat.numel()))
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
