"""Pure tensor kernels of the adaptive-optimizer pipeline, written once for two backends.

Every piece of the pipeline (moment EMAs, second-moment statistics, layer reductions,
denominator transforms) is a function of an ``ops`` backend and its operands:

* :data:`SINGLE` acts on one parameter tensor at a time. It is the reference path and the
  fastest on CPU, where a parameter-major loop keeps each tensor in cache and
  ``torch._foreach_*`` only adds whole-model temporaries (spec/optimizers.md section 12).
* :data:`FOREACH` acts on lists of tensors with ``torch._foreach_*`` kernels: fewer kernel
  launches on CUDA. Per-layer scalars stay on the device as lists of 0-d tensors (stacked
  into one vector where a scalar recurrence runs), so there is no per-layer host sync.

All ``torch._foreach_*`` calls of gradscope live in this file, so a torch change touches
one place. The tests run every optimizer through both backends and require agreement to
float rounding.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

# A backend operand: one tensor (SINGLE) or a list of tensors (FOREACH).
Operand = Any
# A per-layer scalar: a python float or a 0-d tensor (SINGLE), a 1-d tensor (FOREACH).
Scalar = Any


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype for per-layer reductions: at least float32 (bfloat16 sums lose digits)."""
    return torch.promote_types(dtype, torch.float32)


