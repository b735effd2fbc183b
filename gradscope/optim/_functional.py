"""The pieces of the Adam-family pipeline: second-moment statistics and stepsizes.

Every piece is a short pure function of an ``ops`` backend (:mod:`gradscope.optim._backends`:
one tensor, ``torch._foreach_*`` lists, or the traced form ``torch.compile`` fuses) and
its operands, with its equation next to the code. A declaration in a named optimizer
picks one statistic and one stepsize piece; :func:`gradscope.optim._core.pipeline` joins
them, the same code on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from gradscope.optim._backends import Backend, Operand, Scalar, acc_dtype

# ----------------------------------------------------------------------------------------
# Second-moment statistics: the one piece in which most Adam-family optimizers differ.
# Each takes the backend, the (decayed) gradient g, the updated first moment m and the
# group's hyperparameters, and returns the ROOT r of the statistic, s = r^2, so that the
# EMA v <- b2 v + (1 - b2) r^2 runs as one fused addcmul without an r^2 temporary.
# (Eve's statistic is not a square; its declaration says so with ``statistic_is_square``.)
# ----------------------------------------------------------------------------------------


def grad_square(ops: Backend, g: Operand, m: Operand, hp: dict) -> Operand:
    """Adam: s = g^2 (root r = g)."""
    return g


def belief_residual(ops: Backend, g: Operand, m: Operand, hp: dict) -> Operand:
    """AdaBelief: s = (g - m_t)^2, the squared error of m_t as a prediction of g_t."""
    return ops.sub(g, m)


def aida_coefficients(
    s_mm: Scalar, s_gg: Scalar, s_mg: Scalar, k: int, xi: float
) -> tuple[Scalar, Scalar]:
    """Aida's K mutual projections as a scalar recurrence (docs/optimizers.md, Aida).

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


def aida_residual(ops: Backend, g: Operand, m: Operand, hp: dict) -> Operand:
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


def aidagrad_projection(ops: Backend, g: Operand, m: Operand, hp: dict) -> Operand:
    """AidaGrad: s = (g^p)^2, g^p = <m, g> / (|m|^2 + xi) m, g projected onto m (root)."""
    s_mm = ops.stack(ops.sumsq(m))
    s_mg = ops.stack(ops.dot(m, g))
    c = ops.unstack(s_mg / (s_mm + hp["xi"]))
    return ops.scale(m, c)


def examplewise_square(ops: Backend, g: Operand, m: Operand, hp: dict) -> Operand:
    """Eve: s = mean_b g_b^2, handed in by the caller (``hp['sq_mean']``)."""
    return hp["sq_mean"]


# ----------------------------------------------------------------------------------------
# Stepsize pieces: from the second moment v (and t) to either a denominator d, applied as
# x += -lr c / bc1 * m / d (stepsize u = c / d), or a stepsize u, applied as
# x += -lr / bc1 * u * m. Each piece has a host part, run once per step and bucket on
# python numbers (what depends on t only), and a tensor part written against the backend.
# ----------------------------------------------------------------------------------------


class Step(NamedTuple):
    """What a stepsize piece returns: a denominator ``d`` (with scale ``c``) or a stepsize ``u``."""

    d: Operand | None
    u: Operand | None
    c: Scalar = 1.0


@dataclass(frozen=True)
class StepsizePiece:
    """One stepsize rule of the pipeline (the piece a declaration names as ``stepsize``).

    ``host(hp, t)`` returns the per-step numbers the rule needs beyond the common ones
    (floats, traced as tensors on the fused backend) and its structural flags (python
    values, part of the compiled graph's key); ``fn(ops, v, m, hp)`` computes the step.
    ``elementwise_only``: needs an elementwise second moment (not LAdam's layer scalar).
    ``outer_eps``: places the declaration's eps outside the square root when
    ``eps_outside`` is set; a piece without it places eps itself or not at all.
    """

    name: str
    fn: Callable[..., Step]
    host: Callable[[dict, int], tuple[dict[str, float], dict[str, Any]]] | None = None
    elementwise_only: bool = False
    outer_eps: bool = False

    def __repr__(self) -> str:
        return f"<stepsize {self.name}>"


