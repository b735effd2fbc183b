"""AdaBelief and Adam+ (the Aida paper's baseline), declared on the shared core."""

from __future__ import annotations

from collections.abc import Iterable

from gradscope.optim import _functional as F
from gradscope.optim._core import AdaptiveOptimizer
from gradscope.optim._docs import with_args


class AdaBelief(AdaptiveOptimizer):
    r"""AdaBelief (Zhuang et al. 2020), as the official adabelief-pytorch.

    .. math::
        s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon,\quad
        u_t = 1 / (\sqrt{s_t / (1-\beta_2^t)} + \epsilon),\quad
        x_t = x_{t-1} - \mathrm{lr}\, u_t\, m_t / (1-\beta_1^t)

    with m_t Adam's first moment (the residual uses the *updated* m_t). eps enters twice:
    into the state every step and outside the square root. ``rectify`` applies RAdam's
    rectification (``r_t sqrt(1-b2^t)/(sqrt(s_t)+eps)`` once rho_t > 5, plain momentum
    ``m_t / (1-b1^t)`` before).

    Deviations: the official package changed its defaults across versions (eps 1e-8 vs
    1e-16, weight_decouple, rectify); gradscope defaults to the 0.0.5-era setting the Aida
    paper used (eps 1e-8, coupled L2, no rectify): pass them explicitly to compare.
    The official rectify compares rho_t >= 5, gradscope (as RAdam) > 5: they differ only
    if rho_t is exactly 5.

    References: Zhuang et al., "AdaBelief Optimizer", NeurIPS 2020.
    """

    statistic = staticmethod(F.belief_residual)
    eps_in_state = True

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        amsgrad: bool = False,
        decoupled_weight_decay: bool = False,
        rectify: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            rectify=rectify,
        )


AdaBelief.__doc__ = with_args(
    AdaBelief, "        rectify: RAdam-style rectification of the stepsize.\n"
)


class AdamPlus(AdaptiveOptimizer):
    r"""Adam+ (Zhang, Niwa & Kleijn): AdaBelief's recursion with g_t^2 in place of (g_t - m_t)^2.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 + \epsilon,\\
        u_t = 1 / (\sqrt{v_t / (1-\beta_2^t)} + \epsilon),\quad
        x_t = x_{t-1} - \mathrm{lr}\, u_t\, m_t / (1-\beta_1^t).

    Adam's statistic with AdaBelief's placement of eps: into the state every step (eq. 6
    of the paper with g_t^2) and outside the square root (eq. 7); Adam itself has eps
    only outside. The Aida paper uses it (Figs. 1, 2 and 6) to separate the effect of
    the statistic from that of eps when comparing the layerwise spread of stepsizes of
    Adam, AdaBelief and Aida.

    Deviations: the paper defines Adam+ in one sentence and publishes no code; gradscope
    reads it as AdaBelief's rule above (coupled L2, no rectify, eps 1e-8 as gradscope's
    AdaBelief), with AMSGrad and decoupled decay available as in AdaBelief.

    References: Zhang, Niwa & Kleijn, "On Exploiting Layerwise Gradient Statistics for
    Effective Training of Deep Neural Networks", arXiv:2203.13273.
    """

    statistic = staticmethod(F.grad_square)
    eps_in_state = True

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        amsgrad: bool = False,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )


AdamPlus.__doc__ = with_args(AdamPlus)
