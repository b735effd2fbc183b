"""Heavy-ball SGD, Fromage, and the Aida paper's adaptive baselines RAdam, Yogi, M-SVAG.

RAdam, Yogi and M-SVAG are declarations on the shared Adam-family core; SGD and Fromage
are outside the family and have their own (short) steps on the same tracking base.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from gradscope.optim import _backends as B
from gradscope.optim import _functional as F
from gradscope.optim._core import (
    AdaptiveOptimizer,
    TrackedOptimizer,
    buckets,
    check_nonnegative,
    check_range,
)
from gradscope.optim._docs import with_args


def _no_fused(name: str, fused: bool | None) -> None:
    """SGD and Fromage are outside the Adam-family pipeline: they have no fused backend."""
    if fused:
        raise ValueError(
            f"{name} has no fused backend (fused=True is offered by the Adam-family "
            "optimizers): use fused=None, or foreach=True on CUDA"
        )


class SGD(TrackedOptimizer):
    r"""SGD with heavy-ball momentum, as torch.optim.SGD.

    .. math::
        b_1 = g_1,\quad b_t = \mu b_{t-1} + (1-\tau) g_t,\quad
        x_t = x_{t-1} - \mathrm{lr}\, b_t\quad
        (\text{nesterov: } x_t = x_{t-1} - \mathrm{lr}(g_t + \mu b_t))

    with g_t after coupled weight decay. The reported stepsize is u = 1 (0-d) and the
    reported first moment the momentum buffer, so that update = -lr u b_t.

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: learning rate.
        momentum: heavy-ball coefficient mu in [0, 1).
        dampening: tau, the damping of the gradient in the buffer (torch: b_1 = g_1 anyway).
        weight_decay: coupled L2 coefficient.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective.
        foreach: multi-tensor path; None picks it for CUDA parameters.
        fused: not offered (accepted as None or False, for torch's signature).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        *,
        nesterov: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_nonnegative("learning rate", lr)
        check_range("momentum", momentum, 0.0, 1.0, closed_high=False)
        check_range("dampening", dampening, 0.0, 1.0, closed_high=True)
        check_nonnegative("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        _no_fused("SGD", fused)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the loss if given."""
        loss = self._closure_loss(closure)
        if self._tracking:
            self._last = {}
        for group in self.param_groups:
            pairs = [(p, g) for p in group["params"] if (g := self._grad_of(p)) is not None]
            if not pairs:
                continue
            params = [p for p, _ in pairs]
            grads = [g for _, g in pairs]
            if self._use_foreach(group["foreach"], params):
                keys = [(p.device, p.dtype, "momentum_buffer" in self.state[p]) for p in params]
                for idx in buckets(keys):
                    self._run(B.FOREACH, group, [params[i] for i in idx], [grads[i] for i in idx])
            else:
                for p, g in pairs:
                    self._run(B.SINGLE, group, [p], [g])
        return loss

    def _run(self, ops: Any, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]):
        def col(seq: list) -> Any:
            return seq if ops.foreach else seq[0]

        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        x, g = col(params), col(grads)
        x_prev = ops.clone(x, into=self._kept_for(ops, params)) if self._tracking else None
        if group["maximize"]:
            g = ops.neg(g)
        if wd:
            g = ops.add_scaled(g, x, wd)
        direction = g
        if mu:
            states = [self.state[p] for p in params]
            if "momentum_buffer" not in states[0]:
                for st, gi in zip(states, ops.items(g)):
                    st["momentum_buffer"] = torch.clone(gi).detach()
            else:
                buf = col([st["momentum_buffer"] for st in states])
                ops.mul_(buf, mu)
                ops.add_scaled_(buf, g, 1.0 - group["dampening"])
            buf = col([st["momentum_buffer"] for st in states])
            direction = ops.add_scaled(g, buf, mu) if group["nesterov"] else buf
        ops.add_scaled_(x, direction, -lr)
        if self._tracking:
            ones = [torch.ones((), dtype=p.dtype, device=p.device) for p in params]
            self._keep(params, ones, ops.items(ops.diff_into(x, x_prev)))


class Fromage(TrackedOptimizer):
    r"""Fromage (Bernstein et al. 2020): a layerwise relative step on the unit hyper-sphere.

    .. math::
        x \leftarrow \frac{x - \mathrm{lr}\, g\, \|x\| / \|g\|}{\sqrt{1 + \mathrm{lr}^2}}
        \quad(\text{or } (x - \mathrm{lr}\, g)/\sqrt{1+\mathrm{lr}^2}
        \text{ when } \|x\| \|g\| = 0)

    The reported stepsize is the layer scalar u = (|x|/|g|) / sqrt(1 + lr^2) (1 in the
    zero case), with the gradient as first moment; the update also shrinks x radially by
    1/sqrt(1 + lr^2), which u does not include. No weight decay (the paper's setting).

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: learning rate (paper: 0.01).
        maximize: maximize the objective.
        foreach: accepted for symmetry; Fromage always loops per tensor.
        fused: not offered (accepted as None or False).

    References: Bernstein, Vahdat, Yue & Liu, "On the distance between two neural
    networks and the stability of learning", NeurIPS 2020.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_nonnegative("learning rate", lr)
        _no_fused("Fromage", fused)
        super().__init__(params, dict(lr=lr, maximize=maximize, foreach=foreach))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the loss if given."""
        loss = self._closure_loss(closure)
        if self._tracking:
            self._last = {}
        for group in self.param_groups:
            lr = group["lr"]
            shrink = 1.0 / math.sqrt(1.0 + lr * lr)
            for p in group["params"]:
                g = self._grad_of(p)
                if g is None:
                    continue
                if group["maximize"]:
                    g = -g
                self.state[p].setdefault("step", torch.tensor(0.0))
                self.state[p]["step"] += 1
                keep = self._kept_for(B.SINGLE, [p])
                x_prev = B.SINGLE.clone(p, into=keep) if self._tracking else None
                nx, ng = B.SINGLE.sumsq(p).sqrt(), B.SINGLE.sumsq(g).sqrt()
                ratio = torch.where((nx > 0) & (ng > 0), nx / ng.clamp_min(1e-300), 1.0)
                p.add_(g * ratio.to(p.dtype), alpha=-lr).mul_(shrink)
                if x_prev is not None:
                    self._keep([p], [ratio * shrink], [B.SINGLE.diff_into(p, x_prev)])
        return loss


class RAdam(AdaptiveOptimizer):
    r"""RAdam (Liu et al. 2020), as torch.optim.RAdam.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1,\quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t};\quad
        \rho_t > 5:\ u_t = \frac{r_t \sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon},\
        \text{else } u_t = 1;\quad x_t = x_{t-1} - \mathrm{lr}\, u_t\, m_t/(1-\beta_1^t)

    with r_t the variance rectification term (see
    :func:`gradscope.optim._functional.rectification`). eps sits on the uncorrected sqrt(v).

    Deviations: Liu's own code decays decoupled and computes in float32; gradscope follows
    torch (coupled L2 unless ``decoupled_weight_decay``, the parameter's dtype).
    """

    stepsize = F.rectified_stepsize

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
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
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )


