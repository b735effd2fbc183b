"""SET-Adam (G. Zhang, arXiv:2302.01029): Adam with a suppressed stepsize range."""

from __future__ import annotations

from collections.abc import Iterable

from gradscope.optim import _functional as F
from gradscope.optim._core import AdaptiveOptimizer, check_range
from gradscope.optim._docs import with_args


class SETAdam(AdaptiveOptimizer):
    r"""SET-Adam: down-scaling, epsilon-embedding and down-translating of Adam's v.

    Per layer l with d_l elements, on a transient copy of Adam's v_t (no eps in the EMA):

    .. math::
        \tilde v_l = \cos^2(v_l, 1_l)\, v_l,\quad
        \cos^2 = \frac{(\sum_i v_l[i])^2}{d_l \sum_i v_l[i]^2},\\
        w_l = \sqrt{\tilde v_l/(1-\beta_2^t) + \epsilon},\quad
        \tilde w_l = w_l - \tau \min_i w_l[i],\quad
        x_t = x_{t-1} - \mathrm{lr}\, m_t / ((1-\beta_1^t)\, \tilde w_t).

    The reported stepsize is u = 1/w~. cos^2 is scale-invariant (bias correction before or
    after is the same) and 1 for d_l = 1; a layer with v == 0 gets v~ = 0.

    Deviations (no official code exists; the choices of docs/optimizers.md): v~ is
    not written back into the state; eps only inside the sqrt; T subtracts tau * min(w)
    from every element; coupled L2 by default; eps default 1e-8.

    References: G. Zhang, "On Suppressing Range of Adaptive Stepsizes of Adam to Improve
    Generalisation Performance", arXiv:2302.01029.
    """

    stepsize = F.set_stepsize
    eps_outside = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        tau: float = 0.5,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        # tau = 1 would make the smallest w~ exactly 0 (an infinite stepsize): [0, 1).
        check_range("tau", tau, 0.0, 1.0, closed_high=False)
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            tau=tau,
        )


SETAdam.__doc__ = with_args(
    SETAdam, "        tau: down-translation fraction in [0, 1) (paper: 0.5).\n"
)
