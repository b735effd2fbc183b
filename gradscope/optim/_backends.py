"""The execution backends of the optimizer pipeline.

One tensor, ``torch._foreach_*`` lists, and the traced per-tensor form that
``torch.compile`` fuses into generated kernels.

Every piece of the pipeline (:mod:`gradscope.optim._functional`) is written once against
the :class:`Backend` protocol and runs unchanged on each of these:

* :data:`SINGLE` acts on one parameter tensor at a time. It is the reference path and the
  fastest eager path on CPU, where a parameter-major loop keeps each tensor in cache and
  ``torch._foreach_*`` only adds whole-model temporaries (docs/optimizers.md, "Backends").
* :data:`FOREACH` acts on lists of tensors with ``torch._foreach_*`` kernels: fewer kernel
  launches on CUDA. Per-layer scalars stay on the device as lists of 0-d tensors (stacked
  into one vector where a scalar recurrence runs), so there is no per-layer host sync.
* :data:`TRACED` acts on one tensor like :data:`SINGLE`, but every scalar may be a 0-d
  tensor (a traced hyperparameter) and every operation is plain tensor arithmetic, so
  that ``torch.compile`` can trace a whole bucket of parameters through the pipeline and
  inductor can fuse it (``fused=True``; :func:`compiled` keeps one compiled graph per
  bucket signature).

All ``torch._foreach_*`` calls of :mod:`gradscope.optim` live in this file, so a torch
change touches one place. The tests run every optimizer through every backend and require
agreement with a float64 oracle.
"""

# torch.optim calls torch._foreach_* the same way; torch leaves those names out of its
# __all__, so pyright would report each use as a private import.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import itertools
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import torch
from torch import Tensor

