"""The one Adam-family step, the tracking base class, and argument validation.

:class:`AdaptiveOptimizer` runs a fixed pipeline (STYLE.md rule 1):

1. gradient, negated if ``maximize``;
2. coupled L2 decay ``g <- g + wd x`` (or decoupled ``x <- x (1 - lr wd)``);
3. first-moment EMA ``m <- b1 m + (1 - b1) g``;
4. the second-moment statistic ``s`` (the pluggable piece: g^2, (g - m)^2, Aida's residual,
   AidaGrad's projection, Eve's per-example mean of g_b^2);
5. reduction: elementwise, or the layer mean of ``s`` before the EMA (LAdam family);
6. second-moment EMA ``v <- b2 v + (1 - b2) s`` (or Yogi's additive rule), ``+ eps`` in the
   state for the AdaBelief/Aida family; AMSGrad max;
7. the stepsize: ``u = 1 / (sqrt(v / bc2) + eps)`` or a transform of it (layer mean after
   the EMA for the AdamL family, SET, Eve's batch correction, RAdam's rectification, M-SVAG);
8. the update ``x <- x - lr u m / bc1``.

Named optimizers are declarations that choose the pieces. Parameters are stepped one
tensor at a time (the reference, fastest on CPU) or in ``torch._foreach_*`` buckets of
equal device, dtype and step count (CUDA default); both run the same pipeline code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradscope.optim import _functional as F


@dataclass(frozen=True)
class ParamStep:
    """What an optimizer did to one parameter on its last step (see :mod:`introspect`).

    ``stepsize`` is the adaptive stepsize u with ``update = -lr * u * m_hat`` (lr
    excluded); it has the parameter's shape, or is 0-d when the optimizer uses one value
    per layer. ``update`` is ``x_t - x_{t-1}`` as actually applied.
    """

    param: Tensor
    group: int
    lr: float
    grad: Tensor | None
    exp_avg: Tensor | None
    exp_avg_sq: Tensor | None
    stepsize: Tensor
    update: Tensor


class NotTrackedError(RuntimeError):
    """``last_step`` was asked for a step that ran without tracking."""


def check_range(name: str, value: Any, low: float, high: float, *, closed_high: bool) -> None:
    """Raise a ValueError naming the hyperparameter unless low <= value < high (or <=)."""
    ok = low <= value <= high if closed_high else low <= value < high
    if not (isinstance(value, int | float) and math.isfinite(value) and ok):
        bracket = "]" if closed_high else ")"
        raise ValueError(f"Invalid {name}: {value!r} (must lie in [{low}, {high}{bracket})")


def check_nonnegative(name: str, value: Any) -> None:
    """Raise a ValueError naming the hyperparameter unless it is a finite number >= 0."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"Invalid {name}: {value!r} (must be a finite number >= 0)")