def _adam(ops: Backend, v: Operand, m: Operand, hp: dict) -> Step:
    """``u = 1 / (sqrt(v / bc2) + eps) = c / (sqrt(v) + eps c)``, ``c = sqrt(bc2)``.

    Folding sqrt(bc2) into c saves a pass over the denominator.
    """
    c, eps = hp["sqrt_bc2"], hp["eps_out"]
    # a python 0 (no outer eps) stays 0: with a traced c, 0 * c would be one more op
    zero = isinstance(eps, float | int) and eps == 0
    return Step(d=ops.sqrt_add(v, 0.0 if zero else eps * c), u=None, c=c)


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


def _rectified_host(hp: dict, t: int) -> tuple[dict[str, float], dict[str, Any]]:
    r = rectification(hp["beta2"], t)
    return {"rect": r}, {"rect_on": r > 0.0}


def _rectified(ops: Backend, v: Operand, m: Operand, hp: dict) -> Step:
    """RAdam: u = r_t sqrt(bc2) / (sqrt(v) + eps) once rho_t > 5, u = 1 before."""
    if not hp["rect_on"]:
        return Step(d=None, u=ops.ones(m))
    return Step(d=ops.sqrt_add(v, hp["eps_out"]), u=None, c=hp["rect"] * hp["sqrt_bc2"])


def set_transform(ops: Backend, v: Operand, bc2: Scalar, eps: Scalar, tau: float) -> Operand:
    """SET-Adam's denominator w~ from the Adam EMA v, layerwise, on a transient copy.

    S: v~ = cos^2(v, 1) v with cos^2 = (sum v)^2 / (d sum v^2)  (0 when v == 0);
    E: w = sqrt(v~ / bc2 + eps);   T: w~ = w - tau min_i w_i.

    ``min_i w_i`` is w evaluated at ``min_i v_i``: each rounded step of
    ``v -> sqrt(f v + eps)`` (f >= 0) is monotone, so the minimum of the computed w is
    the computed w of the minimum (to the last bit where a kernel contracts f v + eps
    into one fused multiply-add and the scalar evaluation does not). One pass over v
    then gives sum, sum of squares and minimum together; a minimum over w would need a
    pass of its own (the fused step had three passes over memory, now two).
    """
    vs = ops.items(v)
    sums = ops.items(ops.stack(ops.sum(v)))
    sumsqs = ops.items(ops.stack(ops.sumsq(v)))
    factors = [_ratio(s * s, q * (x.numel() * bc2)) for x, s, q in zip(vs, sums, sumsqs)]
    f = factors if ops.foreach else factors[0]
    w = ops.scale_add(v, f, eps)  # cos^2 v / bc2 + eps
    ops.sqrt_(w)
    if tau:
        wmin = ops.scale_add(ops.amin(v), f, eps)
        ops.sqrt_(wmin)
        ops.sub_scalars_(w, [tau * mi for mi in ops.items(wmin)])
    return w


def _ratio(num: Scalar, den: Scalar) -> Scalar:
    """``num / den``, and 0 where den is 0 (floats, or tensors without a host sync)."""
    if isinstance(den, float):
        return num / den if den > 0 else 0.0
    return torch.where(den > 0, num / den.clamp_min(1e-300), 0.0)


def _set(ops: Backend, v: Operand, m: Operand, hp: dict) -> Step:
    """SET-Adam: u = 1 / w~ (see :func:`set_transform`)."""
    return Step(d=set_transform(ops, v, hp["bc2"], hp["eps"], hp["tau"]), u=None)


def _eve_host(hp: dict, t: int) -> tuple[dict[str, float], dict[str, Any]]:
    b = hp["batch"]
    c = math.sqrt(hp["bc2"] * b)
    k = hp["bc2"] * (b - 1) / (hp["bc1"] * hp["bc1"])
    return {"batch": float(b), "eve_c": c, "eve_k": k}, {"batched": b > 1}


