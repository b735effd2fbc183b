"""Closed forms and exact one-dimensional integrals for adaptive-update laws.

Everything here follows ``docs/theory.md`` (derivations, sections 2-4 and 8). The central object
is the law ``C_n`` of the cosine between a uniformly random direction and a fixed one in
``R^n``: ``(1 + C_n)/2 ~ Beta((n-1)/2, (n-1)/2)``. The Adam update under i.i.d. Gaussian
gradients with simple averaging is ``C_t``; with an EMA first moment and uniform ``v`` it is
``sqrt(t/t_eff) C_t``; with ``beta2 < 1`` it has no closed form but its CDF (Imhof) and its
moments (Laplace transform) are exact one-dimensional integrals.

Functions take and return NumPy arrays (or floats) and keep no state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
from scipy import integrate, special, stats

if TYPE_CHECKING:
    from scipy.stats._distn_infrastructure import rv_continuous_frozen

__all__ = [
    "abs_mean_cosine",
    "adam_update_bound",
    "adam_update_bound_limit",
    "adam_weights",
    "beta_from_t_eff",
    "cosine_abs_sf",
    "cosine_cdf",
    "cosine_logpdf",
    "cosine_pdf",
    "cosine_ppf",
    "cosine_sf",
    "ema_nc_cdf",
    "ema_nc_pdf",
    "ema_scale",
    "ema_var_abs_update",
    "ema_var_update",
    "ema_weight_norm2",
    "ema_weights",
    "even_moment",
    "excess_kurtosis",
    "imhof_abs_cdf",
    "imhof_cdf",
    "imhof_pdf",
    "laplace_abs_mean",
    "laplace_even_moment",
    "paper_approx_var_abs_update",
    "quadform_abs_cdf",
    "quadform_cdf",
    "quadform_pdf",
    "student_t_model",
    "student_t_variance",
    "t_eff",
    "t_statistic_from_update",
    "update_bound",
    "update_from_t_statistic",
    "var_abs_scaled_update",
    "var_abs_update",
    "var_scaled_update",
    "var_update",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# The cosine law C_n (docs/theory.md, sections 2 and 8). Kernels used by the distributions.
# --------------------------------------------------------------------------------------------


def cosine_logpdf(x: ArrayLike, n: ArrayLike) -> FloatArray:
    """Log density of ``C_n``: ``((n-3)/2) log(1-x^2) - log B(1/2, (n-1)/2)`` on ``(-1, 1)``."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(_collapse(n), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        # (1-x)(1+x) keeps relative accuracy near the edges; special.xlog1py handles n = 3.
        out = special.xlogy((n - 3) / 2, (1 - x) * (1 + x)) - special.betaln(0.5, (n - 1) / 2)
    return np.where(np.abs(x) > 1, -np.inf, out)


def cosine_pdf(x: ArrayLike, n: ArrayLike) -> FloatArray:
    """Density of ``C_n``: ``(1-x^2)^((n-3)/2) / B(1/2, (n-1)/2)``.

    Eq. 28 of Zhang & Ziyin (UAI 2021); docs/theory.md, section 2.
    """
    return np.exp(cosine_logpdf(x, n))