# A backend operand: one tensor (SINGLE, TRACED) or a list of tensors (FOREACH).
Operand = Any
# A per-layer scalar: a python float or a 0-d tensor (SINGLE, TRACED), a 1-d tensor (FOREACH).
Scalar = Any


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype for per-layer reductions: at least float32 (bfloat16 sums lose digits)."""
    return torch.promote_types(dtype, torch.float32)


#: Below this many coordinates :func:`sqrt_into` makes one ``torch.sqrt`` call.
SQRT_CHECK_MIN = 1 << 16
#: Coordinates :func:`sqrt_into` samples (strided) to count exact zeros.
SQRT_SAMPLE = 1024
#: Sampled zeros from which :func:`sqrt_into` takes the zero-safe form (1/32 of the sample).
SQRT_ZEROS = SQRT_SAMPLE // 32
#: Coordinates per piece of the zero-safe form (its mask stays in cache).
SQRT_CHUNK = 1 << 16


def sqrt_into(v: Tensor, out: Tensor | None = None) -> Tensor:
    """``torch.sqrt(v)`` into ``out`` (a new tensor when ``None``; may be ``v`` itself).

    The same bits as ``torch.sqrt`` (the call torch's own optimizers make), faster on CPU
    tensors with many exact zeros. There torch's float sqrt (MKL's vector library) takes
    about 13x longer per exact zero than per positive value, and a second moment is often
    mostly zeros (89 % of the large layers of a ResNet-18's ``exp_avg_sq`` after five
    steps: dead units, unused classes), so one sqrt cost several passes over the data.
    When a strided sample of 1024 coordinates holds at least 1/32 zeros, each piece of 64K
    coordinates takes the root of ``v + [v == 0]`` instead (the zeros become ones;
    ``x + 0 == x`` for every other value, NaN and inf included) and subtracts the mask
    again: the library's root of the same nonzero values, so the same bits, and 0 where
    ``v`` is 0 (``+0`` also for ``-0``, the one difference, which a stepsize
    ``1 / (sqrt(v) + eps)`` does not see). Other devices, dtypes, small or non-contiguous
    tensors take one ``torch.sqrt``.
    """
    if out is None:
        out = torch.empty_like(v)
    n = v.numel()
    if (
        n < SQRT_CHECK_MIN
        or type(v) is not Tensor
        or v.device.type != "cpu"
        or v.dtype not in (torch.float32, torch.float64)
        or out.dtype != v.dtype
        or not (v.is_contiguous() and out.is_contiguous())
    ):
        return torch.sqrt(v, out=out)
    fv, fo = v.view(-1), out.view(-1)
    if int((fv[:: n // SQRT_SAMPLE] == 0).sum()) < SQRT_ZEROS:
        return torch.sqrt(v, out=out)
    mask = torch.empty(min(n, SQRT_CHUNK), dtype=v.dtype)
    for i in range(0, n, SQRT_CHUNK):
        a, o = fv[i : i + SQRT_CHUNK], fo[i : i + SQRT_CHUNK]
        m = mask[: a.numel()]
        torch.eq(a, 0, out=m)
        torch.add(a, m, out=o)
        o.sqrt_()
        o.sub_(m)
    return out


def _is_zero(c: Any) -> bool:
    """True only for a python number equal to 0 (a traced 0-d tensor is never skipped)."""
    return isinstance(c, int | float) and c == 0


class Backend(Protocol):
    """The operations the pipeline pieces use; operands are tensors or lists of tensors.

    Methods ending in ``_`` update their first operand in place; the others return fresh
    operands. Scalars are python floats, or 0-d tensors where the backend allows them.
    """

    #: True when operands are lists of tensors
    foreach: bool

    @property
    def each(self) -> Backend:
        """The backend for one item of an operand (SINGLE for FOREACH, itself otherwise)."""
        ...

    def neg(self, x: Operand) -> Operand: ...
    def add_scaled(self, x: Operand, y: Operand, alpha: Scalar) -> Operand: ...
    def add_scaled_(self, x: Operand, y: Operand, alpha: Scalar) -> None: ...
    def mul_(self, x: Operand, c: Scalar) -> None: ...
    def lerp_(self, x: Operand, y: Operand, w: Scalar) -> None: ...
    def sub(self, x: Operand, y: Operand) -> Operand: ...
    def ema_(self, v: Operand, s: Operand, beta: Scalar) -> None: ...
    def ema_square_(self, v: Operand, g: Operand, beta: Scalar, add: Scalar = 0.0) -> None: ...
    def add_scalar_(self, x: Operand, c: Scalar) -> None: ...
    def div(self, x: Operand, c: Scalar) -> Operand: ...
    def addcmul_(self, x: Operand, y: Operand, z: Operand, value: Scalar) -> None: ...
    def maximum_(self, x: Operand, y: Operand) -> None: ...
    def sqrt_(self, x: Operand) -> None: ...
    def yogi_(self, v: Operand, g: Operand, beta: Scalar) -> None: ...
    def sqrt_add(self, v: Operand, eps: Scalar) -> Operand: ...
    def lincomb(self, x: Operand, a: Scalar, y: Operand, b: Scalar) -> Operand: ...
    def scale_add(self, x: Operand, f: Scalar, c: Scalar) -> Operand: ...
    def scale(self, x: Operand, s: Scalar) -> Operand: ...
    def sumsq(self, x: Operand) -> Scalar: ...
    def dot(self, x: Operand, y: Operand) -> Scalar: ...
    def sum(self, x: Operand) -> Scalar: ...
    def mean_square(self, x: Operand) -> Scalar: ...
    def mean(self, x: Operand) -> Scalar: ...
    def amin(self, x: Operand) -> Scalar: ...
    def nan_to_zero(self, x: Operand) -> Operand: ...
    def rsqrt_mean(self, v: Operand, sqrt_c: Scalar) -> Scalar: ...
    def stack(self, s: Any) -> Scalar: ...
    def unstack(self, s: Scalar) -> Any: ...
    def apply_div_(self, x: Operand, m: Operand, d: Operand, value: Scalar) -> None: ...
    def apply_mul_(self, x: Operand, m: Operand, u: Operand, value: Scalar) -> None: ...
    def sub_scalars_(self, x: Operand, s: list) -> None: ...
    def reciprocal_(self, d: Operand) -> Operand: ...
    def diff_into(self, x: Operand, prev: Operand) -> Operand: ...
    def clone(self, x: Operand, into: Operand | None = None) -> Operand: ...
    def ones(self, like: Operand) -> Operand: ...
    def items(self, x: Operand) -> list: ...


def _is_dtensor(x: Tensor) -> bool:
    """Is ``x`` a ``torch.distributed.tensor.DTensor`` (FSDP2's sharded parameters)?"""
    return type(x).__name__ == "DTensor"


def _global(r: Tensor) -> Tensor:
    """A layer reduction as a plain 0-d tensor, the whole layer's value on every rank.

    A DTensor result (DTensor's own sum, min or mean of the local slices, not yet combined)
    is combined over the ranks; anything else is returned as is. A flat view of an unevenly
    sharded DTensor does not exist, so DTensor inputs never take the ``dot`` of flat views.
    """
    # the attribute exists on DTensor only (the check above; a Tensor subclass)
    return r.full_tensor() if _is_dtensor(r) else r  # pyright: ignore[reportAttributeAccessIssue]


class _Single:
    """Backend over one tensor; per-layer scalars are python floats (CPU) or 0-d tensors."""

    foreach = False

    @property
    def each(self) -> _Single:
        return self

    @staticmethod
    def neg(x: Tensor) -> Tensor:
        return torch.neg(x)

    @staticmethod
    def add_scaled(x: Tensor, y: Tensor, alpha: float) -> Tensor:
        """``x + alpha * y`` (new tensor)."""
        return torch.add(x, y, alpha=alpha)

    @staticmethod
    def add_scaled_(x: Tensor, y: Tensor, alpha: float) -> None:
        """``x <- x + alpha * y``."""
        x.add_(y, alpha=alpha)

    @staticmethod
    def mul_(x: Tensor, c: float) -> None:
        x.mul_(c)

    @staticmethod
    def lerp_(x: Tensor, y: Tensor, w: float) -> None:
        """``x <- x + w (y - x)``, i.e. the EMA ``x <- (1 - w) x + w y``."""
        x.lerp_(y, w)

    @staticmethod
    def sub(x: Tensor, y: Tensor) -> Tensor:
        return x - y

    @staticmethod
    def ema_(v: Tensor, s: Tensor, beta: float) -> None:
        """``v <- beta v + (1 - beta) s``."""
        v.mul_(beta).add_(s, alpha=1.0 - beta)

    @staticmethod
    def ema_square_(v: Tensor, g: Tensor, beta: float, add: float = 0.0) -> None:
        """``v <- beta v + (1 - beta) g^2 + add``, without a g^2 temporary.

        With add != 0, beta v + add is one lerp towards add / (1 - beta).
        """
        if add:
            end = torch.full((), add / (1.0 - beta), dtype=v.dtype, device=v.device)
            v.lerp_(end, 1.0 - beta)
        else:
            v.mul_(beta)
        v.addcmul_(g, g, value=1.0 - beta)

    @staticmethod
    def add_scalar_(x: Tensor, c: float) -> None:
        x.add_(c)

    @staticmethod
    def div(x: Tensor, c: float) -> Tensor:
        return x / c

    @staticmethod
    def addcmul_(x: Tensor, y: Tensor, z: Tensor, value: float) -> None:
        x.addcmul_(y, z, value=value)

    @staticmethod
    def maximum_(x: Tensor, y: Tensor) -> None:
        torch.maximum(x, y, out=x)

    @staticmethod
    def sqrt_(x: Tensor) -> None:
        sqrt_into(x, x)

    @staticmethod
    def yogi_(v: Tensor, g: Tensor, beta: float) -> None:
        """``v <- v - (1 - beta) sign(v - g^2) g^2`` (Yogi's additive second moment)."""
        g2 = g * g
        v.addcmul_(torch.sign(v - g2), g2, value=-(1.0 - beta))

    @staticmethod
    def sqrt_add(v: Tensor, eps: float) -> Tensor:
        """sqrt(v) + eps."""
        d = sqrt_into(v)
        if eps:
            d.add_(eps)
        return d

    @staticmethod
    def lincomb(x: Tensor, a: Scalar, y: Tensor, b: Scalar) -> Tensor:
        """``a x + b y`` with per-layer scalars a, b (two passes, one new tensor)."""
        if isinstance(a, float):
            return torch.mul(y, b).add_(x, alpha=a)
        out = y * b.to(y.dtype)
        return out.addcmul_(x, a.to(x.dtype))

    @staticmethod
    def scale_add(x: Tensor, f: Scalar, c: float) -> Tensor:
        """``f x + c`` in one pass (a new tensor)."""
        c0 = torch.full((), c, dtype=x.dtype, device=x.device)
        if isinstance(f, float):
            return torch.add(c0, x, alpha=f)
        return torch.addcmul(c0, x, f.to(x.dtype))

    @staticmethod
    def scale(x: Tensor, s: Tensor) -> Tensor:
        """``x * s`` with s a per-layer 0-d scalar."""
        return x * s

    @staticmethod
    def sumsq(x: Tensor) -> Tensor:
        dt = acc_dtype(x.dtype)
        if _is_dtensor(x):
            return _global(x.to(dt).square().sum())
        x = x.reshape(-1).to(dt)
        return torch.dot(x, x)

    @staticmethod
    def dot(x: Tensor, y: Tensor) -> Tensor:
        dt = acc_dtype(x.dtype)
        if _is_dtensor(x):
            return _global((x.to(dt) * y.to(dt)).sum())
        return torch.dot(x.reshape(-1).to(dt), y.reshape(-1).to(dt))

    @staticmethod
    def sum(x: Tensor) -> Tensor:
        return _global(x.sum(dtype=acc_dtype(x.dtype)))

    @staticmethod
    def mean_square(x: Tensor) -> Tensor:
        """mean_i x_i^2 as a 0-d tensor (one pass, no temporary)."""
        return _Single.sumsq(x) / max(x.numel(), 1)

    @staticmethod
    def mean(x: Tensor) -> Tensor:
        return _global(x.mean(dtype=acc_dtype(x.dtype)))

    @staticmethod
    def amin(x: Tensor) -> Tensor:
        return _global(x.amin())

    @staticmethod
    def nan_to_zero(x: Tensor) -> Tensor:
        """Replace NaN by 0 in place (x is a fresh temporary; +-inf are kept)."""
        return x.nan_to_num_(nan=0.0, posinf=torch.inf, neginf=-torch.inf)

    @staticmethod
    def rsqrt_mean(v: Tensor, sqrt_c: Scalar) -> Tensor:
        """mean_i 1 / sqrt(v_i / c), AdamL's layer stepsize (sqrt_c = sqrt(1 - b2^t))."""
        return _global(torch.rsqrt(v).mean(dtype=acc_dtype(v.dtype))) * sqrt_c

    @staticmethod
    def stack(s: Tensor) -> Scalar:
        """Per-layer scalar for scalar math.

        A python float on CPU (reading a CPU tensor is no device sync, and float arithmetic
        avoids ~5 us of dispatch per 0-d tensor op), the 0-d tensor itself on an accelerator
        (no host sync).
        """
        return s.item() if s.device.type == "cpu" else s

    @staticmethod
    def unstack(s: Scalar) -> Scalar:
        return s

    @staticmethod
    def apply_div_(x: Tensor, m: Tensor, d: Tensor, value: float) -> None:
        """``x <- x + value * m / d``."""
        x.addcdiv_(m, d, value=value)

    @staticmethod
    def apply_mul_(x: Tensor, m: Tensor, u: Tensor, value: float) -> None:
        """``x <- x + value * u * m`` (u elementwise or a 0-d per-layer scalar)."""
        if u.dim() == 0:
            x.add_(m * u.to(m.dtype), alpha=value)
        else:
            x.addcmul_(m, u, value=value)

    @staticmethod
    def sub_scalars_(x: Tensor, s: list[Tensor]) -> None:
        x.sub_(s[0])

    @staticmethod
    def reciprocal_(d: Tensor) -> Tensor:
        """1/d in place (d is a transient denominator), returned."""
        return d.reciprocal_()

    @staticmethod
    def diff_into(x: Tensor, prev: Tensor) -> Tensor:
        """``x - prev`` written over prev (a transient copy), returned: no allocation on the CPU."""
        return torch.sub(x, prev, out=prev)

    @staticmethod
    def clone(x: Tensor, into: Tensor | None = None) -> Tensor:
        """A copy of ``x``: into the kept buffer ``into`` when given, else a new tensor."""
        return x.clone() if into is None else into.copy_(x)

    @staticmethod
    def ones(like: Tensor) -> Tensor:
        """A 0-d one of ``like``'s dtype and device (a per-layer unit stepsize)."""
        return torch.ones((), dtype=like.dtype, device=like.device)

    @staticmethod
    def items(x: Operand) -> list:
        return [x]


class _Foreach:
    """Backend over lists of tensors (``torch._foreach_*``); scalars are lists of 0-d tensors."""

    foreach = True

    @property
    def each(self) -> _Single:
        return SINGLE

    @staticmethod
    def neg(x: list[Tensor]) -> tuple[Tensor, ...]:
        return torch._foreach_neg(x)

    @staticmethod
    def add_scaled(x: list[Tensor], y: list[Tensor], alpha: float) -> tuple[Tensor, ...]:
        return torch._foreach_add(x, y, alpha=alpha)

    @staticmethod
    def add_scaled_(x: list[Tensor], y: list[Tensor], alpha: float) -> None:
        torch._foreach_add_(x, y, alpha=alpha)

    @staticmethod
    def mul_(x: list[Tensor], c: float) -> None:
        torch._foreach_mul_(x, c)

    @staticmethod
    def lerp_(x: list[Tensor], y: list[Tensor], w: float) -> None:
        torch._foreach_lerp_(x, y, w)

    @staticmethod
    def sub(x: list[Tensor], y: list[Tensor]) -> tuple[Tensor, ...]:
        return torch._foreach_sub(x, y)

    @staticmethod
    def ema_(v: list[Tensor], s: list[Tensor], beta: float) -> None:
        torch._foreach_mul_(v, beta)
        torch._foreach_add_(v, s, alpha=1.0 - beta)

    @staticmethod
    def ema_square_(v: list[Tensor], g: list[Tensor], beta: float, add: float = 0.0) -> None:
        torch._foreach_mul_(v, beta)
        torch._foreach_addcmul_(v, g, g, value=1.0 - beta)
        if add:
            torch._foreach_add_(v, add)

    @staticmethod
    def add_scalar_(x: list[Tensor], c: float) -> None:
        torch._foreach_add_(x, c)

    @staticmethod
    def div(x: list[Tensor], c: float) -> tuple[Tensor, ...]:
        return torch._foreach_div(x, c)

    @staticmethod
    def addcmul_(x: list[Tensor], y: list[Tensor], z: list[Tensor], value: float) -> None:
        torch._foreach_addcmul_(x, y, z, value=value)

    @staticmethod
    def maximum_(x: list[Tensor], y: list[Tensor]) -> None:
        torch._foreach_maximum_(x, y)

    @staticmethod
    def sqrt_(x: list[Tensor]) -> None:
        torch._foreach_sqrt_(x)

    @staticmethod
    def yogi_(v: list[Tensor], g: list[Tensor], beta: float) -> None:
        g2 = torch._foreach_mul(g, g)
        sign = torch._foreach_sign(torch._foreach_sub(v, g2))
        torch._foreach_addcmul_(v, sign, g2, value=-(1.0 - beta))

    @staticmethod
    def sqrt_add(v: list[Tensor], eps: float) -> tuple[Tensor, ...]:
        d = torch._foreach_sqrt(v)
        if eps:
            torch._foreach_add_(d, eps)
        return d

    @staticmethod
    def lincomb(
        x: list[Tensor], a: list[Tensor], y: list[Tensor], b: list[Tensor]
    ) -> tuple[Tensor, ...]:
        out = _Foreach.scale(y, b)
        torch._foreach_add_(out, _Foreach.scale(x, a))
        return out

    @staticmethod
    def scale(x: list[Tensor], s: list[Tensor]) -> tuple[Tensor, ...]:
        return torch._foreach_mul(x, [si.to(xi.dtype) for xi, si in zip(x, s)])

    @staticmethod
    def sumsq(x: list[Tensor]) -> list[Tensor]:
        return [_Single.sumsq(xi) for xi in x]

    @staticmethod
    def dot(x: list[Tensor], y: list[Tensor]) -> list[Tensor]:
        return [_Single.dot(xi, yi) for xi, yi in zip(x, y)]

    @staticmethod
    def sum(x: list[Tensor]) -> list[Tensor]:
        return [_Single.sum(xi) for xi in x]

    @staticmethod
    def mean_square(x: list[Tensor]) -> list[Tensor]:
        return [_Single.mean_square(xi) for xi in x]

    @staticmethod
    def mean(x: list[Tensor]) -> list[Tensor]:
        return [_Single.mean(xi) for xi in x]

    @staticmethod
    def amin(x: list[Tensor]) -> list[Tensor]:
        return [xi.amin() for xi in x]

    @staticmethod
    def nan_to_zero(x: list[Tensor]) -> list[Tensor]:
        return [_Single.nan_to_zero(xi) for xi in x]

    @staticmethod
    def rsqrt_mean(v: list[Tensor], sqrt_c: float) -> list[Tensor]:
        r = torch._foreach_rsqrt(v)
        return [ri.mean(dtype=acc_dtype(ri.dtype)) * sqrt_c for ri in r]

    @staticmethod
    def scale_add(x: list[Tensor], f: list[Tensor], c: float) -> tuple[Tensor, ...]:
        out = _Foreach.scale(x, f)
        torch._foreach_add_(out, c)
        return out

    @staticmethod
    def stack(s: list[Tensor]) -> Tensor:
        return torch.stack(s)

    @staticmethod
    def unstack(s: Tensor) -> list[Tensor]:
        return list(s.unbind(0))

    @staticmethod
    def apply_div_(x: list[Tensor], m: list[Tensor], d: list[Tensor], value: float) -> None:
        torch._foreach_addcdiv_(x, m, d, value)

    @staticmethod
    def apply_mul_(x: list[Tensor], m: list[Tensor], u: list[Tensor], value: float) -> None:
        u = [ui.to(mi.dtype) for mi, ui in zip(m, u)]
        torch._foreach_add_(x, torch._foreach_mul(m, u), alpha=value)

    @staticmethod
    def sub_scalars_(x: list[Tensor], s: list[Tensor]) -> None:
        torch._foreach_sub_(x, s)

    @staticmethod
    def reciprocal_(d: list[Tensor]) -> list[Tensor]:
        torch._foreach_reciprocal_(d)
        return d

    @staticmethod
    def diff_into(x: list[Tensor], prev: list[Tensor]) -> tuple[Tensor, ...]:
        # one fused kernel; the device caching allocator makes the new list cheap
        return torch._foreach_sub(x, prev)

    @staticmethod
    def clone(x: list[Tensor], into: list[Tensor] | None = None) -> list[Tensor]:
        if into is not None:
            torch._foreach_copy_(into, x)
            return into
        return [xi.clone() for xi in x]

    @staticmethod
    def ones(like: list[Tensor]) -> list[Tensor]:
        return [_Single.ones(xi) for xi in like]

    @staticmethod
    def items(x: Operand) -> list:
        return list(x)


class _Traced(_Single):
    """Backend over one tensor for ``torch.compile``: scalars may be 0-d tensors.

    Each operation is plain tensor arithmetic (no ``alpha=``/``value=`` keywords, which
    need python numbers, and no ``.item()``, which would break the graph); inductor fuses
    the chain into a few loops per tensor, so the temporaries the expressions seem to
    create never reach memory. A python 0 is still skipped; a traced scalar never is.
    Per-layer reductions stay 0-d tensors inside the graph.
    """

    @property
    def each(self) -> _Traced:
        return self

    @staticmethod
    def neg(x: Tensor) -> Tensor:
        return -x

    @staticmethod
    def add_scaled(x: Tensor, y: Tensor, alpha: Scalar) -> Tensor:
        return x + y * alpha

    @staticmethod
    def add_scaled_(x: Tensor, y: Tensor, alpha: Scalar) -> None:
        x.add_(y * alpha)

    @staticmethod
    def lerp_(x: Tensor, y: Tensor, w: Scalar) -> None:
        x.add_((y - x) * w)

    @staticmethod
    def ema_(v: Tensor, s: Tensor, beta: Scalar) -> None:
        v.mul_(beta).add_(s * (1.0 - beta))

    @staticmethod
    def ema_square_(v: Tensor, g: Tensor, beta: Scalar, add: Scalar = 0.0) -> None:
        v.mul_(beta).add_(g * g * (1.0 - beta))
        if not _is_zero(add):
            v.add_(add)

    @staticmethod
    def addcmul_(x: Tensor, y: Tensor, z: Tensor, value: Scalar) -> None:
        x.add_(y * z * value)

    @staticmethod
    def maximum_(x: Tensor, y: Tensor) -> None:
        x.copy_(torch.maximum(x, y))

    @staticmethod
    def sqrt_(x: Tensor) -> None:
        # inductor's own square root: sqrt_into's zero count is data-dependent control
        # flow, which a full graph cannot trace
        x.copy_(torch.sqrt(x))

    @staticmethod
    def yogi_(v: Tensor, g: Tensor, beta: Scalar) -> None:
        g2 = g * g
        v.add_(torch.sign(v - g2) * g2 * (beta - 1.0))

    @staticmethod
    def sqrt_add(v: Tensor, eps: Scalar) -> Tensor:
        d = torch.sqrt(v)
        return d if _is_zero(eps) else d + eps

    @staticmethod
    def lincomb(x: Tensor, a: Scalar, y: Tensor, b: Scalar) -> Tensor:
        return y * b + x * a

    @staticmethod
    def scale_add(x: Tensor, f: Scalar, c: Scalar) -> Tensor:
        return x * f + c

    @staticmethod
    def nan_to_zero(x: Tensor) -> Tensor:
        """Replace NaN by 0 (+-inf are kept), as a comparison inductor vectorizes.

        ``x == x`` is false only for NaN; inductor's CPU code for ``isnan`` and
        ``nan_to_num`` tests lane by lane, a scalar loop inside every vector iteration.
        """
        return torch.where(x == x, x, 0.0)

    # Layer sums accumulate in float64 and are rounded once to the eager path's dtype.
    # inductor's generated float32 loops add into a few vector accumulators, so a layer of
    # a million coordinates or more summed in float32 drifted far from torch's own
    # (pairwise) sums: AdamL's layer stepsize by 3-7e-5 relative on a ResNet-18's last
    # blocks, against 1e-7 per tensor. In float64 the generated sum is within an ulp.

    @staticmethod
    def sumsq(x: Tensor) -> Tensor:
        return _Traced.dot(x, x)

    @staticmethod
    def dot(x: Tensor, y: Tensor) -> Tensor:
        return _global((x.to(torch.float64) * y.to(torch.float64)).sum()).to(acc_dtype(x.dtype))

    @staticmethod
    def sum(x: Tensor) -> Tensor:
        return _global(x.sum(dtype=torch.float64)).to(acc_dtype(x.dtype))

    @staticmethod
    def mean_square(x: Tensor) -> Tensor:
        return _Traced.sumsq(x) / max(x.numel(), 1)

    @staticmethod
    def mean(x: Tensor) -> Tensor:
        return _global(x.mean(dtype=torch.float64)).to(acc_dtype(x.dtype))

    @staticmethod
    def rsqrt_mean(v: Tensor, sqrt_c: Scalar) -> Tensor:
        m = _global(torch.rsqrt(v).mean(dtype=torch.float64)).to(acc_dtype(v.dtype))
        return m * sqrt_c

    @staticmethod
    def stack(s: Tensor) -> Tensor:
        return s

    @staticmethod
    def apply_div_(x: Tensor, m: Tensor, d: Tensor, value: Scalar) -> None:
        x.add_(m / d * value)

    @staticmethod
    def apply_mul_(x: Tensor, m: Tensor, u: Tensor, value: Scalar) -> None:
        x.add_(m * u * value)

    @staticmethod
    def reciprocal_(d: Tensor) -> Tensor:
        return 1.0 / d

    @staticmethod
    def diff_into(x: Tensor, prev: Tensor) -> Tensor:
        return x - prev


def bump_steps(steps: list[Tensor]) -> None:
    """Add 1 to every step counter (0-d tensors) in one call.

    Used by a fused graph whose counters live on another device (a CPU graph bumps them
    itself).
    """
    torch._foreach_add_(steps, 1.0)


SINGLE = _Single()
FOREACH = _Foreach()
TRACED = _Traced()


# ----------------------------------------------------------------------------------------
# Compiled graphs, one per bucket signature.
# ----------------------------------------------------------------------------------------

#: compiled graphs kept at once (least recently used first out)
CACHE_SIZE = 256
_CACHE: OrderedDict[Hashable, Callable[..., Any]] = OrderedDict()
_LOCK = threading.Lock()
_CHECKED_CPU_COMPILER: list[bool] = []
_SERIAL = itertools.count()


def compiled(key: Hashable, make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """``torch.compile(make())`` for this bucket signature, compiled on first call and cached.

    ``key`` must determine everything the function bakes into its graph (the pipeline's
    pieces and options, the bucket's shapes, strides, dtypes and device); per-step numbers
    must be tensor arguments, or every step would recompile. Each key gets its own copy of
    the function's code object: dynamo keeps its guards and recompile budget per code
    object, so many buckets and configurations never exhaust one function's recompile
    limit (and never evict each other's graphs).
    """
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
        fn = make()
        code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{next(_SERIAL)}")
        fresh = types.FunctionType(code, fn.__globals__, code.co_name, None, fn.__closure__)
        # dynamo's guards check every input's shape and stride already; inductor's
        # own per-input size asserts would check them again on every call
        out = torch.compile(fresh, fullgraph=True, dynamic=False, options={"size_asserts": False})
        _CACHE[key] = out
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return out


def clear_compiled() -> None:
    """Drop every cached fused graph (the next fused step compiles again)."""
    with _LOCK:
        _CACHE.clear()


def compiled_count() -> int:
    """Number of fused graphs in the cache (tests check that nothing recompiles)."""
    return len(_CACHE)


def check_fusable(device: torch.device) -> None:
    """Raise a RuntimeError that says what to do if ``fused=True`` cannot run on ``device``.

    inductor generates C++/OpenMP for CPU tensors and needs a C++ compiler on the path;
    without one the first fused step would fail deep inside torch.compile.
    """
    if device.type == "cpu":
        if _CHECKED_CPU_COMPILER:
            return
        from torch._inductor import cpp_builder, exc

        try:
            cpp_builder.get_cpp_compiler()
        except exc.InvalidCxxCompiler as err:
            raise RuntimeError(
                "fused=True on CPU parameters needs a C++ compiler (torch.compile's inductor "
                "backend builds C++/OpenMP kernels): install g++ or clang++, or set CXX, or "
                "use fused=False (the per-tensor path, same results)"
            ) from err
        _CHECKED_CPU_COMPILER.append(True)
    elif device.type != "cuda":
        raise RuntimeError(
            f"fused=True supports CPU and CUDA parameters, not {device.type}: use fused=False"
        )