def eve_denominator(
    ops: Backend, v: Operand, m: Operand, c: Scalar, k: Scalar, eps: Scalar, hp: dict
) -> Operand:
    """Eve's batch-variance-corrected denominator (Kunze et al., eq. 7), times c.

    v_hat = v / (bc2 B) + (1 - 1/B) m_hat^2 and d = sqrt(v_hat) + eps, with B = ``batch``;
    B = 1 is Adam. Scaled by c = sqrt(bc2 B) this is sqrt(v + k m^2) + eps c with
    k = bc2 (B - 1) / bc1^2 (the host computes c and k per step), so the caller applies
    c / (returned), as Adam's piece does: no division of v per element, and for B = 1 the
    same single pass as Adam. ``hp['batched']`` says whether B > 1.
    """
    w = v
    if hp["batched"]:
        w = ops.clone(v)
        ops.addcmul_(w, m, m, k)
    zero = isinstance(eps, float | int) and eps == 0
    return ops.sqrt_add(w, 0.0 if zero else eps * c)


def _eve(ops: Backend, v: Operand, m: Operand, hp: dict) -> Step:
    c = hp["eve_c"]
    return Step(d=eve_denominator(ops, v, m, c, hp["eve_k"], hp["eps_out"], hp), u=None, c=c)


def _msvag_host(hp: dict, t: int) -> tuple[dict[str, float], dict[str, Any]]:
    b = hp["beta1"]
    rho = min((1.0 - b) * (1.0 + b**t) / ((1.0 + b) * (1.0 - b**t)), hp["rho_cap"])
    return {"msvag_k": rho / (1.0 - rho)}, {}


def msvag_factor(ops: Backend, v: Operand, m: Operand, bc: Scalar, k: Scalar) -> Operand:
    """M-SVAG's variance-adapted factor gamma in [0, 1] (Balles & Hennig 2018).

    m = m~ / bc, v = v~ / bc; s = (v - m^2) / (1 - rho); gamma = m^2 / (m^2 + rho s),
    clipped to [0, 1], NaN -> 0; on the raw EMAs gamma = m^2 / ((1 - k) m^2 + k bc v)
    with k = rho / (1 - rho). v - m^2 cancels catastrophically, so low-precision
    parameters compute gamma in float32.
    """
    e = ops.each
    out = []
    for vi, mi in zip(ops.items(v), ops.items(m)):
        dt = acc_dtype(mi.dtype)
        mf, vf = mi.to(dt), vi.to(dt)
        den = vf * (k * bc)
        e.addcmul_(den, mf, mf, 1.0 - k)
        gamma = e.nan_to_zero((mf * mf).div_(den).clamp_(0.0, 1.0))
        out.append(gamma.to(mi.dtype))
    return out if ops.foreach else out[0]


def _msvag(ops: Backend, v: Operand, m: Operand, hp: dict) -> Step:
    return Step(d=None, u=msvag_factor(ops, v, m, hp["bc1"], hp["msvag_k"]))


def _layer_mean(ops: Backend, v: Operand, m: Operand, hp: dict) -> Step:
    """AdamL: one stepsize per layer, u = mean_i 1 / sqrt(v_i / bc2) (a 0-d scalar)."""
    return Step(d=None, u=ops.rsqrt_mean(v, hp["sqrt_bc2"]))


#: Adam's u = 1 / (sqrt(v / bc2) + eps) (eps outside the root when the declaration says so)
adam_stepsize = StepsizePiece("adam", _adam, outer_eps=True)
#: RAdam's rectified stepsize (u = 1 while rho_t <= 5)
rectified_stepsize = StepsizePiece("rectified", _rectified, _rectified_host, outer_eps=True)
#: SET-Adam's S/E/T transform of v (eps inside the root)
set_stepsize = StepsizePiece("set", _set, elementwise_only=True)
#: Eve's batch-corrected denominator
eve_stepsize = StepsizePiece("eve", _eve, _eve_host, elementwise_only=True, outer_eps=True)
#: M-SVAG's variance-adapted factor (no eps)
msvag_stepsize = StepsizePiece("msvag", _msvag, _msvag_host, elementwise_only=True)
#: AdamL's layer mean of the elementwise stepsizes after the EMA (no outer eps)
layer_mean_stepsize = StepsizePiece("layer_mean", _layer_mean, elementwise_only=True)
