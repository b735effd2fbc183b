"""Adam (with AMSGrad) and AdamW, declared on the shared core."""

from __future__ import annotations

from collections.abc import Iterable

from gradscope.optim import _functional as F
from gradscope.optim._core import AdaptiveOptimizer
from gradscope.optim._docs import with_args


class Adam(AdaptiveOptimizer):
    r"""Adam (Kingma & Ba 2015), as torch.optim.Adam.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
        u_t = 1 / (\sqrt{v_t / (1-\beta_2^t)} + \epsilon),\quad
        x_t = x_{t-1} - \mathrm{lr}\, u_t\, m_t / (1-\beta_1^t).

    eps is outside the square root and after bias correction (torch's placement; the
    paper's "efficient" form uses eps_hat = eps sqrt(1 - b2^t)). AMSGrad replaces v_t by
    its running maximum.

    References: Kingma & Ba, "Adam", ICLR 2015; Reddi et al., "On the Convergence of Adam
    and Beyond", ICLR 2018.
    """

    statistic = staticmethod(F.grad_square)

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


Adam.__doc__ = with_args(Adam)


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.

    .. math:: x_t = x_{t-1}(1 - \mathrm{lr}\, w) - \mathrm{lr}\, u_t\, m_t / (1-\beta_1^t)

    with u_t as Adam's; the decay acts on the pre-step parameters and never enters the
    moments. Default weight_decay 1e-2 (torch's).

    References: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        amsgrad: bool = False,
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
            decoupled_weight_decay=True,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )


AdamW.__doc__ = with_args(AdamW)
