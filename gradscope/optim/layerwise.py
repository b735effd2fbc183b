"""Layerwise variants AdamL, AdaBeliefL, LAdam, LAdaBelief and LAida (Aida paper, Sec. II).

A layer is one parameter tensor. All five put eps into the second-moment state and have
no outer eps. AdamL/AdaBeliefL average the elementwise stepsizes after the EMA (one
stepsize per layer, Adam's memory); LAdam/LAdaBelief/LAida average the statistic before
the EMA (one scalar state per layer).
"""

from __future__ import annotations

from collections.abc import Iterable

from gradscope.optim import _functional as F
from gradscope.optim._core import AdaptiveOptimizer
from gradscope.optim._docs import with_args
from gradscope.optim.aida import _AIDA_ARGS, check_projection_args


class _Layerwise(AdaptiveOptimizer):
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
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )


class AdamL(_Layerwise):
    r"""AdamL (Alg. 1, eqs. 8-10): Adam's elementwise v, one averaged stepsize per layer.

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 + \epsilon,\quad
        \gamma_{l,t} = \mathrm{mean}_i\, 1/\sqrt{v_{l,t}[i]/(1-\beta_2^t)},\quad
        x_{l,t} = x_{l,t-1} - \mathrm{lr}\, \gamma_{l,t}\, m_{l,t}/(1-\beta_1^t).

    Deviations: line 7 of the printed Alg. 1 (exponents p, q, r_t) is a stray fragment and
    is ignored; eq. (10) defines the algorithm. No official code exists.
    """

    statistic = staticmethod(F.grad_square)
    stepsize = F.layer_mean_stepsize


class AdaBeliefL(AdamL):
    r"""AdaBeliefL: AdamL with the AdaBelief statistic (m_t - g_t)^2 in place of g_t^2."""

    statistic = staticmethod(F.belief_residual)


class LAdam(_Layerwise):
    r"""LAdam (Alg. 2, eq. 11): one scalar second moment per layer.

    .. math::
        v_{l,t} = \beta_2 v_{l,t-1} + (1-\beta_2)\,\mathrm{mean}_i\, g_{l,t}[i]^2 + \epsilon,\quad
        x_{l,t} = x_{l,t-1} - \mathrm{lr}\, m_{l,t} / ((1-\beta_1^t)\sqrt{v_{l,t}/(1-\beta_2^t)}).

    Matches the official LAdam class (eps added into the scalar state, no outer eps).
    """

    statistic = staticmethod(F.grad_square)
    reduction = "layer_before_ema"


class LAdaBelief(LAdam):
    r"""LAdaBelief: LAdam with mean_i (m_{l,t}[i] - g_{l,t}[i])^2 as the layer statistic."""

    statistic = staticmethod(F.belief_residual)


class LAida(LAdam):
    r"""LAida (App. B, Alg. 5): Aida's K projections, then LAdam's scalar state per layer.

    .. math:: v_{l,t} = \beta_2 v_{l,t-1} + (1-\beta_2)\,
        \mathrm{mean}_i (m^{(K)} - g^{(K)})_i^2 + \epsilon

    Deviations: Alg. 5 line 14 prints m/(1-b1) and v/(1-b2) without the exponent t (a
    typo); gradscope uses b^t. No official code exists.
    """

    statistic = staticmethod(F.aida_residual)

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
        AdaptiveOptimizer.__init__(  # _Layerwise takes no projection arguments
            self,
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


for _cls in (AdamL, AdaBeliefL, LAdam, LAdaBelief):
    _cls.__doc__ = with_args(_cls)
LAida.__doc__ = with_args(LAida, _AIDA_ARGS)