class Yogi(AdaptiveOptimizer):
    r"""Yogi (Zaheer et al. 2018), as the torch-optimizer code the Aida paper ran.

    .. math::
        v_t = v_{t-1} - (1-\beta_2)\,\mathrm{sign}(v_{t-1} - g_t^2)\, g_t^2,\quad
        u_t = 1/(\sqrt{v_t/(1-\beta_2^t)} + \epsilon),\quad
        x_t = x_{t-1} - \mathrm{lr}\, u_t\, m_t/(1-\beta_1^t)

    Deviations: the paper has no bias correction and initialises only v; the code the Aida
    paper ran (and pytorch_optimizer) bias-corrects both moments and starts both m_0 and
    v_0 at ``initial_accumulator`` = 1e-6. gradscope follows that code. eps 1e-3 and lr
    1e-2 are the paper's recommendations.
    """

    second_moment = "yogi"
    initial_accumulator = 1e-6

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        *,
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
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )


class MSVAG(AdaptiveOptimizer):
    r"""M-SVAG (Balles & Hennig 2018): momentum SGD with a variance-adapted factor.

    One beta for both moments; m = EMA(g)/(1-b^t), v = EMA(g^2)/(1-b^t),

    .. math::
        \rho_t = \frac{(1-\beta)(1+\beta^t)}{(1+\beta)(1-\beta^t)},\quad
        s = \frac{v - m^2}{1-\rho_t},\quad
        u = \mathrm{clip}_{[0,1]}\frac{m^2}{m^2 + \rho_t s},\quad
        x_t = x_{t-1} - \mathrm{lr}\, u\, m

    rho_t is capped at ``rho_cap`` = 0.9999 (step 1 is 0/0 otherwise, a plain SGD step
    then) and NaN factors become 0, as pytorch_optimizer. The states live in the
    parameter's dtype (as in torch); v - m^2 cancels, so bfloat16 parameters give a
    factor dominated by rounding: keep M-SVAG's parameters in float32 or wider.

    Deviations: the copy bundled with the AdaBelief/Aida repositories averages g^2 with
    beta1, bias-corrects with beta2 and does not cap rho; gradscope follows the paper.
    """

    stepsize = F.msvag_stepsize
    eps_outside = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        beta: float = 0.9,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            (beta, beta),
            0.0,
            weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            rho_cap=0.9999,
        )


for _cls in (RAdam, Yogi):
    _cls.__doc__ = with_args(_cls)
MSVAG.__doc__ = (
    (MSVAG.__doc__ or "")
    + """
    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: learning rate.
        beta: the one EMA coefficient of both moments.
        weight_decay: coupled L2 coefficient.
        maximize: maximize the objective.
        foreach: multi-tensor path; None picks it for CUDA parameters.
        fused: one compiled graph per bucket (see the other optimizers' ``fused``).
"""
)
