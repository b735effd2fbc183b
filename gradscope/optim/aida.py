"""Aida and AidaGrad (Zhang, Niwa & Kleijn), declared on the shared core."""

from __future__ import annotations

from collections.abc import Iterable

from gradscope.optim import _functional as F
from gradscope.optim._core import AdaptiveOptimizer, check_nonnegative
from gradscope.optim._docs import with_args

_AIDA_ARGS = """        k: number K >= 1 of mutual layerwise projections of m and g.
        xi: small constant in the projection denominators (paper: 1e-20).
"""


def check_projection_args(k: int, xi: float) -> None:
    """Reject K < 1 (or non-integer K) and negative xi."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Invalid k (number of projections): {k!r} (must be an integer >= 1)")
    check_nonnegative("xi", xi)


class Aida(AdaptiveOptimizer):
    r"""Aida (Alg. 3 of Zhang, Niwa & Kleijn): AdaBelief's residual after K projections.

    Per layer l (one parameter tensor), from (m^{(0)}, g^{(0)}) = (m_t, g_t):

    .. math::
        m^{(k)} = \frac{\langle m^{(k-1)}, g^{(k-1)}\rangle}{\|g^{(k-1)}\|^2 + \xi} g^{(k-1)},\quad
        g^{(k)} = \frac{\langle m^{(k-1)}, g^{(k-1)}\rangle}{\|m^{(k-1)}\|^2 + \xi} m^{(k-1)},\\
        v_t = \beta_2 v_{t-1} + (1-\beta_2)(m^{(K)} - g^{(K)})^2 + \epsilon,\quad
        u_t = 1/\sqrt{v_t / (1-\beta_2^t)},\quad
        x_t = x_{t-1} - \mathrm{lr}\, u_t\, m_t / (1-\beta_1^t).

    eps is in the state only; there is no outer eps (official code). The K projections
    are evaluated exactly as a scalar recurrence over three reductions per layer, so the
    cost does not grow with K.

    Deviations: eq. (13) of the paper prints g^{(k-1)} on its left side (a typo for
    g^{(k)}). pytorch_optimizer's Aida uses (sqrt(v + 1e-15) + eps)/sqrt(bc2), which is
    not the official rule; gradscope follows the official code.

    References: Zhang, Niwa & Kleijn, "On Exploiting Layerwise Gradient Statistics for
    Effective Training of Deep Neural Networks", arXiv:2203.13273.
    """

    statistic = staticmethod(F.aida_residual)
    eps_in_state = True
    eps_outside = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        k: int = 2,
        xi: float = 1e-20,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_projection_args(k, xi)
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            k=k,
            xi=xi,
        )


Aida.__doc__ = with_args(Aida, _AIDA_ARGS)


class AidaGrad(AdaptiveOptimizer):
    r"""AidaGrad (App. A): the EMA of g projected once onto m, tracked as in Adam.

    .. math::
        g^p = \frac{\langle m_t, g_t\rangle}{\|m_t\|^2 + \xi} m_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)(g^p)^2 + \epsilon,\quad
        x_t = x_{t-1} - \mathrm{lr}\, m_t / ((1-\beta_1^t)\sqrt{v_t/(1-\beta_2^t)}).

    No official code exists; the rule follows the paper's appendix.
    """

    statistic = staticmethod(F.aidagrad_projection)
    eps_in_state = True
    eps_outside = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        xi: float = 1e-20,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_nonnegative("xi", xi)
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            xi=xi,
        )


AidaGrad.__doc__ = with_args(AidaGrad, "        xi: projection denominator constant.\n")
