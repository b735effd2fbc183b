"""Laws of adaptive updates as ``scipy.stats`` distributions.

Each law is an ``rv_continuous`` subclass with a module-level instance, so users get
freezing, ``fit``, ``expect`` and ``scipy.stats.kstest`` for free (the scipy.stats model:
``docs/design.md``, house style). The derivations are in ``docs/theory.md`` ("Derivations and
checks", sections 1-9); :mod:`gradscope.theory.exact` holds the kernels.

EXACT laws: :data:`cosine_null`, :data:`adam_update`, :data:`adam_update_scaled`,
:data:`ema_update`, :data:`adam_update_nc`, :data:`ema_update_nc`, :data:`adam_update_imhof`,
:class:`quadform_update_gen`.
APPROXIMATE (the paper's "replace t by t_eff"): :data:`ema_update_approx`.

At ``t = 1`` every update is ``+-bound`` with probability 1/2 each: a two-point law with no
density. The continuous laws therefore require ``t >= 2`` (``_argcheck`` returns False at
``t = 1``, so scipy answers ``nan``); :data:`adam_update_t1` and :func:`update_law` give the
two-point law as an ``rv_discrete``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special, stats
from scipy.stats._distn_infrastructure import _ShapeInfo

from gradscope.theory import exact

__all__ = [
    "adam_update",
    "adam_update_gen",
    "adam_update_imhof",
    "adam_update_imhof_gen",
    "adam_update_nc",
    "adam_update_nc_gen",
    "adam_update_scaled",
    "adam_update_scaled_gen",
    "adam_update_t1",
    "cosine_null",
    "cosine_null_gen",
    "ema_update",
    "ema_update_approx",
    "ema_update_approx_gen",
    "ema_update_gen",
    "ema_update_nc",
    "ema_update_nc_gen",
    "quadform_update_gen",
    "update_law",
]

_T_INT = _ShapeInfo("t", True, (2, np.inf), (True, False))
_BETA = _ShapeInfo("beta1", False, (0, 1), (True, False))


def _is_step(t: np.ndarray) -> np.ndarray:
    return (t >= 2) & (t == np.floor(t)) & np.isfinite(t)


class _ScaledCosineGen(stats.rv_continuous):
    """Base for laws of the form ``k * C_n``, with ``n`` and ``k`` functions of the shapes."""

    def _nk(self, *shapes):  # pragma: no cover - abstract
        raise NotImplementedError

    # Fast public path: for large float arrays with scalar shapes and no loc/scale, skip
    # rv_continuous's argument broadcasting (about 15 passes over the data) and call the
    # vectorised kernels directly. Results equal the generic path (tested); anything else
    # goes through scipy unchanged.
    def _direct(self, method, x, args, kwds):
        if kwds or not isinstance(x, np.ndarray) or x.size < exact._FAST_MIN_SIZE:
            return None
        if x.dtype != np.float64 or not all(np.ndim(a) == 0 for a in args):
            return None
        if len(args) != self.numargs or not bool(self._argcheck(*args)):
            return None
        return getattr(self, method)(x, *args)

    def pdf(self, x, *args, **kwds):
        out = self._direct("_pdf", x, args, kwds)
        return super().pdf(x, *args, **kwds) if out is None else out

    def logpdf(self, x, *args, **kwds):
        out = self._direct("_logpdf", x, args, kwds)
        return super().logpdf(x, *args, **kwds) if out is None else out

    def cdf(self, x, *args, **kwds):
        out = self._direct("_cdf", x, args, kwds)
        return super().cdf(x, *args, **kwds) if out is None else out

    def sf(self, x, *args, **kwds):
        out = self._direct("_sf", x, args, kwds)
        return super().sf(x, *args, **kwds) if out is None else out

    def _nk_fast(self, *shapes):
        # scipy broadcasts shapes to the data's size; evaluate n and k once when constant
        return self._nk(*(exact._collapse(s) for s in shapes))

    def _get_support(self, *shapes):
        _, k = self._nk(*shapes)
        return -k, k

    def _pdf(self, x, *shapes):
        n, k = self._nk_fast(*shapes)
        return exact.cosine_pdf(x / k, n) / k

    def _logpdf(self, x, *shapes):
        n, k = self._nk_fast(*shapes)
        return exact.cosine_logpdf(x / k, n) - np.log(k)

    def _cdf(self, x, *shapes):
        n, k = self._nk_fast(*shapes)
        return exact.cosine_cdf(x / k, n)

    def _sf(self, x, *shapes):
        n, k = self._nk_fast(*shapes)
        return exact.cosine_sf(x / k, n)

    def _ppf(self, q, *shapes):
        n, k = self._nk(*shapes)
        return k * exact.cosine_ppf(q, n)

    def _isf(self, q, *shapes):
        n, k = self._nk(*shapes)
        return -k * exact.cosine_ppf(q, n)

    def _rvs(self, *shapes, size=None, random_state=None):
        n, k = self._nk(*shapes)
        half = (n - 1) / 2
        assert random_state is not None  # scipy's rvs always passes its generator
        return k * (2 * random_state.beta(half, half, size=size) - 1)

    def _stats(self, *shapes):
        n, k = self._nk(*shapes)
        zero = np.zeros_like(np.asarray(k, dtype=float))
        return zero, k * k / n, zero, exact.excess_kurtosis(n) + zero

    def _munp(self, order, *shapes):
        n, k = self._nk(*shapes)
        if order % 2:
            return np.zeros_like(np.asarray(n, dtype=float))
        j = order // 2
        return k**order * exact.even_moment(n, j)

    def _entropy(self, *shapes):
        n, k = self._nk(*shapes)
        # -E log p = log(k B) - ((n-3)/2) E log(1 - C^2), with C^2 ~ Beta(1/2, (n-1)/2)
        e_log = special.digamma((n - 1) / 2) - special.digamma(n / 2)
        return np.log(k) + special.betaln(0.5, (n - 1) / 2) - (n - 3) / 2 * e_log


class cosine_null_gen(_ScaledCosineGen):
    r"""Cosine between independent vectors in :math:`R^n`, one of them isotropic.

    Notes
    -----
    The density is

    .. math:: f(c; n) = \frac{(1 - c^2)^{(n-3)/2}}{B(1/2, (n-1)/2)}, \quad -1 \le c \le 1,

    for real ``n > 1`` (non-integer ``n`` is used with an effective dimension ``n_eff``).
    Equivalently ``(1+c)/2 ~ Beta((n-1)/2, (n-1)/2)`` and ``c sqrt((n-1)/(1-c^2))`` is Student
    t with ``n-1`` degrees of freedom, which gives exact p-values. ``Var c = 1/n``.

    References
    ----------
    .. [1] docs/theory.md, section 8 (exact null of the cosine randomness test).
    """

    def _shape_info(self):
        return [_ShapeInfo("n", False, (1, np.inf), (False, False))]

    def _argcheck(self, n):
        return (n > 1) & np.isfinite(n)

    def _nk(self, n):
        return n, np.ones_like(np.asarray(n, dtype=float))


class adam_update_gen(_ScaledCosineGen):
    r"""Adam update ``u = m/sqrt(v)`` at step ``t``: i.i.d. Gaussian gradients, simple averaging.

    Notes
    -----
    Exact (Theorem 1 of Zhang & Ziyin, re-derived): :math:`u^2 \sim Beta(1/2, (t-1)/2)`, and

    .. math:: f(u; t) = \frac{(1 - u^2)^{(t-3)/2}}{B(1/2, (t-1)/2)}, \quad -1 \le u \le 1,

    for integer ``t >= 2``: the arcsine law at ``t = 2``, uniform at ``t = 3``, and
    ``sqrt(t) u -> N(0, 1)``. ``Var u = 1/t``; excess kurtosis ``-6/(t+2)``. At ``t = 1`` the
    update is ``+-1`` (two-point, no density): use :data:`adam_update_t1`. Large ``t`` (up to
    1e7 and beyond) is computed in log space.

    References
    ----------
    .. [1] Z. Zhang and L. Ziyin, "On the Distributional Properties of Adaptive Gradients",
           UAI 2021, arXiv:2105.07222 (Eqs. 28-33).
    .. [2] docs/theory.md, section 2.
    """

    def _shape_info(self):
        return [_T_INT]

    def _argcheck(self, t):
        return _is_step(t)

    def _nk(self, t):
        return t, np.ones_like(np.asarray(t, dtype=float))


class adam_update_scaled_gen(_ScaledCosineGen):
    r"""Zhang & Ziyin's scaled update ``s = sqrt(t) u`` (its Eq. 30 variable).

    Notes
    -----
    .. math:: f(s; t) = \frac{(1 - s^2/t)^{(t-3)/2}}{\sqrt{t} B(1/2, (t-1)/2)},
              \quad -\sqrt{t} \le s \le \sqrt{t},

    for integer ``t >= 2``. ``Var s = 1`` for every t (Corollary 1), and
    ``Var|s| = 1 - (t/pi) (Gamma(t/2)/Gamma((t+1)/2))^2`` rises to ``1 - 2/pi`` (Corollary 2).

    References
    ----------
    .. [1] arXiv:2105.07222, Eqs. 30-33 and Corollaries 1-2; docs/theory.md, section 2.
    """

    def _shape_info(self):
        return [_T_INT]

    def _argcheck(self, t):
        return _is_step(t)

    def _nk(self, t):
        return t, np.sqrt(t)


class ema_update_gen(_ScaledCosineGen):
    r"""EXACT law of the update with a bias-corrected EMA first moment and uniform ``v``.

    Notes
    -----
    With ``m_hat = sum w_i g_i`` (EMA weights, factor ``beta1``) and ``v`` the simple average
    of ``g^2`` over ``t`` steps, ``u = k C_t`` with ``k = sqrt(t/t_eff)``:

    .. math:: f(u; t, \beta_1) = \frac{(1 - u^2/k^2)^{(t-3)/2}}{k B(1/2, (t-1)/2)},
              \quad -k \le u \le k.

    ``Var u = 1/t_eff``. It approximates real Adam (``beta2 = 0.999``) to about 1e-4 in CDF
    for ``t >= 3`` (docs/theory.md, section 4). ``beta1 = 0`` is RMSProp with uniform v.

    References
    ----------
    .. [1] docs/theory.md, section 3.1.
    """

    def _shape_info(self):
        return [_T_INT, _BETA]

    def _argcheck(self, t, beta1):
        return _is_step(t) & (beta1 >= 0) & (beta1 < 1)

    def _nk(self, t, beta1):
        return t, exact.ema_scale(t, beta1)


class ema_update_approx_gen(_ScaledCosineGen):
    r"""APPROXIMATE: Zhang & Ziyin's "Theorem 1 with t replaced by t_eff".

    Notes
    -----
    The law of :data:`adam_update` with the real shape ``t_eff(t, beta1)`` on ``[-1, 1]``:

    .. math:: f(u) = \frac{(1 - u^2)^{(t_{eff}-3)/2}}{B(1/2, (t_{eff}-1)/2)}.

    It has the right variance ``1/t_eff`` but the wrong shape and support; its KS distance
    from the exact :data:`ema_update` is up to 0.0165 (0.0075 asymptotically, beta1 = 0.9).
    Requires ``t >= 2`` and ``beta1 > 0`` (so that ``t_eff > 1``).

    References
    ----------
    .. [1] arXiv:2105.07222, section 3.1; docs/theory.md, section 3.2.
    """

    def _shape_info(self):
        return [_T_INT, _ShapeInfo("beta1", False, (0, 1), (False, False))]

    def _argcheck(self, t, beta1):
        return _is_step(t) & (beta1 > 0) & (beta1 < 1)

    def _nk(self, t, beta1):
        return exact.t_eff(t, beta1), np.ones_like(np.asarray(t, dtype=float))


class adam_update_nc_gen(stats.rv_continuous):
    r"""EXACT update law for simple averaging with a constant gradient mean.

    Notes
    -----
    With ``g_i ~ N(mu, sigma^2)`` and ``snr = mu/sigma``, the t statistic ``T`` is noncentral
    t with ``t-1`` degrees of freedom and noncentrality ``sqrt(t) snr``, and
    ``u = T/sqrt(T^2 + t - 1)`` on ``[-1, 1]``, so

    .. math:: f(u) = f_{nct}(T(u)) \sqrt{t-1} (1-u^2)^{-3/2}, \quad
              T(u) = u \sqrt{(t-1)/(1-u^2)}.

    ``snr = 0`` gives :data:`adam_update`. Integer ``t >= 2``.

    References
    ----------
    .. [1] docs/theory.md, sections 2.1, 5 and 7.2.
    """

    def _shape_info(self):
        return [_T_INT, _ShapeInfo("snr", False, (-np.inf, np.inf), (False, False))]

    def _argcheck(self, t, snr):
        return _is_step(t) & np.isfinite(snr)

    def _get_support(self, t, snr):
        return -np.ones_like(t, dtype=float), np.ones_like(t, dtype=float)

    @staticmethod
    def _tmap(x, t):
        return exact.t_statistic_from_update(x, t)

    def _pdf(self, x, t, snr):
        big_t = self._tmap(x, t)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            jac = np.sqrt(t - 1) * ((1 - x) * (1 + x)) ** -1.5
            out = stats.nct.pdf(big_t, t - 1, np.sqrt(t) * snr) * jac
        return np.where(np.abs(x) < 1, np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0)

    def _cdf(self, x, t, snr):
        return stats.nct.cdf(self._tmap(x, t), t - 1, np.sqrt(t) * snr)

    def _sf(self, x, t, snr):
        return stats.nct.sf(self._tmap(x, t), t - 1, np.sqrt(t) * snr)

    def _ppf(self, q, t, snr):
        return exact.update_from_t_statistic(stats.nct.ppf(q, t - 1, np.sqrt(t) * snr), t)

    def _isf(self, q, t, snr):
        return exact.update_from_t_statistic(stats.nct.isf(q, t - 1, np.sqrt(t) * snr), t)

    def _rvs(self, t, snr, size=None, random_state=None):
        big_t = stats.nct.rvs(t - 1, np.sqrt(t) * snr, size=size, random_state=random_state)
        return exact.update_from_t_statistic(big_t, t)


class ema_update_nc_gen(stats.rv_continuous):
    r"""EXACT law with an EMA first moment, uniform ``v`` and a constant gradient mean.

    Notes
    -----
    With ``g_i ~ N(mu, sigma^2)``, ``snr = mu/sigma``, EMA weights ``w`` (factor ``beta1``)
    and ``v`` the simple average of ``g^2``: ``u = k X/sqrt(X^2 + Y)`` on ``[-k, k]``,
    ``k = sqrt(t/t_eff)``, with independent ``X ~ N(snr sqrt(t_eff), 1)`` and
    ``Y ~ ncchi2_{t-1}(snr^2 (t - t_eff))``. The CDF and pdf are one 1-D integral each
    (quadrature error about 1e-12): use grids, not 1e7 points. ``snr = 0`` gives
    :data:`ema_update`; simple averaging is :data:`adam_update_nc`.

    References
    ----------
    .. [1] docs/theory.md, section 5 (uniform v, any w, any mean) and section 9.
    """

    def _shape_info(self):
        return [_T_INT, _BETA, _ShapeInfo("snr", False, (-np.inf, np.inf), (False, False))]

    def _argcheck(self, t, beta1, snr):
        return _is_step(t) & (beta1 >= 0) & (beta1 < 1) & np.isfinite(snr)

    def _get_support(self, t, beta1, snr):
        k = exact.ema_scale(t, beta1)
        return -k, k

    def _cdf(self, x, t, beta1, snr):
        def one(xs, t_, b_, s_):
            return exact.ema_nc_cdf(xs, int(t_), float(b_), float(s_))

        return _grouped(one, x, t, beta1, snr)

    def _pdf(self, x, t, beta1, snr):
        def one(xs, t_, b_, s_):
            return exact.ema_nc_pdf(xs, int(t_), float(b_), float(s_))

        return _grouped(one, x, t, beta1, snr)

    def _munp(self, order, t, beta1, snr):
        # E u^m = int g(k sin th) f(k sin th) k cos th dth: smooth in th, so one vectorised
        # Gauss-Legendre rule replaces scipy's scalar adaptive quadrature (1 pdf call).
        nodes, weights = np.polynomial.legendre.leggauss(160)
        theta = nodes * np.pi / 2

        def one(_, t_, b_, s_):
            k = float(exact.ema_scale(t_, b_))
            x = k * np.sin(theta)
            dens = exact.ema_nc_pdf(x, int(t_), float(b_), float(s_))
            return float(np.sum(weights * x**order * dens * k * np.cos(theta)) * np.pi / 2)

        return _grouped(one, np.zeros(np.shape(t)), t, beta1, snr)

    def _rvs(self, t, beta1, snr, size=None, random_state=None):
        t_, b_, s_ = (float(np.ravel(a)[0]) for a in (t, beta1, snr))
        k, mean_x, lam = exact._ema_nc_parts(int(t_), b_, s_)
        assert random_state is not None  # scipy's rvs always passes its generator
        x = random_state.normal(mean_x, 1.0, size=size)
        y_law = stats.ncx2(t_ - 1, lam) if lam > 0 else stats.chi2(t_ - 1)
        y = y_law.rvs(size=size, random_state=random_state)
        return k * x / np.sqrt(x * x + y)


def _grouped(func, x, *shapes):
    """Apply ``func(x_subset, *scalar_shapes)`` for each distinct shape combination."""
    x = np.asarray(x, dtype=float)
    arrs = np.broadcast_arrays(x, *[np.asarray(s, dtype=float) for s in shapes])
    x, shp = arrs[0], arrs[1:]
    out = np.empty_like(x)
    if x.size == 0:
        return out
    keys = np.stack([s.ravel() for s in shp], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    flat_x, flat_out = x.ravel(), out.ravel()
    for i, key in enumerate(uniq):
        sel = inv.ravel() == i
        flat_out[sel] = func(flat_x[sel], *key)
    return flat_out.reshape(x.shape)


class adam_update_imhof_gen(stats.rv_continuous):
    r"""EXACT law of the real Adam update (``beta2 < 1``), zero-mean i.i.d. Gaussian gradients.

    Notes
    -----
    ``u = m_hat/sqrt(v_hat)`` with bias-corrected EMAs (``beta1``, ``beta2``) and ``eps = 0``.
    No closed form exists. The CDF of the indefinite quadratic form ``g^T (w w^T - x^2 A) g``
    is one real integral over a finite range (:func:`exact.quadform_cdf`: Craig's formula on
    the diagonalised form, equal to Imhof's (1961) inversion integral to ~1e-13 and ~50x
    faster), the pdf its complex-step derivative, and the moments Laplace-transform
    integrals (quadrature error about 1e-11). Support
    ``[-B, B]`` with the sharp bound ``B = sqrt(sum w_i^2/a_i)`` (Proposition 1). Each
    evaluation costs a 1-D integral: use it on grids of hundreds of points, not on 1e7 samples
    (:data:`ema_update` is within 1e-4 of it for Adam defaults). ``rvs`` samples the recursion's
    closed form exactly. Shapes: integer ``t >= 2``, ``beta1 in [0, 1)``, ``beta2 in (0, 1)``.

    References
    ----------
    .. [1] J. P. Imhof, "Computing the distribution of quadratic forms in normal variables",
           Biometrika 48 (1961).
    .. [2] docs/theory.md, section 4.
    """

    def _shape_info(self):
        return [_T_INT, _BETA, _ShapeInfo("beta2", False, (0, 1), (False, False))]

    def _argcheck(self, t, beta1, beta2):
        return _is_step(t) & (beta1 >= 0) & (beta1 < 1) & (beta2 > 0) & (beta2 < 1)

    def _get_support(self, t, beta1, beta2):
        b = exact.adam_update_bound(t, beta1, beta2)
        return -b, b

    @staticmethod
    def _wa(t, beta1, beta2):
        return exact.adam_weights(int(t), float(beta1), float(beta2))

    def _cdf(self, x, t, beta1, beta2):
        return _grouped(lambda xs, *k: exact.quadform_cdf(xs, *self._wa(*k)), x, t, beta1, beta2)

    def _sf(self, x, t, beta1, beta2):
        return self._cdf(-np.asarray(x), t, beta1, beta2)

    def _pdf(self, x, t, beta1, beta2):
        return _grouped(lambda xs, *k: exact.quadform_pdf(xs, *self._wa(*k)), x, t, beta1, beta2)

    def _rvs(self, t, beta1, beta2, size=None, random_state=None):
        w, a = self._wa(np.ravel(t)[0], np.ravel(beta1)[0], np.ravel(beta2)[0])
        return _sample_quadform(w, a, None, size, random_state)

    def _munp(self, order, t, beta1, beta2):
        def one(_, *k):
            if order % 2:
                return 0.0
            return exact.laplace_even_moment(order // 2, *self._wa(*k))

        return _grouped(one, np.zeros(np.shape(t)), t, beta1, beta2)

    def _stats(self, t, beta1, beta2):
        m2 = self._munp(2, t, beta1, beta2)
        m4 = self._munp(4, t, beta1, beta2)
        zero = np.zeros_like(m2)
        return zero, m2, zero, m4 / m2**2 - 3


def _sample_quadform(w, a, scale, size, random_state, chunk: int = 2**22):
    """Exact sampler: ``u = (w.g)/sqrt(a.g^2)`` with ``g_i = s_i z_i``, in memory-bounded chunks."""
    b, alpha = exact._scaled(w, a, scale)
    total = int(np.prod(size)) if size is not None else 1
    out = np.empty(total)
    rows = max(1, chunk // len(b))
    for start in range(0, total, rows):
        stop = min(total, start + rows)
        z = random_state.standard_normal((stop - start, len(b)))
        out[start:stop] = (z @ b) / np.sqrt((z * z) @ alpha)
    return out.reshape(size) if size is not None else out[0]


class quadform_update_gen(stats.rv_continuous):
    r"""EXACT law of ``u = (w.g)/sqrt(a.g^2)``, ``g_i ~ N(0, s_i^2)``: any weights, any sigma(t).

    Parameters
    ----------
    w, v_weights : array_like
        First- and second-moment weights, oldest step first (see :func:`exact.adam_weights`).
    scale : array_like, optional
        Per-step gradient scales ``s_i`` (e.g. ``2**i`` for the growing-variance scenario).

    Notes
    -----
    No shape parameters: the weights are fixed at construction. CDF by
    :func:`exact.quadform_cdf` (checked against Imhof's formula), pdf by its derivative, even
    moments by the Laplace-transform integral; support
    ``[-B, B]`` with ``B = sqrt(sum w^2/a)``. The density can be bimodal (docs/theory.md,
    section 7.1).

    References
    ----------
    .. [1] docs/theory.md, sections 4 and 7.1.
    """

    def __init__(self, w, v_weights, scale=None, **kwargs):
        self._w = np.asarray(w, dtype=float)
        self._a = np.asarray(v_weights, dtype=float)
        self._scale = None if scale is None else np.asarray(scale, dtype=float)
        if self._w.size < 2:
            raise ValueError("at t = 1 the update is two-point; use update_law(1)")
        bound = exact.update_bound(self._w, self._a)
        kwargs.setdefault("a", -bound)
        kwargs.setdefault("b", bound)
        kwargs.setdefault("name", "quadform_update")
        super().__init__(**kwargs)

    def _updated_ctor_param(self):
        dct = super()._updated_ctor_param()
        dct.update(w=self._w, v_weights=self._a, scale=self._scale)
        return dct

    def _cdf(self, x):
        return exact.quadform_cdf(x, self._w, self._a, self._scale)

    def _sf(self, x):
        return self._cdf(-np.asarray(x))

    def _pdf(self, x):
        return exact.quadform_pdf(x, self._w, self._a, self._scale)

    def _rvs(self, size=None, random_state=None):
        return _sample_quadform(self._w, self._a, self._scale, size, random_state)

    def _munp(self, order):
        if order % 2:
            return 0.0
        return exact.laplace_even_moment(order // 2, self._w, self._a, self._scale)

    def _stats(self):
        m2 = self._munp(2)
        return 0.0, m2, 0.0, self._munp(4) / m2**2 - 3


cosine_null = cosine_null_gen(name="cosine_null", shapes="n")
adam_update = adam_update_gen(name="adam_update", shapes="t")
adam_update_scaled = adam_update_scaled_gen(name="adam_update_scaled", shapes="t")
ema_update = ema_update_gen(name="ema_update", shapes="t, beta1")
ema_update_approx = ema_update_approx_gen(name="ema_update_approx", shapes="t, beta1")
adam_update_nc = adam_update_nc_gen(name="adam_update_nc")
adam_update_imhof = adam_update_imhof_gen(name="adam_update_imhof")
ema_update_nc = ema_update_nc_gen(name="ema_update_nc")
adam_update_t1 = stats.rv_discrete(name="adam_update_t1", values=([-1.0, 1.0], [0.5, 0.5]))


def update_law(
    t: int,
    beta1: float | None = None,
    beta2: float | None = None,
    *,
    sigma: npt.ArrayLike | None = None,
    snr: float = 0.0,
    scaled: bool = False,
):
    """Return the exact frozen law of the update at step t for the given case.

    The laws are derived in docs/theory.md, section 5. ``beta=None`` means simple averaging.
    Dispatches to the closed form where one exists (simple averaging, EMA m with uniform v,
    with or without a constant mean) and to the Imhof law otherwise; ``t = 1`` gives the
    two-point law ``+-bound``. ``scaled`` multiplies by ``sqrt(t)`` (the paper's variable;
    simple averaging only). A non-zero ``snr`` with ``beta2`` or ``sigma`` has no exact law:
    use :func:`gradscope.theory.simulate_adam`.
    """
    if t < 1 or int(t) != t:
        raise ValueError(f"t must be a positive integer, got {t}")
    if scaled and (beta1 is not None or beta2 is not None or snr != 0 or sigma is not None):
        raise ValueError("scaled=True is defined for zero-mean simple averaging only")
    if snr != 0 and (beta2 is not None or sigma is not None):
        raise ValueError(
            "a non-zero mean with beta2 < 1 or sigma(t) has no exact law here: use simulate_adam"
        )
    w, a = exact.adam_weights(int(t), beta1, beta2)
    if t == 1:
        k = np.sqrt(t) if scaled else exact.update_bound(w, a)
        return stats.rv_discrete(name="two_point", values=([-k, k], [0.5, 0.5]))()
    if snr != 0:
        return adam_update_nc(t, snr) if beta1 is None else ema_update_nc(t, beta1, snr)
    if sigma is None and beta2 is None:
        if beta1 is None:
            return adam_update_scaled(t) if scaled else adam_update(t)
        return ema_update(t, beta1)
    if sigma is None and beta1 is not None:
        return adam_update_imhof(t, beta1, beta2)
    scale = None if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=float), (int(t),))
    return quadform_update_gen(w, a, scale)()