class _Single:
    """Backend over one tensor; per-layer scalars are 0-d tensors."""

    foreach = False

    @staticmethod
    def neg(x: Tensor) -> Tensor:
        return torch.neg(x)

    @staticmethod
    def add_scaled(x: Tensor, y: Tensor, alpha: float) -> Tensor:
        """x + alpha * y (new tensor)."""
        return torch.add(x, y, alpha=alpha)

    @staticmethod
    def add_scaled_(x: Tensor, y: Tensor, alpha: float) -> None:
        """x <- x + alpha * y."""
        x.add_(y, alpha=alpha)

    @staticmethod
    def mul_(x: Tensor, c: float) -> None:
        x.mul_(c)

    @staticmethod
    def lerp_(x: Tensor, y: Tensor, w: float) -> None:
        """x <- x + w (y - x), i.e. the EMA x <- (1 - w) x + w y."""
        x.lerp_(y, w)

    @staticmethod
    def sub(x: Tensor, y: Tensor) -> Tensor:
        return x - y

    @staticmethod
    def ema_(v: Tensor, s: Tensor, beta: float) -> None:
        """v <- beta v + (1 - beta) s."""
        v.mul_(beta).add_(s, alpha=1.0 - beta)

    @staticmethod
    def ema_square_(v: Tensor, g: Tensor, beta: float, add: float = 0.0) -> None:
        """v <- beta v + (1 - beta) g^2 + add, without a g^2 temporary.

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
        x.sqrt_()

    @staticmethod
    def yogi_(v: Tensor, g: Tensor, beta: float) -> None:
        """v <- v - (1 - beta) sign(v - g^2) g^2 (Yogi's additive second moment)."""
        g2 = g * g
        v.addcmul_(torch.sign(v - g2), g2, value=-(1.0 - beta))

    @staticmethod
    def sqrt_add(v: Tensor, eps: float) -> Tensor:
        """sqrt(v) + eps."""
        d = torch.sqrt(v)
        if eps:
            d.add_(eps)
        return d

    @staticmethod
    def lincomb(x: Tensor, a: Scalar, y: Tensor, b: Scalar) -> Tensor:
        """a x + b y with per-layer scalars a, b (two passes, one new tensor)."""
        if isinstance(a, float):
            return torch.mul(y, b).add_(x, alpha=a)
        out = y * b.to(y.dtype)
        return out.addcmul_(x, a.to(x.dtype))

    @staticmethod
    def scale_add(x: Tensor, f: Scalar, c: float) -> Tensor:
        """f x + c in one pass (a new tensor)."""
        c0 = torch.full((), c, dtype=x.dtype, device=x.device)
        if isinstance(f, float):
            return torch.add(c0, x, alpha=f)
        return torch.addcmul(c0, x, f.to(x.dtype))

    @staticmethod
    def scale(x: Tensor, s: Tensor) -> Tensor:
        """x * s with s a per-layer 0-d scalar."""
        return x * s

    @staticmethod
    def sumsq(x: Tensor) -> Tensor:
        x = x.reshape(-1).to(_acc_dtype(x.dtype))
        return torch.dot(x, x)

    @staticmethod
    def dot(x: Tensor, y: Tensor) -> Tensor:
        dt = _acc_dtype(x.dtype)
        return torch.dot(x.reshape(-1).to(dt), y.reshape(-1).to(dt))

    @staticmethod
    def sum(x: Tensor) -> Tensor:
        return x.sum(dtype=_acc_dtype(x.dtype))

    @staticmethod
    def mean_square(x: Tensor) -> Tensor:
        """mean_i x_i^2 as a 0-d tensor (one pass, no temporary)."""
        return _Single.sumsq(x) / max(x.numel(), 1)

    @staticmethod
    def mean(x: Tensor) -> Tensor:
        return x.mean(dtype=_acc_dtype(x.dtype))

    @staticmethod
    def amin(x: Tensor) -> Tensor:
        return x.amin()

    @staticmethod
    def rsqrt_mean(v: Tensor, c: float) -> Tensor:
        """mean_i 1 / sqrt(v_i / c), AdamL's layer stepsize (c = 1 - b2^t)."""
        return torch.rsqrt(v).mean(dtype=_acc_dtype(v.dtype)) * math.sqrt(c)

    @staticmethod
    def stack(s: Tensor) -> Scalar:
        """Per-layer scalar for scalar math: a python float on CPU (reading a CPU tensor is
        no device sync, and float arithmetic avoids ~5 us of dispatch per 0-d tensor op),
        the 0-d tensor itself on an accelerator (no host sync)."""
        return s.item() if s.device.type == "cpu" else s

    @staticmethod
    def unstack(s: Scalar) -> Scalar:
        return s

    @staticmethod
    def apply_div_(x: Tensor, m: Tensor, d: Tensor, value: float) -> None:
        """x <- x + value * m / d."""
        x.addcdiv_(m, d, value=value)

    @staticmethod
    def apply_mul_(x: Tensor, m: Tensor, u: Tensor, value: float) -> None:
        """x <- x + value * u * m (u elementwise or a 0-d per-layer scalar)."""
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
        """x - prev written over prev (a transient copy), returned: no allocation on the CPU."""
        return torch.sub(x, prev, out=prev)

    @staticmethod
    def clone(x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def items(x: Operand) -> list:
        return [x]


class _Foreach:
    """Backend over lists of tensors (``torch._foreach_*``); scalars are lists of 0-d tensors."""

    foreach = True

    @staticmethod
    def neg(x: list[Tensor]) -> list[Tensor]:
        return torch._foreach_neg(x)

    @staticmethod
    def add_scaled(x: list[Tensor], y: list[Tensor], alpha: float) -> list[Tensor]:
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
    def sub(x: list[Tensor], y: list[Tensor]) -> list[Tensor]:
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
    def div(x: list[Tensor], c: float) -> list[Tensor]:
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
    def sqrt_add(v: list[Tensor], eps: float) -> list[Tensor]:
        d = torch._foreach_sqrt(v)
        if eps:
            torch._foreach_add_(d, eps)
        return d

    @staticmethod
    def lincomb(x: list[Tensor], a: list[Tensor], y: list[Tensor], b: list[Tensor]) -> list[Tensor]:
        out = _Foreach.scale(y, b)
        torch._foreach_add_(out, _Foreach.scale(x, a))
        return out

    @staticmethod
    def scale(x: list[Tensor], s: list[Tensor]) -> list[Tensor]:
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
    def rsqrt_mean(v: list[Tensor], c: float) -> list[Tensor]:
        r = torch._foreach_rsqrt(v)
        return [ri.mean(dtype=_acc_dtype(ri.dtype)) * math.sqrt(c) for ri in r]

    @staticmethod
    def scale_add(x: list[Tensor], f: list[Tensor], c: float) -> list[Tensor]:
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
    def diff_into(x: list[Tensor], prev: list[Tensor]) -> list[Tensor]:
        # one fused kernel; the device caching allocator makes the new list cheap
        return torch._foreach_sub(x, prev)

    @staticmethod
    def clone(x: list[Tensor]) -> list[Tensor]:
        return [xi.clone() for xi in x]

    @staticmethod
    def items(x: Operand) -> list:
        return list(x)


SINGLE = _Single()
FOREACH = _Foreach()


# ----------------------------------------------------------------------------------------
# Second-moment statistics: the one piece in which most Adam-family optimizers differ.
# Each takes the backend, the (decayed) gradient g, the updated first moment m and the
# group's hyperparameters, and returns the ROOT r of the statistic, s = r^2, so that the
# EMA v <- b2 v + (1 - b2) r^2 runs as one fused addcmul without an r^2 temporary.
# (Eve's statistic is not a square; its declaration says so with ``statistic_is_square``.)
# ----------------------------------------------------------------------------------------


def grad_square(ops: Any, g: Operand, m: Operand, hp: dict) -> Operand:
    """Adam: s = g^2 (root r = g)."""
    return g


def belief_residual(ops: Any, g: Operand, m: Operand, hp: dict) -> Operand:
    """AdaBelief: s = (g - m_t)^2, the squared error of m_t as a prediction of g_t."""
    return ops.sub(g, m)


def aida_coefficients(s_mm: Tensor, s_gg: Tensor, s_mg: Tensor, k: int, xi: float):
    """Aida's K mutual projections as a scalar recurrence (spec/optimizers.md section 6).

    Every projected vector is a multiple of m or g, so with S_mm = |m|^2, S_gg = |g|^2 and
    S_mg = <m, g> the K rounds

        m^(k) = <m^(k-1), g^(k-1)> / (|g^(k-1)|^2 + xi) g^(k-1)
        g^(k) = <m^(k-1), g^(k-1)> / (|m^(k-1)|^2 + xi) m^(k-1)

    reduce to d = a b S_mg, a' = b d / (b^2 n_Y + xi), b' = a d / (a^2 n_X + xi) with
    (n_X, n_Y) swapped every round. Returns (a, b) with m^(K) - g^(K) = a m - b g for K
    even and a g - b m for K odd. Works elementwise, so a vector of layers is one call.
    """
    a = b = s_mg * 0 + 1  # ones of the scalars' kind (floats or tensors)
    n_x, n_y = s_mm, s_gg
    for _ in range(k):
        d = a * b * s_mg
        a, b = b * d / (b * b * n_y + xi), a * d / (a * a * n_x + xi)
        n_x, n_y = n_y, n_x
    return a, b


def aida_residual(ops: Any, g: Operand, m: Operand, hp: dict) -> Operand:
    """Aida: s = (m^(K) - g^(K))^2 after K layerwise mutual projections of m and g (root).

    Costs three reductions per layer whatever K (the scalar recurrence of
    :func:`aida_coefficients`), never K full-tensor projections.
    """
    s_mm = ops.stack(ops.sumsq(m))
    s_gg = ops.stack(ops.sumsq(g))
    s_mg = ops.stack(ops.dot(m, g))
    a, b = aida_coefficients(s_mm, s_gg, s_mg, hp["k"], hp["xi"])
    a, nb = ops.unstack(a), ops.unstack(-b)
    if hp["k"] % 2 == 0:
        return ops.lincomb(m, a, g, nb)  # a m - b g
    return ops.lincomb(g, a, m, nb)  # a g - b m


def aidagrad_projection(ops: Any, g: Operand, m: Operand, hp: dict) -> Operand:
    """AidaGrad: s = (g^p)^2, g^p = <m, g> / (|m|^2 + xi) m, g projected onto m (root)."""
    s_mm = ops.stack(ops.sumsq(m))
    s_mg = ops.stack(ops.dot(m, g))
    c = ops.unstack(s_mg / (s_mm + hp["xi"]))
    return ops.scale(m, c)


def examplewise_square(ops: Any, g: Operand, m: Operand, hp: dict) -> Operand:
    """Eve: s = mean_b g_b^2, handed in by the caller (``hp['sq_mean']``)."""
    return hp["sq_mean"]


# ----------------------------------------------------------------------------------------
# Stepsize pieces: from the second moment (and t) to either a denominator d, applied as
# x += -lr / bc1 * m / d, or a stepsize u, applied as x += -lr / bc1 * u * m.
# ----------------------------------------------------------------------------------------


def rectification(beta2: float, t: int) -> float:
    """RAdam's variance rectification r_t, or 0.0 while rho_t <= 5 (the SGD phase).

    rho_inf = 2 / (1 - b2) - 1, rho_t = rho_inf - 2 t b2^t / (1 - b2^t),
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)).
    """
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)
    if rho_t <= 5.0:
        return 0.0
    return math.sqrt(
        (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    )


def set_transform(ops: Any, v: Operand, bc2: float, eps: float, tau: float) -> Operand:
    """SET-Adam's denominator w~ from the Adam EMA v, layerwise, on a transient copy.

    S: v~ = cos^2(v, 1) v with cos^2 = (sum v)^2 / (d sum v^2)  (0 when v == 0);
    E: w = sqrt(v~ / bc2 + eps);   T: w~ = w - tau min_i w_i.
    """
    factors = [
        _ratio(s * s, q * (x.numel() * bc2))
        for x, s, q in zip(
            ops.items(v), ops.items(ops.stack(ops.sum(v))), ops.items(ops.stack(ops.sumsq(v)))
        )
    ]
    w = ops.scale_add(v, factors if ops.foreach else factors[0], eps)  # cos^2 v / bc2 + eps
    ops.sqrt_(w)
    if tau:
        ops.sub_scalars_(w, [tau * mi for mi in ops.items(ops.amin(w))])
    return w


def _ratio(num: Scalar, den: Scalar) -> Scalar:
    """num / den, and 0 where den is 0 (floats, or tensors without a host sync)."""
    if isinstance(den, float):
        return num / den if den > 0 else 0.0
    return torch.where(den > 0, num / den.clamp_min(1e-300), 0.0)


def eve_denominator(
    ops: Any, v: Operand, m: Operand, bc1: float, bc2: float, eps: float, batch: int
) -> Operand:
    """Eve's batch-variance-corrected denominator (Kunze et al., eq. 7).

    v_hat <- v_hat / B + (1 - 1/B) m_hat^2, then d = sqrt(v_hat) + eps. B = 1 is Adam.
    """
    vh = ops.div(v, bc2 * batch)
    if batch > 1:
        ops.addcmul_(vh, m, m, (1.0 - 1.0 / batch) / (bc1 * bc1))
    return ops.sqrt_add(vh, eps)


def msvag_factor(ops: Any, v: Operand, m: Operand, bc: float, rho: float) -> Operand:
    """M-SVAG's variance-adapted factor gamma in [0, 1] (Balles & Hennig 2018).

    m = m~ / bc, v = v~ / bc; s = (v - m^2) / (1 - rho); gamma = m^2 / (m^2 + rho s),
    clipped to [0, 1], NaN -> 0. v - m^2 cancels catastrophically, so low-precision
    parameters compute gamma in float32.
    """
    # gamma = m^2 / ((1 - k) m^2 + k bc v) with k = rho / (1 - rho), on the raw EMAs
    k = rho / (1.0 - rho)
    out = []
    for vi, mi in zip(ops.items(v), ops.items(m)):
        dt = _acc_dtype(mi.dtype)
        mf, vf = mi.to(dt), vi.to(dt)
        den = vf * (k * bc)
        den.addcmul_(mf, mf, value=1.0 - k)
        gamma = (mf * mf).div_(den).clamp_(0.0, 1.0).nan_to_num_(nan=0.0)
        out.append(gamma.to(mi.dtype))
    return out if ops.foreach else out[0]
