"""Eve (Kunze, Townsend & Barber): Adam with an examplewise second moment."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor

from gradscope.optim import _functional as F
from gradscope.optim._core import AdaptiveOptimizer
from gradscope.optim._docs import with_args


class Eve(AdaptiveOptimizer):
    r"""Eve: Adam whose second moment is the batch mean of per-example squared gradients.

    With per-example gradients g_b (b = 1..B) whose mean is the batch gradient g_t:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\mathrm{mean}_b\, g_b^2,\\
        \hat v = \frac{v_t/(1-\beta_2^t)}{B} + \Big(1-\frac1B\Big)\hat m^2,\quad
        x_t = x_{t-1} - \mathrm{lr}\, \hat m / (\sqrt{\hat v} + \epsilon)

    with m_hat = m_t/(1-b1^t). B = 1 is exactly Adam. Before each step hand the optimizer
    mean_b g_b^2 per parameter with :meth:`set_examplewise` (gradscope.examplewise computes
    it); p.grad must hold the batch-mean gradient.

    Deviations: Algorithm 1 line 10 of the paper prints beta_1 in the v update; the text,
    line 12 and all official code use beta_2, and so does gradscope. Weight decay is
    decoupled (x -= lr wd x), as in the official code.

    References: Kunze, Townsend & Barber, "Adaptive Optimization with Examplewise
    Gradients", arXiv:2112.00174; github.com/juliuskunze/eve.
    """

    statistic = staticmethod(F.examplewise_square)
    statistic_is_square = False
    stepsize = F.eve_stepsize

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
            decoupled_weight_decay=True,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )
        self._sq_mean: dict[Tensor, Tensor] = {}
        self._batch = 0

    def set_examplewise(
        self, sq_mean: Mapping[Tensor, Tensor] | Sequence[tuple[Tensor, Tensor]], batch_size: int
    ) -> None:
        """Hand over mean_b g_b^2 (elementwise, per parameter) for the next step.

        ``sq_mean`` maps each parameter (the tensor object) to mean_b of its squared
        per-example gradients; ``batch_size`` is B. Consumed by the next :meth:`step`.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size!r} (must be an integer >= 1)")
        pairs = sq_mean.items() if isinstance(sq_mean, Mapping) else sq_mean
        table = {}
        for p, s in pairs:
            if s.shape != p.shape:
                raise ValueError(
                    f"sq_mean of a {tuple(p.shape)} parameter has shape {tuple(s.shape)}"
                )
            table[p] = s
        self._sq_mean, self._batch = table, batch_size

    def _examplewise_for(self, params: list[Tensor]) -> tuple[list[Tensor], int]:
        missing = [tuple(p.shape) for p in params if p not in self._sq_mean]
        if missing:
            raise RuntimeError(
                f"Eve needs per-example second moments for every parameter with a gradient "
                f"(missing for shapes {missing[:3]}): call optimizer.set_examplewise(...) "
                "before step(), e.g. with gradscope.examplewise.examplewise_moments"
            )
        return [self._sq_mean[p] for p in params], self._batch

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one step with the per-example moments handed over last, then drop them."""
        try:
            return super().step(closure)
        finally:
            self._sq_mean = {}


Eve.__doc__ = with_args(Eve)
