"""The one Adam-family step, the tracking base class, and argument validation.

:class:`AdaptiveOptimizer` runs a fixed pipeline (:func:`pipeline`):

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

Named optimizers are declarations that choose the pieces (checked when the class is
created). Parameters are stepped one tensor at a time (the reference, the eager path for
CPU), in ``torch._foreach_*`` buckets of equal device, dtype and step count (the CUDA
default), or with ``fused=True`` as one ``torch.compile``-d graph per bucket; all three
run the same :func:`pipeline` over the backends of :mod:`gradscope.optim._backends`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradscope.optim import _backends as B
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


def buckets(keys: Sequence[Hashable]) -> list[list[int]]:
    """Indices grouped by key, in order of first appearance (one bucket per distinct key).

    The multi-tensor and fused paths step one bucket at a time; its members must share
    everything a bucket's kernels treat as one (device, dtype, step count, state layout).
    """
    out: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return list(out.values())


#: the most coordinates one CPU foreach call covers: the multi-tensor ops' temporaries of a
#: part this size stay in cache (a whole-model foreach on the CPU streams every temporary
#: through memory and was slower than the per-tensor loop)
CPU_FOREACH_NUMEL = 1 << 18


def _chunks(
    path: str, idx: list[int], params: Sequence[Tensor], limit: int | None = None
) -> list[list[int]]:
    """A bucket's indices in the parts one backend call takes.

    At most ``limit`` (default :data:`FUSED_CHUNK`) tensors for a fused graph; on the CPU,
    foreach parts of at most :data:`CPU_FOREACH_NUMEL` coordinates (a larger tensor alone);
    else the whole bucket.
    """
    if path == "fused":
        k = FUSED_CHUNK if limit is None else limit
        return [idx[s : s + k] for s in range(0, len(idx), k)]
    if params[idx[0]].device.type != "cpu":
        return [idx]
    parts: list[list[int]] = []
    size = 0
    for i in idx:
        n = params[i].numel()
        if parts and size + n <= CPU_FOREACH_NUMEL:
            parts[-1].append(i)
            size += n
        else:
            parts.append([i])
            size = n
    return parts


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


def kept_like(kept: dict[Tensor, Tensor], key: Tensor, like: Tensor | None = None) -> Tensor:
    """The buffer kept under ``key`` shaped like ``like`` (default ``key``), made if needed.

    A step reuses it instead of allocating a parameter-sized tensor (see ``track``).
    """
    like = key if like is None else like
    buf = kept.get(key)
    if (
        buf is None
        or buf.shape != like.shape
        or buf.dtype != like.dtype
        or buf.device != like.device
        or buf.stride() != like.stride()
    ):
        buf = kept[key] = torch.empty_like(like)
    return buf


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
        self._reuse = False
        self._kept: dict[Tensor, Tensor] = {}
        self._last: dict[Tensor, tuple[Tensor, Tensor]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_tracking", False)
        self.__dict__.setdefault("_reuse", False)
        self.__dict__.setdefault("_kept", {})
        self.__dict__.setdefault("_last", {})
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def track(self, enabled: bool = True, *, reuse: bool = False) -> None:
        """Keep (or stop keeping) the stepsize and applied update of the following steps.

        ``reuse=True`` (the recorder's mode on the CPU) computes each parameter's update
        in a buffer kept from step to step, as the per-tensor path steps it, instead of a
        new copy of the parameter per step (on the CPU a fresh parameter-sized tensor
        costs its page faults every step); a report's update is then overwritten by the
        next tracked step.
        """
        self._tracking = bool(enabled)
        if self._reuse != reuse or not enabled:
            self._kept = {}
        self._reuse = bool(reuse)
        if not enabled:
            self._last = {}

    def _kept_for(self, ops: Any, params: list[Tensor]) -> Tensor | None:
        """The kept buffer for a tracked per-tensor step's x_prev (``None``: allocate one).

        Only with ``track(reuse=True)`` and one tensor per call; the caller writes x_prev
        and then the update into it (``ops.clone(x, into=...)``, ``ops.diff_into``).
        """
        if not (self._tracking and self._reuse) or ops.foreach:
            return None
        return kept_like(self._kept, params[0])

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
        """PyTorch's default: foreach on CUDA tensors only, unless the user chose."""
        if foreach is not None:
            return foreach
        return bool(params) and all(p.is_cuda for p in params)

    def _params_with_grads(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        """The group's parameters that have a gradient, and those gradients (dense only)."""
        params, grads = [], []
        for p in group["params"]:
            g = self._grad_of(p)
            if g is not None:
                params.append(p)
                grads.append(g)
        return params, grads

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


# ----------------------------------------------------------------------------------------
# The pipeline, written once for every backend
# ----------------------------------------------------------------------------------------

#: group hyperparameters every Adam-family step reads as numbers that may change per step
#: (schedulers move lr and betas): traced as tensors on the fused backend, never baked in
_TRACED = ("lr", "beta1", "beta2", "eps", "weight_decay", "bc1", "bc2", "sqrt_bc2")
#: the most parameter tensors one fused graph takes (a larger bucket is split): bounds the
#: time and memory of one compilation. Each compiled call costs tens of microseconds of
#: host work, and on a busy CPU each one more waits for its OpenMP threads to be scheduled
#: (0.1-0.3 ms measured with 16 tensors a graph), so the parts are large
FUSED_CHUNK = 64
#: the same for Aida's and AidaGrad's projection statistics, whose graphs compile far
#: more slowly per tensor (each tensor's K-round scalar recurrence; Aida with K = 8 took
#: 465 s to compile 64-tensor graphs against 3-63 s for parts of 16, which repeated
#: layouts also share more often) and stay above 1.5x torch's fused Adam either way
FUSED_CHUNK_PROJECTION = 16


@dataclass(frozen=True)
class Plan:
    """The structural choices of one bucket's step: what :func:`pipeline` branches on.

    The declaration's pieces plus the group's switches. Hashable: with the bucket's
    shapes it keys the fused backend's compiled graphs, so a new plan (tracking switched
    on, RAdam leaving its SGD phase, AMSGrad) compiles once and is cached.
    """

    statistic: Callable[..., Any]
    statistic_is_square: bool
    reduction: str
    second_moment: str
    eps_in_state: bool
    eps_outside: bool
    stepsize: F.StepsizePiece
    maximize: bool
    decay: str | None  # None, "coupled" or "decoupled"
    amsgrad: bool
    examplewise: bool
    track: bool


def _is_one(c: Any) -> bool:
    return isinstance(c, int | float) and c == 1


def pipeline(
    ops: B.Backend,
    plan: Plan,
    hp: dict[str, Any],
    x: B.Operand,
    g: B.Operand,
    m: B.Operand,
    v: B.Operand,
    vmax: B.Operand | None = None,
    sq: B.Operand | None = None,
    keep: B.Operand | None = None,
) -> tuple[B.Operand, B.Operand] | None:
    """One Adam-family step of one tensor or bucket, in place on x, m, v (and vmax).

    ``hp`` holds the group's hyperparameters, ``beta1``/``beta2`` and the step's
    ``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``, ``sqrt_bc2`` (python numbers, or 0-d tensors
    on the traced backend), plus the stepsize piece's own numbers and flags. ``sq`` is
    Eve's per-example mean of g_b^2. Returns (stepsize u, applied update) when
    ``plan.track``, else None. The update is ``x <- x - lr u m / bc1``, lr excluded from u.
    ``keep`` is a buffer shaped like x that holds x_prev and then the update (a tracked
    step then allocates no copy of x); ``None``: a new one.
    """
    lr, beta1, beta2, eps = hp["lr"], hp["beta1"], hp["beta2"], hp["eps"]
    x_prev = ops.clone(x, into=keep) if plan.track else None

    # 1-2. gradient, decay
    if plan.maximize:
        g = ops.neg(g)
    if plan.decay == "decoupled":
        ops.mul_(x, 1.0 - lr * hp["weight_decay"])
    elif plan.decay == "coupled":
        g = ops.add_scaled(g, x, hp["weight_decay"])

    # 3. first moment
    ops.lerp_(m, g, 1.0 - beta1)

    # 4-6. second moment: statistic (its root r, s = r^2, unless the declaration says
    #      otherwise), layer reduction, EMA, eps in the state, AMSGrad
    if plan.second_moment == "yogi":
        ops.yogi_(v, g, beta2)
    else:
        r = plan.statistic(ops, g, m, hp if sq is None else {**hp, "sq_mean": sq})
        if plan.reduction == "layer_before_ema":
            s = ops.mean_square(r) if plan.statistic_is_square else ops.mean(r)
            ops.ema_(v, s, beta2)
        elif plan.statistic_is_square:
            # eps in the state is folded into the same passes over v
            ops.ema_square_(v, r, beta2, eps if plan.eps_in_state else 0.0)
        else:
            ops.ema_(v, r, beta2)
    if plan.eps_in_state and (plan.reduction == "layer_before_ema" or not plan.statistic_is_square):
        ops.add_scalar_(v, eps)
    if plan.amsgrad:
        ops.maximum_(vmax, v)
        v = vmax

    # 7. stepsize: a denominator d (x += -lr c/bc1 m/d, u = c/d) or a stepsize u
    step = plan.stepsize.fn(ops, v, m, {**hp, "eps_out": eps if plan.eps_outside else 0.0})

    # 8. update
    if step.d is not None:
        ops.apply_div_(x, m, step.d, -lr * step.c / hp["bc1"])
    else:
        ops.apply_mul_(x, m, step.u, -lr / hp["bc1"])

    if not plan.track:
        return None
    stepsize = step.u
    if step.d is not None:
        stepsize = ops.reciprocal_(step.d)  # d is transient: every denominator is fresh
        if not _is_one(step.c):
            ops.mul_(stepsize, step.c)
    return stepsize, ops.diff_into(x, x_prev)


def _make_fused(plan: Plan, baked: tuple, names: tuple[str, ...]) -> Callable[..., Any]:
    """The function torch.compile traces for one bucket: the pipeline, tensor by tensor.

    ``baked`` (python hyperparameters and flags) becomes graph constants; the numbers in
    ``names`` arrive as one float64 vector ``scal`` per step, so changing lr, betas or t
    never recompiles. The step counters are bumped inside the graph (a host
    ``torch._foreach_add_`` on 0-d CPU tensors costs about 3 us per tensor).
    """
    constants = dict(baked)

    def fused_step(steps, xs, gs, ms, vs, vmaxs, sqs, scal):
        hp = dict(constants)
        for i, name in enumerate(names):
            hp[name] = scal[i]
        for s in steps:
            s.add_(1.0)
        out = []
        for i in range(len(xs)):
            out.append(
                pipeline(
                    B.TRACED,
                    plan,
                    hp,
                    xs[i],
                    gs[i],
                    ms[i],
                    vs[i],
                    vmaxs[i] if plan.amsgrad else None,
                    sqs[i] if plan.examplewise else None,
                )
            )
        return out

    return fused_step


# ----------------------------------------------------------------------------------------
# The Adam-family optimizer
# ----------------------------------------------------------------------------------------

_REDUCTIONS = ("element", "layer_before_ema")
#: group entries that never enter the pipeline as constants (betas are traced one by one)
_NOT_BAKED = ("betas", "foreach", "fused")
_SECOND_MOMENTS = ("ema", "yogi")


class AdaptiveOptimizer(TrackedOptimizer):
    """The shared Adam-family step; subclasses declare the pieces as class attributes.

    A declaration is checked when its class is created (:meth:`__init_subclass__`): a
    combination the pipeline cannot run raises a TypeError there, not a wrong step later.
    """

    # --- the pieces (declarations override these) ---
    #: second-moment statistic s(g, m), as its root r (s = r^2): F.grad_square, ...
    statistic: ClassVar[Callable[..., Any]] = staticmethod(F.grad_square)
    #: False when the statistic returns s itself rather than its root (Eve)
    statistic_is_square: ClassVar[bool] = True
    #: "element", or "layer_before_ema": the layer mean of s before the EMA (LAdam family)
    reduction: ClassVar[str] = "element"
    #: "ema" or "yogi" (Yogi's additive rule on g^2)
    second_moment: ClassVar[str] = "ema"
    #: eps added into the second-moment state every step (AdaBelief, Aida, layerwise)
    eps_in_state: ClassVar[bool] = False
    #: eps added outside the square root (Adam, AdaBelief); False for Aida and friends
    eps_outside: ClassVar[bool] = True
    #: the stepsize piece: F.adam_stepsize, rectified_, set_, eve_, msvag_, layer_mean_
    stepsize: ClassVar[F.StepsizePiece] = F.adam_stepsize
    #: value of both moments at t = 0 (Yogi's initial_accumulator)
    initial_accumulator: ClassVar[float] = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_declaration(cls)

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
        fused: bool | None = None,
        **extra: Any,
    ) -> None:
        check_nonnegative("learning rate", lr)
        if not (isinstance(betas, tuple | list) and len(betas) == 2):
            raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
        check_range("beta1 (betas[0])", betas[0], 0.0, 1.0, closed_high=False)
        check_range("beta2 (betas[1])", betas[1], 0.0, 1.0, closed_high=False)
        check_nonnegative("epsilon", eps)
        check_nonnegative("weight_decay", weight_decay)
        if fused and foreach:
            raise ValueError("fused=True and foreach=True cannot be set together: pick one")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
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
                    (), a0, dtype=B.acc_dtype(p.dtype), device=p.device
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
            params, grads = self._params_with_grads(group)
            if not params:
                continue
            if group.get("fused"):
                path = "fused"
                for device in {p.device for p in params}:
                    B.check_fusable(device)
            else:
                path = "foreach" if self._use_foreach(group["foreach"], params) else "single"
            states = [self._init_state(p, group) for p in params]
            if path == "fused":
                self._step_fused(group, params, grads, states)
                continue
            if path == "single":
                for p, g, st in zip(params, grads, states):
                    self._run(path, group, [p], [g], [st])
                continue
            keys = [(p.device, p.dtype, int(st["step"])) for p, st in zip(params, states)]
            for idx in buckets(keys):
                for part in _chunks(path, idx, params):
                    self._run(
                        path,
                        group,
                        [params[i] for i in part],
                        [grads[i] for i in part],
                        [states[i] for i in part],
                    )
        return loss

    def _stepsize_for(self, group: dict[str, Any]) -> F.StepsizePiece:
        """The declaration's stepsize piece, or RAdam's where the group asks to rectify."""
        return F.rectified_stepsize if group.get("rectify") else self.stepsize

    def _numbers(
        self, group: dict[str, Any], t: int, examplewise: tuple[list[Tensor], int] | None
    ) -> tuple[Plan, dict[str, Any], dict[str, float]]:
        """The step's structure and numbers at step t: (plan, baked, traced).

        ``traced`` holds the per-step numbers (lr, betas, bias corrections, the stepsize
        piece's own), ``baked`` the group's other hyperparameters and flags. Computed once
        per bucket: every tensor of a bucket shares t.
        """
        beta1, beta2 = group["betas"]
        bc2 = 1.0 - beta2**t
        traced: dict[str, float] = dict(
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            bc1=1.0 - beta1**t,
            bc2=bc2,
            sqrt_bc2=math.sqrt(bc2),
        )
        baked: dict[str, Any] = {
            k: group[k] for k in self.defaults if k not in traced and k not in _NOT_BAKED
        }
        if examplewise is not None:
            baked["batch"] = examplewise[1]
        piece = self._stepsize_for(group)
        if piece.host is not None:
            more, flags = piece.host({**baked, **traced}, t)
            traced.update(more)
            baked.update(flags)
            for k in more:
                baked.pop(k, None)
        wd = group["weight_decay"]
        plan = Plan(
            statistic=self.statistic,
            statistic_is_square=self.statistic_is_square,
            reduction=self.reduction,
            second_moment=self.second_moment,
            eps_in_state=self.eps_in_state,
            eps_outside=self.eps_outside,
            stepsize=piece,
            maximize=bool(group["maximize"]),
            decay=None if not wd else "decoupled" if group["decoupled_weight_decay"] else "coupled",
            amsgrad=bool(group["amsgrad"]),
            examplewise=examplewise is not None,
            track=self._tracking,
        )
        return plan, baked, traced

    def _run(
        self,
        path: str,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
    ) -> None:
        """Host side of one eager step for one tensor ("single") or one foreach part."""
        for st in states:
            st["step"] += 1
        t = int(states[0]["step"])
        examplewise = self._examplewise_for(params)
        sq = examplewise[0] if examplewise is not None else None
        plan, baked, traced = self._numbers(group, t, examplewise)
        ms = [st["exp_avg"] for st in states]
        vs = [st["exp_avg_sq"] for st in states]
        vmaxs = [st["max_exp_avg_sq"] for st in states] if plan.amsgrad else []
        ops = B.FOREACH if path == "foreach" else B.SINGLE

        def col(seq: list) -> Any:
            return seq if ops.foreach else seq[0]

        res = pipeline(
            ops,
            plan,
            {**baked, **traced},
            col(params),
            col(grads),
            col(ms),
            col(vs),
            col(vmaxs) if plan.amsgrad else None,
            col(sq) if sq is not None else None,
            self._kept_for(ops, params) if plan.track else None,
        )
        if res is not None:
            self._keep(params, ops.items(res[0]), ops.items(res[1]))

    def _step_fused(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
    ) -> None:
        """Host side of a fused step: one plan and one number vector per bucket.

        Then one compiled call per part of at most :data:`FUSED_CHUNK` tensors. The host
        work is what a fused step costs beyond its kernels (a few us per tensor, and tens
        of us per compiled call), so it is done once per bucket, not once per part: the
        numbers go to the device as one float64 tensor, and each graph bumps its step
        counters itself.
        """
        steps = [st["step"] for st in states]
        keys = [(p.device, p.dtype, int(s)) for p, s in zip(params, steps)]
        for idx in buckets(keys):
            examplewise = self._examplewise_for([params[i] for i in idx])
            plan, baked, traced = self._numbers(group, keys[idx[0]][2] + 1, examplewise)
            device = params[idx[0]].device
            names = tuple(traced)
            frozen = tuple(sorted(baked.items()))
            scal = torch.tensor([traced[n] for n in names], dtype=torch.float64, device=device)
            sq = dict(zip(idx, examplewise[0])) if examplewise is not None else {}
            projection = plan.statistic in (F.aida_residual, F.aidagrad_projection)
            limit = FUSED_CHUNK_PROJECTION if projection else FUSED_CHUNK
            for part in _chunks("fused", idx, params, limit):
                sts = [states[i] for i in part]
                ps = [params[i] for i in part]
                out = _run_fused(
                    plan,
                    frozen,
                    names,
                    scal,
                    [steps[i] for i in part],
                    ps,
                    [grads[i] for i in part],
                    [st["exp_avg"] for st in sts],
                    [st["exp_avg_sq"] for st in sts],
                    [st["max_exp_avg_sq"] for st in sts] if plan.amsgrad else [],
                    [sq[i] for i in part] if sq else [],
                )
                if out is not None:
                    self._keep(ps, [o[0] for o in out], [o[1] for o in out])


def _run_fused(
    plan: Plan,
    frozen: tuple,
    names: tuple[str, ...],
    scal: Tensor,
    steps: list[Tensor],
    params: list[Tensor],
    grads: list[Tensor],
    ms: list[Tensor],
    vs: list[Tensor],
    vmaxs: list[Tensor],
    sqs: list[Tensor],
) -> list[tuple[Tensor, Tensor]] | None:
    """One part of a bucket as one compiled graph, cached by plan, constants and layout.

    The cache key holds the parameters' and gradients' shapes and strides; the state's
    layout follows from them and the plan (created like the parameter, or 0-d for a
    layer scalar), and dynamo's own guards on every input catch any other layout (a
    guard failure recompiles, it never runs a wrong graph).
    """
    # inductor (torch 2.13) drops in-place writes to 0-d graph inputs: hand 0-d
    # tensors in as 1-element views (the writes land in the originals), then give
    # the reported tensors their eager shapes back
    layer_v = plan.reduction == "layer_before_ema"
    layout = tuple((p.shape, p.stride(), g.stride()) for p, g in zip(params, grads))
    if any(not p.shape for p in params):
        ins = [[_one_d(t) for t in seq] for seq in (params, grads, ms, vs, vmaxs, sqs)]
    elif layer_v:
        ins = [params, grads, ms, [v.view(1) for v in vs], [v.view(1) for v in vmaxs], sqs]
    else:
        ins = [params, grads, ms, vs, vmaxs, sqs]
    # the step counters are bumped in the graph where they live on its device (a CPU
    # graph; on CUDA they are CPU tensors unless a fused checkpoint was loaded)
    if steps[0].device == params[0].device:
        counters = [s.view(1) for s in steps]
    else:
        B.bump_steps(steps)
        counters = []
    key = (plan, frozen, names, str(params[0].device), params[0].dtype, layout, bool(counters))
    fn = B.compiled(key, lambda: _make_fused(plan, frozen, names))
    out = fn(counters, *ins, scal)
    if not plan.track:
        return None
    shaped = []
    for (u, d), p, v, v1 in zip(out, params, vs, ins[3]):
        if u.shape == v1.shape:
            u = u.view(v.shape)
        shaped.append((u, d.view(p.shape)))
    return shaped


def _one_d(t: Tensor) -> Tensor:
    return t.view(1) if t.dim() == 0 else t


def check_declaration(cls: type) -> None:
    """Raise a TypeError naming the attribute if a declaration's pieces do not fit together."""
    name = cls.__name__

    def bad(msg: str) -> TypeError:
        return TypeError(f"{name}: {msg}")

    if cls.reduction == "layer_after_ema":
        raise bad(
            "reduction='layer_after_ema' is a stepsize now: declare "
            "stepsize = F.layer_mean_stepsize (and reduction='element')"
        )
    if cls.reduction not in _REDUCTIONS:
        raise bad(f"reduction must be one of {_REDUCTIONS}, not {cls.reduction!r}")
    if cls.second_moment not in _SECOND_MOMENTS:
        raise bad(f"second_moment must be one of {_SECOND_MOMENTS}, not {cls.second_moment!r}")
    if not callable(cls.statistic):
        raise bad(f"statistic must be a function (ops, g, m, hp) -> root, not {cls.statistic!r}")
    if not isinstance(cls.stepsize, F.StepsizePiece):
        raise bad(
            "stepsize must be a gradscope.optim._functional.StepsizePiece (adam_stepsize, "
            f"rectified_stepsize, set_stepsize, eve_stepsize, msvag_stepsize, "
            f"layer_mean_stepsize), not {cls.stepsize!r}"
        )
    if cls.second_moment == "yogi":
        if cls.statistic is not F.grad_square or not cls.statistic_is_square:
            raise bad("second_moment='yogi' is a rule on g^2: it needs statistic=F.grad_square")
        if cls.reduction != "element" or cls.eps_in_state:
            raise bad("second_moment='yogi' is elementwise without eps in the state")
    if cls.stepsize.elementwise_only and cls.reduction != "element":
        raise bad(
            f"stepsize {cls.stepsize.name!r} needs an elementwise second moment, "
            f"not reduction={cls.reduction!r}"
        )
    if cls.eps_outside and not cls.stepsize.outer_eps:
        raise bad(
            f"stepsize {cls.stepsize.name!r} places no eps outside the square root: "
            "declare eps_outside = False"
        )
    if (cls.stepsize is F.eve_stepsize) != (cls.statistic is F.examplewise_square):
        raise bad("Eve's stepsize and its examplewise statistic go together")
    if cls.statistic is F.examplewise_square and cls.statistic_is_square:
        raise bad("F.examplewise_square returns s itself: declare statistic_is_square = False")
    a0 = cls.initial_accumulator
    if not (isinstance(a0, int | float) and math.isfinite(a0) and a0 >= 0):
        raise bad(f"initial_accumulator must be a finite number >= 0, not {a0!r}")