class TrackedOptimizer(torch.optim.Optimizer):
    """Base of every gradscope optimizer: torch's contract plus a step report.

    When tracking is on (:meth:`track`), each step keeps the stepsize it used and the update
    it applied, per parameter, outside ``state`` (so checkpoints stay small); the recorder
    reads them through :meth:`last_step`. Nothing is recomputed and nothing leaves the
    device.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self._tracking = False
        self._last: dict[Tensor, tuple[Tensor, Tensor]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_tracking", False)
        self.__dict__.setdefault("_last", {})
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def track(self, enabled: bool = True) -> None:
        """Keep (or stop keeping) the stepsize and applied update of the following steps."""
        self._tracking = bool(enabled)
        if not enabled:
            self._last = {}

    def _keep(self, params: list[Tensor], stepsizes: list[Tensor], updates: list[Tensor]) -> None:
        for p, u, d in zip(params, stepsizes, updates):
            self._last[p] = (u, d)

    def last_step(self) -> list[ParamStep]:
        """One :class:`ParamStep` per parameter that took part in the last tracked step."""
        if not self._tracking:
            raise NotTrackedError(
                f"{type(self).__name__} was not tracking: call "
                "gradscope.optim.introspect.track(optimizer) before the step"
            )
        out = []
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p not in self._last:
                    continue
                u, d = self._last[p]
                st = self.state[p]
                out.append(
                    ParamStep(
                        param=p,
                        group=gi,
                        lr=float(group["lr"]),
                        grad=p.grad,
                        exp_avg=st.get("exp_avg", st.get("momentum_buffer")),
                        exp_avg_sq=st.get("exp_avg_sq"),
                        stepsize=u,
                        update=d,
                    )
                )
        return out

    @staticmethod
    def _use_foreach(foreach: bool | None, params: list[Tensor]) -> bool:
        """torch's default: foreach on CUDA tensors only, unless the user chose."""
        if foreach is not None:
            return foreach
        return bool(params) and all(p.is_cuda for p in params)

    def _closure_loss(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    @staticmethod
    def _grad_of(p: Tensor) -> Tensor | None:
        g = p.grad
        if g is not None and g.is_sparse:
            raise RuntimeError(
                f"{p.shape} parameter has a sparse gradient: gradscope optimizers support "
                "dense gradients only (use torch.optim.SparseAdam for sparse embeddings)"
            )
        return g


class AdaptiveOptimizer(TrackedOptimizer):
    """The shared Adam-family step; subclasses declare the pieces as class attributes."""

    # --- the pieces (declarations override these) ---
    #: second-moment statistic s(g, m), as its root r (s = r^2): F.grad_square, ...
    statistic: ClassVar[Callable[..., Any]] = staticmethod(F.grad_square)
    #: False when the statistic returns s itself rather than its root (Eve)
    statistic_is_square: ClassVar[bool] = True
    #: "element", "layer_before_ema" (LAdam family) or "layer_after_ema" (AdamL family)
    reduction: ClassVar[str] = "element"
    #: "ema" or "yogi"
    second_moment: ClassVar[str] = "ema"
    #: eps added into the second-moment state every step (AdaBelief, Aida, layerwise)
    eps_in_state: ClassVar[bool] = False
    #: eps added outside the square root (Adam, AdaBelief); False for Aida and friends
    eps_outside: ClassVar[bool] = True
    #: "adam", "rectified", "set", "eve" or "msvag"
    denominator: ClassVar[str] = "adam"
    #: value of both moments at t = 0 (Yogi's initial_accumulator)
    initial_accumulator: ClassVar[float] = 0.0

    def __init__(
        self,
        params: Iterable,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        *,
        amsgrad: bool = False,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        **extra: Any,
    ) -> None:
        check_nonnegative("learning rate", lr)
        if not (isinstance(betas, tuple | list) and len(betas) == 2):
            raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
        check_range("beta1 (betas[0])", betas[0], 0.0, 1.0, closed_high=False)
        check_range("beta2 (betas[1])", betas[1], 0.0, 1.0, closed_high=False)
        check_nonnegative("epsilon", eps)
        check_nonnegative("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            **extra,
        )
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ state

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        if len(state) == 0:
            a0 = self.initial_accumulator
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.full_like(p, a0, memory_format=torch.preserve_format)
            if self.reduction == "layer_before_ema":
                state["exp_avg_sq"] = torch.full(
                    (), a0, dtype=F._acc_dtype(p.dtype), device=p.device
                )
            else:
                state["exp_avg_sq"] = torch.full_like(p, a0, memory_format=torch.preserve_format)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(state["exp_avg_sq"])
        return state

    def _examplewise_for(self, params: list[Tensor]) -> tuple[list[Tensor], int] | None:
        """Per-example second moments for these parameters (Eve only)."""
        return None

    # ------------------------------------------------------------------ step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the loss if given."""
        loss = self._closure_loss(closure)
        if self._tracking:
            self._last = {}
        for group in self.param_groups:
            params, grads = [], []
            for p in group["params"]:
                g = self._grad_of(p)
                if g is None:
                    continue
                params.append(p)
                grads.append(g)
            if not params:
                continue
            states = [self._init_state(p, group) for p in params]
            if self._use_foreach(group["foreach"], params):
                buckets: dict[tuple, list[int]] = {}
                for i, (p, st) in enumerate(zip(params, states)):
                    key = (p.device, p.dtype, int(st["step"]))
                    buckets.setdefault(key, []).append(i)
                for idx in buckets.values():
                    self._run(
                        F.FOREACH,
                        group,
                        [params[i] for i in idx],
                        [grads[i] for i in idx],
                        [states[i] for i in idx],
                    )
            else:
                for p, g, st in zip(params, grads, states):
                    self._run(F.SINGLE, group, [p], [g], [st])
        return loss

    def _run(
        self,
        ops: Any,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
    ) -> None:
        """The pipeline for one tensor (SINGLE) or one bucket of tensors (FOREACH)."""

        def col(seq: list) -> Any:
            return seq if ops.foreach else seq[0]

        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        for st in states:
            st["step"] += 1
        t = int(states[0]["step"])
        bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t

        x = col(params)
        g = col(grads)
        m = col([st["exp_avg"] for st in states])
        v = col([st["exp_avg_sq"] for st in states])
        x_prev = ops.clone(x) if self._tracking else None

        # 1-2. gradient, decay
        if group["maximize"]:
            g = ops.neg(g)
        if wd:
            if group["decoupled_weight_decay"]:
                ops.mul_(x, 1.0 - lr * wd)
            else:
                g = ops.add_scaled(g, x, wd)

        # 3. first moment
        ops.lerp_(m, g, 1.0 - beta1)

        # 4-6. second moment
        hp = dict(group)
        examplewise = self._examplewise_for(params)
        if examplewise is not None:
            hp["sq_mean"] = col(examplewise[0])
            hp["batch"] = examplewise[1]
        if self.second_moment == "yogi":
            ops.yogi_(v, g, beta2)
        else:
            r = self.statistic(ops, g, m, hp)  # s = r^2 unless the statistic says otherwise
            if self.reduction == "layer_before_ema":
                s = ops.mean_square(r) if self.statistic_is_square else ops.mean(r)
                ops.ema_(v, s, beta2)
            elif self.statistic_is_square:
                # eps in the state is folded into the same passes over v
                ops.ema_square_(v, r, beta2, eps if self.eps_in_state else 0.0)
            else:
                ops.ema_(v, r, beta2)
        if self.eps_in_state and (
            self.reduction == "layer_before_ema" or not self.statistic_is_square
        ):
            ops.add_scalar_(v, eps)
        if group["amsgrad"]:
            vmax = col([st["max_exp_avg_sq"] for st in states])
            ops.maximum_(vmax, v)
            v = vmax

        # 7. stepsize: a denominator d (x += -lr c/bc1 m/d, u = c/d) or a stepsize u
        #    (x += -lr/bc1 u m). Folding sqrt(bc2) into c saves a pass over d.
        d = u = None
        c = 1.0
        outer_eps = eps if self.eps_outside else 0.0
        kind = "rectified" if group.get("rectify") else self.denominator
        if self.reduction == "layer_after_ema":
            u = ops.rsqrt_mean(v, bc2)
        elif kind == "adam":
            # sqrt(v/bc2) + eps = (sqrt(v) + eps sqrt(bc2)) / sqrt(bc2)
            c = math.sqrt(bc2)
            d = ops.sqrt_add(v, outer_eps * c)
        elif kind == "rectified":
            r = F.rectification(beta2, t)
            if r > 0.0:
                c = r * math.sqrt(bc2)
                d = ops.sqrt_add(v, outer_eps)
            else:
                u = col([torch.ones((), dtype=p.dtype, device=p.device) for p in params])
        elif kind == "set":
            d = F.set_transform(ops, v, bc2, eps, group["tau"])
        elif kind == "eve":
            d = F.eve_denominator(ops, v, m, bc1, bc2, outer_eps, hp["batch"])
        elif kind == "msvag":
            rho = (1.0 - beta1) * (1.0 + beta1**t) / ((1.0 + beta1) * bc1)
            u = F.msvag_factor(ops, v, m, bc1, min(rho, group["rho_cap"]))
        else:  # pragma: no cover - declarations are checked by the test registry
            raise AssertionError(f"unknown denominator {kind!r}")

        # 8. update
        if d is not None:
            ops.apply_div_(x, m, d, -lr * c / bc1)
        else:
            ops.apply_mul_(x, m, u, -lr / bc1)

        if self._tracking:
            stepsize = u
            if d is not None:
                stepsize = ops.reciprocal_(d)  # d is transient: every denominator is fresh
                if c != 1.0:
                    ops.mul_(stepsize, c)
            update = ops.diff_into(x, x_prev)
            self._keep(params, ops.items(stepsize), ops.items(update))