def _t_of_cos(x: FloatArray, n: FloatArray) -> FloatArray:
    """Apply the monotone map ``T = x sqrt((n-1)/(1-x^2))`` (one-sample t statistic)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return x * np.sqrt((n - 1) / ((1 - x) * (1 + x)))


def cosine_abs_sf(x: ArrayLike, n: ArrayLike) -> FloatArray:
    """Two-sided tail ``P(|C_n| > x)`` for ``x >= 0``, accurate far into the tail."""
    x = np.abs(np.asarray(x, dtype=float))
    n = np.asarray(n, dtype=float)
    x, n = np.broadcast_arrays(x, n)
    central = special.betainc(0.5, (n - 1) / 2, np.minimum(x * x, 1.0))
    out = 1.0 - central
    # In the tail 1 - I loses relative accuracy: switch to the t statistic there.
    tail = central > 0.5
    if np.any(tail):
        out = np.array(out, copy=True)
        nt = n[tail]
        out[tail] = 2 * special.stdtr(nt - 1, -_t_of_cos(x[tail], nt))
    return np.where(x >= 1, 0.0, out)


def _collapse(a: ArrayLike) -> Any:  # a NumPy scalar, or ``a`` itself
    """Return a constant array (scipy broadcasts shapes to the data's size) as a scalar."""
    arr = np.asarray(a)
    if arr.ndim and arr.size and np.all(arr == arr.flat[0]):
        return arr.flat[0]
    return a


_FAST_MIN_SIZE = 65_536  # below this the exact special functions are fast enough
_FAST_NODES = 4096
_FAST_TAIL = 1e-4


def _cosine_cdf_exact(x: FloatArray, n: ArrayLike) -> FloatArray:
    half_tail = 0.5 * cosine_abs_sf(x, n)
    return np.where(x < 0, half_tail, 1.0 - half_tail)


def _cosine_cdf_fast(x: FloatArray, n: float) -> FloatArray:
    """CDF for many points at one ``n >= 2``: cubic Hermite interpolation in the angle.

    In ``theta = arcsin(x)`` the CDF is smooth for every ``n >= 2`` (its derivative is
    ``cos(theta)^(n-2)/B``), so a Hermite interpolant on 4097 exact nodes (exact values and
    exact slopes) between the 1e-4 and 1 - 1e-4 quantiles has absolute error below 1e-12
    (tested). Points outside that range use the exact special functions, so tails keep their
    relative accuracy.
    """
    lo = float(np.arcsin(cosine_ppf(_FAST_TAIL, n)))
    h = -2 * lo / _FAST_NODES
    nodes = lo + h * np.arange(_FAST_NODES + 1)
    f_nodes = _cosine_cdf_exact(np.sin(nodes), n)
    slope = h * np.exp(special.xlogy(n - 2, np.cos(nodes)) - special.betaln(0.5, (n - 1) / 2))
    # per-interval cubic coefficients: F = c0 + tau (c1 + tau (c2 + tau c3)), tau in [0, 1)
    f0, f1, m0, m1 = f_nodes[:-1], f_nodes[1:], slope[:-1], slope[1:]
    c2 = 3 * (f1 - f0) - 2 * m0 - m1
    c3 = 2 * (f0 - f1) + m0 + m1
    with np.errstate(invalid="ignore"):
        s = (np.arcsin(x) - lo) * (1 / h)
    inside = (s >= 0) & (s < _FAST_NODES)
    s = np.where(inside, s, 0.0)
    i = s.astype(np.intp)
    tau = s - i
    out = f0[i] + tau * (m0[i] + tau * (c2[i] + tau * c3[i]))
    if not np.all(inside):
        out[~inside] = _cosine_cdf_exact(x[~inside], n)
    return out


def cosine_cdf(x: ArrayLike, n: ArrayLike) -> FloatArray:
    """CDF of ``C_n``: ``1/2 + sign(x)/2 * I_{x^2}(1/2, (n-1)/2)``, tail-accurate for x < 0.

    Large arrays with one ``n >= 2`` use an interpolant exact to 1e-12 (see
    ``_cosine_cdf_fast``); 1e7 points then cost well under a second instead of several.
    """
    x = np.asarray(x, dtype=float)
    nc = _collapse(n)
    if x.size >= _FAST_MIN_SIZE and np.ndim(nc) == 0 and nc >= 2:
        return _cosine_cdf_fast(x, float(nc))
    return _cosine_cdf_exact(x, nc)


def cosine_sf(x: ArrayLike, n: ArrayLike) -> FloatArray:
    """Survival function of ``C_n`` (symmetric law: ``sf(x) = cdf(-x)``)."""
    return cosine_cdf(-np.asarray(x, dtype=float), n)


def cosine_ppf(q: ArrayLike, n: ArrayLike) -> FloatArray:
    """Quantile of ``C_n`` through the Student t quantile: ``T/sqrt(T^2 + n - 1)``."""
    q = np.asarray(q, dtype=float)
    n = np.asarray(n, dtype=float)
    # Use the lower tail for accuracy and reflect (the law is symmetric).
    lower = np.minimum(q, 1 - q)
    big_t = special.stdtrit(n - 1, lower)
    x = big_t / np.sqrt(big_t * big_t + n - 1)
    return np.where(q > 0.5, -x, x)


def t_statistic_from_update(u: ArrayLike, t: ArrayLike) -> FloatArray:
    """Map an update ``u`` (or a cosine) to ``T = u sqrt((t-1)/(1-u^2))`` (docs/theory.md, 2.1)."""
    return _t_of_cos(np.asarray(u, dtype=float), np.asarray(t, dtype=float))


def update_from_t_statistic(big_t: ArrayLike, t: ArrayLike) -> FloatArray:
    """Inverse map ``u = T / sqrt(T^2 + t - 1)``: the update squashes the t statistic."""
    big_t = np.asarray(big_t, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(invalid="ignore"):
        out = big_t / np.sqrt(big_t * big_t + t - 1)
    return np.where(np.isinf(big_t), np.sign(big_t), out)


# --------------------------------------------------------------------------------------------
# Moments and the Corollary 1 / 2 curves (docs/theory.md, section 2).
# --------------------------------------------------------------------------------------------


def abs_mean_cosine(t: ArrayLike) -> FloatArray:
    """``E|C_t| = Gamma(t/2) / (sqrt(pi) Gamma((t+1)/2))``, stable for t up to 1e12."""
    t = np.asarray(t, dtype=float)
    return 1.0 / (np.sqrt(np.pi) * special.poch(t / 2, 0.5))


def var_update(t: ArrayLike) -> FloatArray:
    """``Var u = 1/t`` for simple averaging (Eq. 22 of Zhang & Ziyin; docs/theory.md, section 2)."""
    return 1.0 / np.asarray(t, dtype=float)


def var_scaled_update(t: ArrayLike) -> FloatArray:
    """Corollary 1: ``Var(sqrt(t) u) = 1`` for every t."""
    return np.ones_like(np.asarray(t, dtype=float))


def var_abs_scaled_update(t: ArrayLike) -> FloatArray:
    """Corollary 2: ``Var|sqrt(t) u| = 1 - t E|C_t|^2``, rising from 0 (t=1) to 1 - 2/pi."""
    t = np.asarray(t, dtype=float)
    return 1.0 - t * abs_mean_cosine(t) ** 2


def var_abs_update(t: ArrayLike) -> FloatArray:
    """Raw magnitude variance ``Var|u| = Var|sqrt(t) u| / t`` (decreasing after t = 2)."""
    t = np.asarray(t, dtype=float)
    return var_abs_scaled_update(t) / t


def even_moment(t: ArrayLike, j: int) -> FloatArray:
    """``E[u^(2j)] = prod_{i<j} (1/2 + i)/(t/2 + i)`` for simple averaging."""
    t = np.asarray(t, dtype=float)
    return special.poch(0.5, j) / special.poch(t / 2, j)


def excess_kurtosis(t: ArrayLike) -> FloatArray:
    """Excess kurtosis of ``C_t``: ``-6/(t+2)`` (platykurtic for every finite t)."""
    return -6.0 / (np.asarray(t, dtype=float) + 2)


# --------------------------------------------------------------------------------------------
# EMA weights, t_eff and the EMA (uniform v) versions of the curves (docs/theory.md, section 3).
# --------------------------------------------------------------------------------------------


def ema_weights(t: int, beta: float | None) -> FloatArray:
    """Bias-corrected EMA weights ``w_i``, oldest first; ``beta=None`` gives ``1/t`` each."""
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    if beta is None:
        return np.full(t, 1.0 / t)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    powers = beta ** np.arange(t - 1, -1, -1, dtype=float)
    return (1 - beta) * powers / (1 - beta**t)


def adam_weights(t: int, beta1: float | None, beta2: float | None) -> tuple[FloatArray, FloatArray]:
    """Return the pair ``(w, a)`` of first- and second-moment weights of Adam at step t."""
    return ema_weights(t, beta1), ema_weights(t, beta2)


def ema_weight_norm2(t: ArrayLike, beta: ArrayLike) -> FloatArray:
    """``||w||^2 = (1-b)(1+b^t)/((1+b)(1-b^t))``; equals 1/t at b = 0 -> limit b -> 1."""
    t = np.asarray(t, dtype=float)
    b = np.asarray(beta, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        bt = b**t
        out = (1 - b) * (1 + bt) / ((1 + b) * (1 - bt))
    return np.where(b == 0, 1.0, out)


def t_eff(t: ArrayLike, beta: ArrayLike) -> FloatArray:
    """Effective sample size ``1/||w||^2``, tending to ``(1+b)/(1-b)``.

    Eq. 12 of Zhang & Ziyin (UAI 2021); docs/theory.md, section 3.
    """
    return 1.0 / ema_weight_norm2(t, beta)


def beta_from_t_eff(t_effective: ArrayLike) -> FloatArray:
    """Inverse of the limit ``t_eff = (1+b)/(1-b)``: ``b = (T-1)/(T+1)``."""
    big_t = np.asarray(t_effective, dtype=float)
    return (big_t - 1) / (big_t + 1)


def ema_scale(t: ArrayLike, beta1: ArrayLike) -> FloatArray:
    """Scale ``k = sqrt(t/t_eff)``: with uniform v the EMA update is exactly ``k C_t``."""
    t = np.asarray(t, dtype=float)
    return np.sqrt(t * ema_weight_norm2(t, beta1))


def ema_var_update(t: ArrayLike, beta1: ArrayLike) -> FloatArray:
    """EMA Corollary 1 (exact, uniform v): ``Var u = 1/t_eff``."""
    return ema_weight_norm2(t, beta1)


def ema_var_abs_update(t: ArrayLike, beta1: ArrayLike) -> FloatArray:
    """EMA Corollary 2 (exact, uniform v): ``Var|u| = ||w||^2 Var|sqrt(t) C_t|``."""
    return ema_weight_norm2(t, beta1) * var_abs_scaled_update(t)


def paper_approx_var_abs_update(t: ArrayLike, beta1: ArrayLike) -> FloatArray:
    """APPROXIMATE: ``Var|u|`` under the paper's "replace t by t_eff" law ``C_{t_eff}``."""
    te = t_eff(t, beta1)
    return var_abs_scaled_update(te) / te


# --------------------------------------------------------------------------------------------
# The Student t model of Liu et al. (docs/theory.md, section 2.1).
# --------------------------------------------------------------------------------------------


def student_t_model(t: int, *, centred: bool = True) -> rv_continuous_frozen:
    """Liu et al.'s model for ``sqrt(t) u``: Student t with ``t-1`` (or ``t``) degrees of freedom.

    It treats numerator and denominator as independent; it describes the t statistic ``T``,
    not the bounded update (see :func:`update_from_t_statistic`).
    """
    # scipy types freezing any law as "continuous or discrete"; Student t is continuous
    return cast("rv_continuous_frozen", stats.t(df=t - 1 if centred else t))


def student_t_variance(t: ArrayLike, *, centred: bool = True) -> FloatArray:
    """Variance ``(t-1)/(t-3)`` of the Student t model (``t/(t-2)`` if uncentred); inf if small."""
    t = np.asarray(t, dtype=float)
    df = t - 1 if centred else t
    with np.errstate(divide="ignore", invalid="ignore"):
        out = df / (df - 2)
    return np.where(df > 2, out, np.inf)


# --------------------------------------------------------------------------------------------
# Proposition 1: the sharp bound.
# --------------------------------------------------------------------------------------------


def update_bound(w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None) -> float:
    """Sharp bound ``|u| <= sqrt(sum w_i^2/a_i)`` (Cauchy-Schwarz; scales cancel)."""
    w = np.asarray(w, dtype=float)
    a = np.asarray(a, dtype=float)
    del scale  # the bound does not depend on the per-step scales
    return float(np.sqrt(np.sum(w * w / a)))


def adam_update_bound(t: ArrayLike, beta1: ArrayLike, beta2: ArrayLike) -> FloatArray:
    """Evaluate the closed form of the sharp bound for Adam's EMAs, ``gamma = beta1^2/beta2``."""
    t = np.asarray(t, dtype=float)
    b1 = np.asarray(beta1, dtype=float)
    b2 = np.asarray(beta2, dtype=float)
    gamma = b1**2 / b2
    with np.errstate(divide="ignore", invalid="ignore"):
        geo = np.where(gamma == 1, t, (1 - gamma**t) / (1 - gamma))
        sq = (1 - b1) ** 2 * (1 - b2**t) * geo / ((1 - b1**t) ** 2 * (1 - b2))
    return np.sqrt(sq)


def adam_update_bound_limit(beta1: float, beta2: float) -> float:
    """Limit ``(1-b1)/sqrt((1-b2)(1-b1^2/b2))`` of the bound (finite only if b1^2 < b2)."""
    gamma = beta1**2 / beta2
    if gamma >= 1:
        return math.inf
    return (1 - beta1) / math.sqrt((1 - beta2) * (1 - gamma))


# --------------------------------------------------------------------------------------------
# Imhof's formula for P(|u| <= x) with any weights and per-step scales (docs/theory.md, section 4).
# --------------------------------------------------------------------------------------------


def _scaled(w: ArrayLike, a: ArrayLike, scale: ArrayLike | None) -> tuple[FloatArray, FloatArray]:
    """Fold per-step scales into the weights: ``b = w s``, ``alpha = a s^2``."""
    w = np.asarray(w, dtype=float)
    a = np.asarray(a, dtype=float)
    if w.shape != a.shape or w.ndim != 1:
        raise ValueError(f"w and a must be 1-D of equal length, got {w.shape} and {a.shape}")
    if scale is None:
        return w, a
    s = np.broadcast_to(np.asarray(scale, dtype=float), w.shape)
    return w * s, a * s * s


def _imhof_terms(xs: FloatArray, b2: FloatArray, alpha: FloatArray, norm: FloatArray):
    """Closures giving log det(I - i u M_x) and its x-derivative for all xs at once.

    ``M_x = b b^T - x^2 diag(alpha)`` divided by ``norm``; the matrix determinant lemma
    avoids any eigen-decomposition: ``det = prod(1 - iu d_j) (1 - iu sum b_j^2/(1 - iu d_j))``.
    Each factor keeps a continuous principal branch for ``u > 0`` (see docs/theory.md, section 4).
    """
    d = -(xs[:, None] ** 2) * alpha[None, :] / norm[:, None]  # (nx, t), <= 0
    dd = -2 * xs[:, None] * alpha[None, :] / norm[:, None]  # d d / d x
    bb = b2[None, :] / norm[:, None]

    def logdet(u: float) -> tuple[np.ndarray, np.ndarray]:
        c = 1.0 / (1.0 - 1j * u * d)
        s1 = np.sum(bb * c, axis=1)
        f = 1.0 - 1j * u * s1
        ld = -np.sum(np.log(c), axis=1) + np.log(f)
        # derivative w.r.t. x (norm held fixed)
        dc = 1j * u * dd * c * c
        dld = np.sum(-1j * u * dd * c, axis=1) + (-1j * u * np.sum(bb * dc, axis=1)) / f
        return ld, dld

    return logdet


def _imhof_integrals(
    x: FloatArray, w: ArrayLike, a: ArrayLike, scale, want_pdf: bool
) -> tuple[FloatArray, FloatArray]:
    b, alpha = _scaled(w, a, scale)
    b2 = b * b
    xs = np.abs(np.atleast_1d(np.asarray(x, dtype=float))).ravel()
    # Frobenius norm of M_x: the integrand then varies on the scale u ~ 1 for every t.
    sb = np.sum(b2)
    norm = np.sqrt(sb**2 - 2 * xs**2 * np.sum(b2 * alpha) + xs**4 * np.sum(alpha**2))
    logdet = _imhof_terms(xs, b2, alpha, norm)

    def integrand(u: float) -> np.ndarray:
        if u == 0:
            return np.zeros(2 * xs.size)
        ld, dld = logdet(u)
        phi = np.exp(-0.5 * ld)  # characteristic function of Q at u/2
        first = np.imag(phi) / u
        second = np.imag(-0.5 * phi * dld) / u if want_pdf else np.zeros_like(first)
        return np.concatenate([first, second])

    val, _ = integrate.quad_vec(integrand, 0, np.inf, epsabs=1e-13, epsrel=1e-11, norm="max")
    p_pos = 0.5 + val[: xs.size] / np.pi  # P(Q > 0) = P(|u| > x)
    dens = -val[xs.size :] / np.pi  # d/dx P(|u| <= x)
    return 1.0 - p_pos, dens


def imhof_abs_cdf(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> FloatArray:
    """Exact ``P(|u| <= x)`` for ``u = w.g / sqrt(a.g^2)``, ``g_i ~ N(0, s_i^2)`` independent.

    Imhof's (1961) inversion of the indefinite quadratic form ``g^T (w w^T - x^2 A) g``;
    quadrature error about 1e-11.
    """
    x = np.asarray(x, dtype=float)
    w_arr = np.asarray(w, dtype=float)
    bound = update_bound(w_arr, a)
    ax = np.abs(x).ravel()
    out = np.ones_like(ax)
    inside = ax < bound
    if np.any(inside):
        out[inside] = np.clip(_imhof_integrals(ax[inside], w_arr, a, scale, False)[0], 0, 1)
    return out.reshape(x.shape)


def imhof_cdf(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> FloatArray:
    """Exact CDF of the zero-mean Gaussian update: ``1/2 + sign(x) P(|u| <= |x|)/2``."""
    x = np.asarray(x, dtype=float)
    return 0.5 + 0.5 * np.sign(x) * imhof_abs_cdf(x, w, a, scale)


def imhof_pdf(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> FloatArray:
    """Exact density of the update, by differentiating Imhof's integral under the sign."""
    x = np.asarray(x, dtype=float)
    w_arr = np.asarray(w, dtype=float)
    bound = update_bound(w_arr, a)
    ax = np.abs(x).ravel()
    out = np.zeros_like(ax)
    inside = (ax < bound) & (ax > 0)
    if np.any(inside):
        out[inside] = 0.5 * _imhof_integrals(ax[inside], w_arr, a, scale, True)[1]
    zero = ax == 0
    if np.any(zero):
        # the density is even and smooth at 0: f(0) = f(h) + O(h^2)
        h = 1e-6 * bound
        out[zero] = 0.5 * _imhof_integrals(np.array([h]), w_arr, a, scale, True)[1][0]
    return np.maximum(out, 0).reshape(x.shape)


# --------------------------------------------------------------------------------------------
# The same law by a real, finite integral (fast path): diagonalise the form, then Craig.
# --------------------------------------------------------------------------------------------
#
# In the eigenbasis of M = b b^T - x^2 diag(alpha), Q = lam Z_0^2 - S with one positive
# eigenvalue lam and S = sum_j mu_j Z_j^2 (mu_j > 0) independent of Z_0. Craig's formula
# P(Z_0^2 > y) = (2/pi) int_0^{pi/2} exp(-y / (2 sin^2 th)) dth and the Laplace transform of S
# give  P(|u| > x) = P(Q > 0) = (2/pi) int_0^{pi/2} h(th)^(-1/2) dth  with
# h = prod_j (1 + s mu_j), s = r / sin^2 th, r = 1/lam. The determinant lemma and
# 1 = sum b_i^2 / (lam + c_i), c_i = x^2 alpha_i, turn h into an O(t) expression with no
# cancellation and no eigenvalues but lam:
#     h = prod_i (1 + s c_i) * r * sum_i b_i^2 / ((1 + s c_i)(1 + r c_i)).
# The integrand is smooth and real: Gauss-Legendre in th for P(|u| > x), and in log th for
# P(|u| <= x) when that is the smaller one (its integrand 1 - h^(-1/2) lives at th ~ x).
# The density is the complex-step derivative of the same integral (exact to rounding).

_GL_TH = np.polynomial.legendre.leggauss(128)
_GL_LOG = np.polynomial.legendre.leggauss(256)
_CHUNK = 2_000_000  # complex elements per (points, nodes, t) block


def _lambda_plus(b2: FloatArray, c: FloatArray) -> FloatArray:
    """Find the positive root lam of sum b2/(lam + c) = 1 per row of ``c`` (c >= 0 real)."""
    lo = np.zeros(c.shape[0])
    hi = np.full(c.shape[0], b2.sum())  # the sum is <= 1 there
    lam = hi.copy()
    for _ in range(200):
        q = b2 / (lam[:, None] + c)
        f = q.sum(axis=1) - 1.0
        lo = np.where(f > 0, lam, lo)
        hi = np.where(f <= 0, lam, hi)
        new = lam + f / (q / (lam[:, None] + c)).sum(axis=1)
        new = np.where((new <= lo) | (new >= hi), 0.5 * (lo + hi), new)
        done = np.all(np.abs(new - lam) <= 1e-15 * lam)
        lam = new
        if done:
            break
    return lam


def _craig_log_h(
    sin2: FloatArray, x: np.ndarray, lam_real: FloatArray, b2: FloatArray, alpha: FloatArray
) -> np.ndarray:
    """``log h`` at the nodes ``sin2 = sin^2 th`` (nx, nodes); ``x`` real or complex (nx,)."""
    c = x[:, None] ** 2 * alpha[None, :]
    lam = lam_real.astype(x.dtype)
    if np.iscomplexobj(x):  # complex step: Newton from the real root, quadratic convergence
        for _ in range(3):
            q = b2 / (lam[:, None] + c)
            lam = lam + (q.sum(axis=1) - 1.0) / (q / (lam[:, None] + c)).sum(axis=1)
    r = 1.0 / lam
    sc = (r[:, None] / sin2)[:, :, None] * c[:, None, :]
    rc = 1.0 + r[:, None] * c  # (nx, t)
    rest = (b2 / ((1.0 + sc) * rc[:, None, :])).sum(axis=2)
    return np.log1p(sc).sum(axis=2) + np.log(r)[:, None] + np.log(rest)


def _craig_block(
    x: FloatArray, b2: FloatArray, alpha: FloatArray, want_pdf: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``P(|u| <= x)``, ``P(|u| > x)`` and the x-derivative of the first.

    The two probabilities each come from the form that keeps its relative precision; for
    ``0 < x < bound`` (one memory block).
    """
    lam = _lambda_plus(b2, x[:, None] ** 2 * alpha[None, :])
    h_step = 1e-20 * x
    xc = x + 1j * h_step

    # P(|u| > x): Gauss-Legendre in th on [0, pi/2]
    nodes, weights = _GL_TH
    th = (nodes + 1.0) * (np.pi / 4)
    sin2 = np.broadcast_to(np.sin(th) ** 2, (x.size, th.size))
    wt = weights * (np.pi / 4) * (2 / np.pi)
    sf = np.exp(-0.5 * _craig_log_h(sin2, x, lam, b2, alpha)) @ wt
    cdf = 1.0 - sf
    dens = np.zeros_like(x)
    if want_pdf:
        dsf = (np.exp(-0.5 * _craig_log_h(sin2, xc, lam, b2, alpha)) @ wt).imag / h_step
        dens = -dsf

    # P(|u| <= x) directly where it is the smaller: th = exp(z), z from log th_lo to log pi/2
    small = sf > 0.5
    if np.any(small):
        xs, lam_s = x[small], lam[small]
        th_x = np.minimum(np.pi / 2, xs * np.sqrt(np.min(alpha) / lam_s))
        z_lo = np.log(1e-7 * th_x)  # below th_lo the integrand is 1 to ~1e-14: add th_lo
        z_hi = math.log(np.pi / 2)
        nodes, weights = _GL_LOG
        half = 0.5 * (z_hi - z_lo)
        z = z_lo[:, None] + half[:, None] * (nodes[None, :] + 1.0)
        th = np.exp(z)
        sin2 = np.sin(th) ** 2
        wt = (2 / np.pi) * half[:, None] * weights[None, :] * th
        log_h = _craig_log_h(sin2, xs, lam_s, b2, alpha)
        cdf[small] = (2 / np.pi) * np.exp(z_lo) + np.sum(-np.expm1(-0.5 * log_h) * wt, axis=1)
        sf[small] = 1.0 - cdf[small]
        if want_pdf:
            log_hc = _craig_log_h(sin2, xc[small], lam_s, b2, alpha)
            dens[small] = np.sum(-np.expm1(-0.5 * log_hc) * wt, axis=1).imag / h_step[small]
    return cdf, sf, dens


def _craig(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None, want_pdf: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``P(|u| <= |x|)``, ``P(|u| > |x|)`` and the density of ``|u|`` at ``|x|``, like ``x``."""
    x = np.asarray(x, dtype=float)
    b, alpha = _scaled(w, a, scale)
    b2 = b * b
    bound = update_bound(np.asarray(w, dtype=float), a)
    ax = np.abs(x).ravel()
    cdf = np.where(ax >= bound, 1.0, 0.0)
    sf = 1.0 - cdf
    dens = np.zeros_like(ax)
    # Near 0, 1 - h^(-1/2) falls below the rounding of log h: use the even, smooth density
    # there, f(x) = f(x0) + O(x0^2) and P(|u| <= x) = f(x0) x (1 + O(x^2)), x0 = 1e-6 bound.
    x0 = 1e-6 * bound
    inside = np.flatnonzero((ax >= x0) & (ax < bound))
    step = max(1, _CHUNK // (_GL_LOG[0].size * b2.size))
    for i in range(0, inside.size, step):
        idx = inside[i : i + step]
        cdf[idx], sf[idx], dens[idx] = _craig_block(ax[idx], b2, alpha, want_pdf)
    near = np.flatnonzero(ax < x0)
    if near.size:
        f0 = _craig_block(np.array([x0]), b2, alpha, True)[2][0]
        dens[near] = f0
        cdf[near] = f0 * ax[near]
        sf[near] = 1.0 - cdf[near]
    shape = x.shape
    return (
        np.clip(cdf, 0.0, 1.0).reshape(shape),
        np.clip(sf, 0.0, 1.0).reshape(shape),
        np.maximum(dens, 0.0).reshape(shape),
    )


def quadform_abs_cdf(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> FloatArray:
    """Exact ``P(|u| <= x)`` (see :func:`quadform_cdf`), to ~12 digits also near 0."""
    return _craig(x, w, a, scale, False)[0]


def quadform_cdf(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> FloatArray:
    """Exact CDF of ``u = w.g / sqrt(a.g^2)``, ``g_i ~ N(0, s_i^2)``, by one real integral.

    The same law as :func:`imhof_cdf` (the reference, tested against it to ~1e-13), with a
    smooth finite integrand instead of an oscillating infinite one: about 100x faster at
    t = 100 and relative accuracy ~1e-12 far into both tails.
    """
    x = np.asarray(x, dtype=float)
    inner, outer, _ = _craig(x, w, a, scale, False)
    return np.where(x < 0, 0.5 * outer, 0.5 + 0.5 * inner)  # the left tail keeps its digits


def quadform_pdf(
    x: ArrayLike, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> FloatArray:
    """Exact density of the update: the complex-step derivative of :func:`quadform_cdf`."""
    return 0.5 * _craig(x, w, a, scale, True)[2]


# --------------------------------------------------------------------------------------------
# Laplace-transform moments (docs/theory.md, section 4).
# --------------------------------------------------------------------------------------------


def _laplace_kernel(b2: FloatArray, alpha: FloatArray, s: float) -> tuple[float, float]:
    r = 1.0 + 2.0 * s * alpha
    log_prod = -0.5 * np.sum(np.log(r))
    return log_prod, float(np.sum(b2 / r))


def laplace_even_moment(
    j: int, w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None
) -> float:
    """Exact ``E[u^(2j)]`` for the zero-mean Gaussian update, by one 1-D integral.

    ``(2j-1)!!/Gamma(j) int_0^inf s^(j-1) prod(1+2 s a_i)^(-1/2) [sum w_i^2/(1+2 s a_i)]^j ds``.
    """
    if j < 1:
        raise ValueError(f"j must be >= 1, got {j}")
    b, alpha = _scaled(w, a, scale)
    b2 = b * b
    c = np.sum(alpha)  # change of variable s = r / c makes the integrand O(1)

    def f(r: float) -> float:
        s = r / c
        log_prod, sm = _laplace_kernel(b2, alpha, s)
        return (
            math.exp((j - 1) * math.log(s) + log_prod + j * math.log(sm))
            if s > 0
            else (sm**j if j == 1 else 0.0)
        )

    val, _ = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-12, limit=400)
    double_fact = special.factorial2(2 * j - 1, exact=True)
    return float(double_fact / math.gamma(j) * val / c)


def laplace_abs_mean(w: ArrayLike, a: ArrayLike, scale: ArrayLike | None = None) -> float:
    """Exact ``E|u|`` by ``(sqrt2/pi) int_0^inf s^(-1/2) prod(...) [sum ...]^(1/2) ds``."""
    b, alpha = _scaled(w, a, scale)
    b2 = b * b
    c = np.sum(alpha)

    def f(r: float) -> float:
        # s = r^2 / c removes the s^(-1/2) singularity: ds s^(-1/2) = 2 dr / sqrt(c)
        s = r * r / c
        log_prod, sm = _laplace_kernel(b2, alpha, s)
        return math.exp(log_prod) * math.sqrt(sm)

    val, _ = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-12, limit=400)
    return float(math.sqrt(2) / math.pi * 2 * val / math.sqrt(c))


# --------------------------------------------------------------------------------------------
# Uniform v, EMA m, constant mean (docs/theory.md, section 5): one exact 1-D integral.
# --------------------------------------------------------------------------------------------


def _ema_nc_parts(t: float, beta1: float | None, snr: float) -> tuple[float, float, float]:
    """``(k, mean of X, noncentrality of Y)`` for ``u = k X/sqrt(X^2 + Y)``, unit gradient scale.

    ``X = w_hat.g ~ N(snr/||w||, 1)`` and ``Y = |g - X w_hat|^2 ~ ncchi2_{t-1}(snr^2 (t - t_eff))``
    are independent, with ``w_hat = w/||w||`` and ``k = sqrt(t ||w||^2)``.
    """
    norm2 = 1.0 / t if beta1 is None else float(ema_weight_norm2(t, beta1))
    k = math.sqrt(t * norm2)
    lam = max(snr * snr * (t - 1.0 / norm2), 0.0)
    return k, snr / math.sqrt(norm2), lam


def _ema_nc_integrals(x: FloatArray, t: int, beta1: float | None, snr: float, pdf: bool):
    k, mean_x, lam = _ema_nc_parts(t, beta1, snr)
    # scipy types freezing any law as "continuous or discrete"; both are continuous
    y_law = cast("rv_continuous_frozen", stats.ncx2(t - 1, lam) if lam > 0 else stats.chi2(t - 1))
    c = np.clip(np.asarray(x, dtype=float) / k, -1, 1)
    pos = c >= 0
    # for c >= 0: P(u <= x) = P(X <= 0) + int_0^inf phi(X) P(Y >= X^2 r) dX, r = (1-c^2)/c^2;
    # for c < 0:  P(u <= x) = int_-inf^0 phi(X) P(Y <= X^2 r) dX.
    with np.errstate(divide="ignore"):
        r = (1 - c * c) / (c * c)
    sd = 12.0

    df = float(t - 1)

    def y_cdf(arg: np.ndarray) -> np.ndarray:
        # scipy.special's (non-central) chi-square CDF: the same numbers as y_law.cdf
        # without the rv_continuous argument checks, which dominate at ~28k calls per fit
        return special.chndtr(arg, df, lam) if lam > 0 else special.chdtr(df, arg)

    def y_sf(arg: np.ndarray) -> np.ndarray:
        return 1.0 - special.chndtr(arg, df, lam) if lam > 0 else special.chdtrc(df, arg)

    inv_sqrt_2pi = 1.0 / math.sqrt(2.0 * math.pi)

    neg = ~pos
    r_pos, r_neg = r[pos], r[neg]
    signs = np.where(pos, 1.0, -1.0)

    def integrand(z: float) -> np.ndarray:
        # z >= 0 is |X|; X = +z on the positive side, -z on the negative side. Each side's
        # points get only the tail they need (the chi-square CDF is most of a fit's time).
        dens = inv_sqrt_2pi * np.exp(-0.5 * (signs * z - mean_x) ** 2)
        tail = np.empty_like(dens)
        tail[pos] = y_sf(z * z * r_pos)
        tail[neg] = y_cdf(z * z * r_neg)
        return dens * tail

    if pdf:
        # v = |X|/|c| removes the 1/|c|^3: pdf_c = 2 int_0^inf phi(+-|c| v) f_Y(v^2 (1-c^2)) v^2 dv,
        # integrated on [0, 1] after scaling by a per-point upper limit v_max.
        one_m = (1 - c) * (1 + c)
        y_hi = float(y_law.isf(1e-17))
        with np.errstate(divide="ignore"):
            v_max = np.minimum(np.sqrt(y_hi / one_m), (abs(mean_x) + sd) / np.abs(c))
        sign = np.where(pos, 1.0, -1.0)

        def dens_integrand(s: float) -> np.ndarray:
            v = s * v_max
            phi = stats.norm.pdf(sign * np.abs(c) * v, loc=mean_x)
            return phi * y_law.pdf(v * v * one_m) * v * v * v_max

        val, _ = integrate.quad_vec(dens_integrand, 0, 1, epsabs=1e-13, epsrel=1e-10, norm="max")
        return 2 * val / k
    upper = abs(mean_x) + sd
    val, _ = integrate.quad_vec(integrand, 0, upper, epsabs=1e-13, epsrel=1e-10, norm="max")
    return np.where(pos, stats.norm.cdf(0, loc=mean_x) + val, val)


def ema_nc_cdf(x: ArrayLike, t: int, beta1: float | None, snr: float) -> FloatArray:
    """Exact CDF of ``u`` with an EMA first moment, uniform v and constant mean ``snr = mu/s``.

    ``u = k X/sqrt(X^2 + Y)``, ``X ~ N(snr/||w||, 1)``, ``Y ~ ncchi2_{t-1}(snr^2 (t - t_eff))``:
    one 1-D integral (docs/theory.md, section 5). ``beta1=None`` is simple averaging (the
    noncentral t law).
    """
    x = np.asarray(x, dtype=float)
    k = _ema_nc_parts(t, beta1, snr)[0]
    flat = x.ravel()
    out = np.where(flat >= k, 1.0, 0.0)
    inside = (flat > -k) & (flat < k)
    if np.any(inside):
        out[inside] = np.clip(_ema_nc_integrals(flat[inside], t, beta1, snr, False), 0, 1)
    return out.reshape(x.shape)


def ema_nc_pdf(x: ArrayLike, t: int, beta1: float | None, snr: float) -> FloatArray:
    """Exact density matching :func:`ema_nc_cdf` (derivative under the integral sign)."""
    x = np.asarray(x, dtype=float)
    k = _ema_nc_parts(t, beta1, snr)[0]
    flat = x.ravel()
    out = np.zeros_like(flat)
    inside = (flat > -k) & (flat < k)
    if np.any(inside):
        out[inside] = _ema_nc_integrals(flat[inside], t, beta1, snr, True)
    return out.reshape(x.shape)
