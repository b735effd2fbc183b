"""Read what a ``torch.optim`` (or any other) optimizer did to each parameter.

Two kinds of readers, chosen by :func:`reader_for`:

* **exact adapters** for the torch optimizers whose rule defines an elementwise stepsize u
  with ``update = -lr * u * direction`` (plus the decoupled weight decay ``-lr wd x``):
  Adam, AdamW, SGD, Adagrad, RMSprop (plain, centered, momentum), Adamax, NAdam, RAdam,
  Adadelta and Adafactor. u is computed from the optimizer's state with the same
  operations as torch's step (the rule of each is written in its function below);
* the **generic path** for every other ``torch.optim.Optimizer`` (Lion, Rprop, Muon,
  Schedule-Free, SOAP, a user's own, ...): it needs nothing from the optimizer but its
  param groups and state. It reports the gradient, the applied update
  ``x_t - x_{t-1}`` (from a copy of the parameters taken in a step pre-hook, only on
  tracked steps) and every state tensor under its own key; it defines no stepsize.

The update comes from that snapshot, so :func:`track` must be on before the step (the
recorder does this on recorded steps only: untracked steps copy nothing). Adam, AdamW and
SGD can also be read untracked: their update then follows from their state by the rule.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradscope.errors import UnsupportedOptimizerError
from gradscope.optim._backends import sqrt_into
from gradscope.optim._core import NotTrackedError, ParamStep, kept_like

__all__ = [
    "OptimizerFacts",
    "TorchParamStep",
    "describe",
    "last_step",
    "track",
]


@dataclass(frozen=True)
class TorchParamStep(ParamStep):
    """A :class:`ParamStep` read from a torch (or generic) optimizer.

    ``stepsize`` is ``None`` on the generic path (no elementwise stepsize is defined).
    ``state`` holds the parameter's other state entries under their own keys (tensors of
    any shape; numbers as 0-d tensors), without ``step`` and without the entries already
    reported as ``exp_avg``/``exp_avg_sq``.
    """

    stepsize: Tensor | None  # type: ignore[assignment]
    state: Mapping[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerFacts:
    """What gradscope can read from one optimizer.

    Attributes:
        name: ``module.QualName`` of the optimizer class.
        path: ``"gradscope"`` (reports from its own step), ``"exact"`` (a torch adapter)
            or ``"generic"``.
        quantities: the core quantities it defines (a subset of grad, exp_avg,
            exp_avg_sq, stepsize, update, param).
        stepsize: what the recorded stepsize means, or ``None``.
        stepsize_undefined: why no elementwise stepsize exists (``None`` when one does).
        aliases: state keys reported under a core name (``{"square_avg": "exp_avg_sq"}``).
    """

    name: str
    path: str
    quantities: tuple[str, ...]
    stepsize: str | None
    stepsize_undefined: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------- snapshots
class _Snapshot:
    """Per optimizer: copies of the parameters (and named state) before a tracked step.

    With ``reuse`` (the recorder's mode on the CPU) the copies go into buffers kept from
    one step to the next, and :func:`last_step` computes the update into the copy itself
    and the stepsize into a kept buffer, then returns the same reports for the rest of
    the step: no fresh parameter-sized tensor per step. A fresh one costs its page
    faults on every step on the CPU (tensors of 10^5-10^7 floats are mapped and unmapped
    by the allocator), a large part of what reading the step cost on a ResNet-18. The
    reports' tensors are then valid until the next tracked step only.
    """

    def __init__(self, opt: torch.optim.Optimizer, prev_state: tuple[str, ...]) -> None:
        self.enabled = False
        self.fresh = False
        self.reuse = False
        self.prev: dict[Tensor, Tensor] = {}
        self.prev_state: dict[Tensor, dict[str, Tensor]] = {}
        self.keys = prev_state
        self.kept: dict[Tensor, Tensor] = {}  # reuse: the copies' buffers
        self.kept_u: dict[Tensor, Tensor] = {}  # reuse: the stepsizes' buffers
        self.result: list[TorchParamStep] | None = None  # reuse: this step's reports
        # torch.compiler.disable is typed as the union of its decorator forms; given a
        # function it returns the (not compiled) function, a valid step pre-hook
        hook: Any = torch.compiler.disable(self._pre_hook)
        self.handle = opt.register_step_pre_hook(hook)

    def _pre_hook(self, opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        self.prev = {}
        self.prev_state = {}
        self.result = None
        self.fresh = self.enabled
        if not self.enabled:
            return
        kept: dict[Tensor, Tensor] = {}
        with torch.no_grad():
            for group in opt.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue  # torch's step skips it
                    if self.reuse:
                        buf = kept_like(self.kept, p, p)
                        kept[p] = buf.copy_(p.detach())
                        self.prev[p] = buf
                    else:
                        self.prev[p] = p.detach().clone()
                    st = opt.state.get(p, {})
                    copies = {k: st[k].detach().clone() for k in self.keys if k in st}
                    if copies:
                        self.prev_state[p] = copies
        if self.reuse:  # parameters no longer stepped release their buffers
            self.kept = kept
            self.kept_u = {p: u for p, u in self.kept_u.items() if p in kept}

    def buffer_u(self, p: Tensor, like: Tensor) -> Tensor | None:
        """A kept buffer for ``p``'s stepsize shaped like ``like`` (``None``: no reuse)."""
        return kept_like(self.kept_u, p, like) if self.reuse else None

    def update(self, p: Tensor) -> Tensor:
        """``x_t - x_{t-1}``: into the copy itself with reuse, else a new tensor."""
        prev = self.prev[p]
        if self.reuse:
            return torch.sub(p.detach(), prev, out=prev)
        return p.detach() - prev


_SNAPSHOTS: weakref.WeakKeyDictionary[torch.optim.Optimizer, _Snapshot] = (
    weakref.WeakKeyDictionary()
)


# ---------------------------------------------------------------------- readers
@dataclass(frozen=True)
class _Reader:
    """How to read one optimizer class: u per parameter, or nothing (generic)."""

    stepsize: Callable[..., tuple[Tensor, Tensor | None, Tensor | None]] | None
    quantities: tuple[str, ...]
    meaning: str | None
    aliases: Mapping[str, str] = field(default_factory=dict)
    prev_state: tuple[str, ...] = ()
    undefined: str | None = None
    derived: Callable[..., dict[str, Tensor]] | None = None


def _sign(group: Mapping[str, Any]) -> float:
    return -1.0 if group.get("maximize", False) else 1.0


def _direction(group: Mapping[str, Any], p: Tensor, prev: Tensor) -> Tensor:
    """The gradient the rule consumed: ``s g + wd x_{t-1}`` (coupled decay).

    ``s = -1`` when maximizing.
    """
    grad = p.grad
    assert grad is not None  # callers skip the parameters that took no gradient
    g = grad * _sign(group)
    wd = group.get("weight_decay", 0.0)
    if wd and not group.get("decoupled_weight_decay", False):
        g = g + wd * prev
    return g


def _t(st: Mapping[str, Any]) -> float:
    return float(st["step"])


def _adagrad(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, _ps: Any):
    """Adagrad: ``x -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps)``.

    u = ``1 / ((1 + (t-1) lr_decay) (sqrt(sum) + eps))``, direction g.
    """
    decay = 1.0 + (_t(st) - 1.0) * group["lr_decay"]
    u = sqrt_into(st["sum"]).add_(group["eps"]).mul_(decay).reciprocal_()
    return u, None, None


def _rmsprop(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, _ps: Any):
    """RMSprop: ``avg = sqrt(v - [centered] gbar**2) + eps``.

    Without momentum ``x -= lr g / avg``; with momentum ``buf = mu buf + g / avg``,
    ``x -= lr buf``. u = ``1 / avg`` (the stepsize this step's gradient gets), direction g.
    """
    v = st["square_avg"]
    avg = v.addcmul(st["grad_avg"], st["grad_avg"], value=-1) if group["centered"] else v
    u = sqrt_into(avg, None if avg is v else avg).add_(group["eps"]).reciprocal_()
    return u, None, v


def _adamax(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, _ps: Any):
    """Adamax: ``u_inf = max(b2 u_inf, |g| + eps)``, ``x -= lr / bc1 * m / u_inf``.

    u = ``1 / exp_inf``, direction ``m / bc1``.
    """
    return st["exp_inf"].reciprocal(), st["exp_avg"], None


def _nadam(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, _ps: Any):
    """NAdam: u = ``1 / (sqrt(v / bc2) + eps)``.

    ``x -= lr [(1-mu_t)/(1-prod_t) g + mu_{t+1}/(1-prod_t mu_{t+1}) m] /
    (sqrt(v / bc2) + eps)``.
    """
    bc2 = 1.0 - group["betas"][1] ** _t(st)
    vb = st["exp_avg_sq"].div(bc2)
    u = sqrt_into(vb, vb).add_(group["eps"]).reciprocal_()
    return u, st["exp_avg"], st["exp_avg_sq"]


def _radam_rect(group: Mapping[str, Any], t: float) -> float | None:
    """RAdam's rectification ``r_t`` (``None`` while ``rho_t <= 5``: then u = 1)."""
    b2 = group["betas"][1]
    bc2 = 1.0 - b2**t
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    rho_t = rho_inf - 2.0 * t * (b2**t) / bc2
    if rho_t <= 5.0:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def _radam(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, _ps: Any):
    """RAdam: ``x -= lr * m / bc1 * u``.

    With ``u = r_t sqrt(bc2) / (sqrt(v) + eps)`` once ``rho_t > 5``, else ``u = 1`` (a 0-d
    tensor: one value for the layer).
    """
    t = _t(st)
    rect = _radam_rect(group, t)
    if rect is None:
        u = torch.ones((), dtype=p.dtype, device=p.device)
    else:
        bc2 = 1.0 - group["betas"][1] ** t
        u = sqrt_into(st["exp_avg_sq"]).add_(group["eps"]).reciprocal_().mul_(rect * bc2**0.5)
    return u, st["exp_avg"], st["exp_avg_sq"]


def _adadelta(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, ps: Any):
    """Adadelta: ``x -= lr * sqrt(acc_{t-1} + eps) / sqrt(v_t + eps) * g``.

    u = ``sqrt(acc_delta_{t-1} + eps) / sqrt(square_avg + eps)`` (acc_delta before the step,
    from the snapshot), direction g.
    """
    acc = ps.get("acc_delta")
    if acc is None:  # the first step: torch starts it at zero
        acc = torch.zeros_like(p)
    u = acc.add(group["eps"]).sqrt_().div_(st["square_avg"].add(group["eps"]).sqrt_())
    return u, None, st["square_avg"]


def _adafactor(group: Mapping[str, Any], p: Tensor, st: Mapping[str, Any], prev: Tensor, _ps: Any):
    """Adafactor (torch's): ``x -= alpha / denom * g / sqrt(max(V, eps1**2))``.

    With ``V = row_var col_var / mean(row_var)`` (factored, 2-D and up) or ``variance``,
    ``alpha = max(eps2, rms(x_{t-1})) min(lr, 1/sqrt(t))`` and ``denom = max(1, rms(g /
    sqrt(V)) / d)``. u = ``alpha / (lr denom) / sqrt(max(V, eps1**2))``, direction g.
    """
    eps1, eps2 = group["eps"]
    if eps1 is None:
        eps1 = torch.finfo(p.dtype).eps
    t = _t(st)
    lr = float(group["lr"])
    rho = min(lr, 1.0 / t**0.5)
    alpha = max(eps2, prev.norm(2).item() / (p.numel() ** 0.5)) * rho
    grad = p.grad
    assert grad is not None  # callers skip the parameters that took no gradient
    g = grad * _sign(group)
    if g.dim() > 1:
        row, col = st["row_var"], st["col_var"]
        var = (row @ col).div_(row.mean(dim=-2, keepdim=True).clamp_(min=eps1))
    else:
        var = st["variance"].clone()
    r = var.clamp_(min=eps1 * eps1).rsqrt_()
    denom = max(1.0, (r * g).norm(2).item() / ((g.numel() ** 0.5) * group["d"]))
    return r.mul_(alpha / (lr * denom)), None, None


def _exact(
    fn: Callable[..., Any],
    quantities: tuple[str, ...],
    meaning: str,
    aliases: Mapping[str, str] | None = None,
    prev_state: tuple[str, ...] = (),
) -> _Reader:
    return _Reader(fn, quantities, meaning, dict(aliases or {}), prev_state)


_GD = ("grad", "stepsize", "update", "param")
_ADAM_Q = ("grad", "exp_avg", "exp_avg_sq", "stepsize", "update", "param")
_ADAM_MEANING = "u = 1/(sqrt(v/bc2)+eps): update = -lr * u * m/bc1 (- lr wd x, decoupled)"

_READERS: dict[type, _Reader] = {
    torch.optim.Adam: _Reader(None, _ADAM_Q, _ADAM_MEANING),
    torch.optim.AdamW: _Reader(None, _ADAM_Q, _ADAM_MEANING),
    torch.optim.SGD: _Reader(
        None,
        _ADAM_Q,
        "u = 1: update = -lr * direction (the momentum buffer, or the decayed gradient)",
        {"momentum_buffer": "exp_avg"},
    ),
    torch.optim.Adagrad: _exact(
        _adagrad, _GD, "u = 1/((1+(t-1) lr_decay)(sqrt(sum)+eps)): update = -lr * u * g"
    ),
    torch.optim.RMSprop: _exact(
        _rmsprop,
        ("grad", "exp_avg_sq", "stepsize", "update", "param"),
        "u = 1/(sqrt(square_avg [- grad_avg^2])+eps), the stepsize of this step's gradient: "
        "update = -lr * u * g (with momentum: momentum_buffer = mu * buf + u * g, "
        "update = -lr * momentum_buffer)",
        {"square_avg": "exp_avg_sq"},
    ),
    torch.optim.Adamax: _exact(
        _adamax,
        ("grad", "exp_avg", "stepsize", "update", "param"),
        "u = 1/exp_inf: update = -lr * u * m/bc1",
        {"exp_avg": "exp_avg"},
    ),
    torch.optim.NAdam: _exact(
        _nadam,
        _ADAM_Q,
        "u = 1/(sqrt(v/bc2)+eps): update = -lr * u * [(1-mu_t)/(1-prod_t) g + "
        "mu_{t+1}/(1-prod_{t+1}) m] (- lr wd x, decoupled)",
        {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"},
    ),
    torch.optim.RAdam: _exact(
        _radam,
        _ADAM_Q,
        "u = r_t sqrt(bc2)/(sqrt(v)+eps) once rho_t > 5, else 1: update = -lr * u * m/bc1 "
        "(- lr wd x, decoupled)",
        {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"},
    ),
    torch.optim.Adadelta: _exact(
        _adadelta,
        ("grad", "exp_avg_sq", "stepsize", "update", "param"),
        "u = sqrt(acc_delta_{t-1}+eps)/sqrt(square_avg+eps): update = -lr * u * g",
        {"square_avg": "exp_avg_sq"},
        prev_state=("acc_delta",),
    ),
}
if hasattr(torch.optim, "Adafactor"):
    _READERS[torch.optim.Adafactor] = _exact(
        _adafactor,
        _GD,
        "u = alpha/(lr denom)/sqrt(max(V, eps1^2)) (V: the factored second moment): "
        "update = -lr * u * g - lr wd x",
    )


def _muon_direction(group: Mapping[str, Any], p: Tensor, prev: Tensor) -> dict[str, Tensor]:
    """PyTorch's Muon: ``x_t = x_{t-1} (1 - lr wd) - lr_adj O``.

    O is the Newton-Schulz orthogonalization of the (Nesterov) momentum and
    ``lr_adj = lr sqrt(max(1, A/B))`` (``"original"``) or ``0.2 lr sqrt(max(A, B))``
    (``"match_rms_adamw"``); so ``O = (x_{t-1} (1 - lr wd) - x_t) / lr_adj``, reported as
    ``orthogonalized``.
    """
    lr, wd = float(group["lr"]), float(group.get("weight_decay", 0.0))
    a, b = p.shape[:2]
    fn = group.get("adjust_lr_fn")
    if fn is None or fn == "original":
        ratio = math.sqrt(max(1.0, a / b))
    elif fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(a, b))
    else:
        ratio = 1.0
    return {"orthogonalized": (prev * (1.0 - lr * wd) - p.detach()) / (lr * ratio)}


#: Why known optimizers have no elementwise stepsize (the generic path says so).
_UNDEFINED: dict[str, str] = {
    "Lion": "Lion's update is -lr * sign(interpolated momentum): a sign, not a stepsize "
    "times a direction",
    "Rprop": "Rprop moves each coordinate by its own step_size times sign(g): recorded as "
    "the state entry step_size, not as u with update = -lr * u * m",
    "Muon": "Muon's update is an orthogonalized matrix (Newton-Schulz of the momentum), not "
    "an elementwise rescaling of a direction: torch's Muon records that matrix as "
    "'orthogonalized'",
}
_GENERIC = _Reader(None, ("grad", "update", "param"), None)


def _reader(opt: torch.optim.Optimizer) -> _Reader:
    r = _READERS.get(type(opt))
    if r is None:
        name = type(opt).__name__
        why = _UNDEFINED.get(name) or (
            f"{name} is read generically: gradscope knows no elementwise stepsize u with "
            "update = -lr * u * direction for it"
        )
        derived = _muon_direction if type(opt) is getattr(torch.optim, "Muon", None) else None
        return _Reader(None, _GENERIC.quantities, None, undefined=why, derived=derived)
    return r


def describe(optimizer: torch.optim.Optimizer) -> OptimizerFacts:
    """What gradscope reads from ``optimizer``.

    ``optimizer`` is a ``torch.optim.Optimizer`` that is not one of gradscope's own. The
    report has its path, core quantities, the stepsize's meaning or why it has none.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise unsupported(optimizer)
    r = _reader(optimizer)
    path = "generic" if r.undefined else "exact"
    name = f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
    return OptimizerFacts(name, path, r.quantities, r.meaning, r.undefined, dict(r.aliases))


def unsupported(optimizer: object) -> UnsupportedOptimizerError:
    """The error for an object gradscope cannot read as an optimizer."""
    return UnsupportedOptimizerError(
        f"gradscope cannot read {type(optimizer).__module__}.{type(optimizer).__name__}: "
        "pass a torch.optim.Optimizer (gradscope's, torch's, or any subclass)"
    )


def track(optimizer: torch.optim.Optimizer, enabled: bool = True, *, reuse: bool = False) -> None:
    """Keep (or stop keeping) the copies of the parameters the following steps need.

    A step pre-hook, installed on the first call, copies every parameter that has a
    gradient (and Adadelta's ``acc_delta``) while tracking is on; the update reported is
    then exactly ``x_t - x_{t-1}``.

    ``reuse=True`` keeps those copies (and the stepsizes :func:`last_step` computes) in
    buffers reused from step to step, so reading a step allocates no parameter-sized
    tensor; the reports' tensors are then overwritten by the next tracked step, and
    repeated calls of :func:`last_step` within a step return the same reports. The
    recorder uses it on the CPU, where every fresh large tensor costs its page faults.
    """
    r = _reader(optimizer)
    snap = _SNAPSHOTS.get(optimizer)
    if snap is None:  # installed on the first call (even a disabling one): hook order is fixed
        snap = _SNAPSHOTS[optimizer] = _Snapshot(optimizer, r.prev_state)
    snap.enabled = bool(enabled)
    if snap.reuse != reuse:
        snap.kept, snap.kept_u = {}, {}
    snap.reuse = bool(reuse)
    if not enabled:
        snap.prev, snap.prev_state, snap.fresh, snap.result = {}, {}, False, None
        snap.kept, snap.kept_u = {}, {}


def untrack(optimizer: torch.optim.Optimizer) -> None:
    """Remove the snapshot hook (the recorder calls it when it closes)."""
    snap = _SNAPSHOTS.pop(optimizer, None)
    if snap is not None:
        snap.handle.remove()


def last_step(optimizer: torch.optim.Optimizer) -> list[TorchParamStep]:
    """One report per parameter that took the last step.

    Parameters torch skipped (with ``grad`` None) are left out.

    Raises:
        NotTrackedError: a snapshot was needed and the last step ran untracked.
        UnsupportedOptimizerError: capturable or differentiable torch Adam.
    """
    snap = _SNAPSHOTS.get(optimizer)
    fresh = snap if snap is not None and snap.fresh else None
    if fresh is not None and fresh.result is not None:
        return fresh.result  # reuse: the update is already in the copies
    out = _read_step(optimizer, snap, fresh)
    if fresh is not None and fresh.reuse:
        fresh.result = out
    return out


def _read_step(
    optimizer: torch.optim.Optimizer, snap: _Snapshot | None, fresh: _Snapshot | None
) -> list[TorchParamStep]:
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        return _torch_adam(optimizer, fresh)
    if type(optimizer) is torch.optim.SGD:
        return _torch_sgd(optimizer, fresh)
    r = _reader(optimizer)
    if snap is None or not snap.fresh:
        raise NotTrackedError(
            f"{type(optimizer).__name__} was not tracking: call "
            "gradscope.optim.introspect.track(optimizer) before the step"
        )
    skip = {"step", *r.aliases}
    out = []
    for gi, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            prev = snap.prev.get(p)
            if prev is None or p.grad is None:
                continue
            st = optimizer.state.get(p, {})
            if r.stepsize is not None:
                u, m, v = r.stepsize(group, p, st, prev, snap.prev_state.get(p, {}))
            else:
                u = None
                m = st.get("exp_avg") if _like(st.get("exp_avg"), p) else None
                v = st.get("exp_avg_sq") if _like(st.get("exp_avg_sq"), p) else None
            reported = {k for k, val in (("exp_avg", m), ("exp_avg_sq", v)) if val is st.get(k)}
            values = {str(k): _as_tensor(val, p) for k, val in st.items() if k not in skip}
            extra = {k: val for k, val in values.items() if val is not None and k not in reported}
            if r.derived is not None:
                extra.update(r.derived(group, p, prev))
            out.append(
                TorchParamStep(
                    param=p,
                    group=gi,
                    lr=_float(group.get("lr", float("nan"))),
                    grad=p.grad,
                    exp_avg=m,
                    exp_avg_sq=v,
                    stepsize=u,
                    update=snap.update(p),  # last: u and the derived values read prev
                    state=extra,
                )
            )
    return out


def _like(v: Any, p: Tensor) -> bool:
    return isinstance(v, Tensor) and v.shape == p.shape


def _as_tensor(v: Any, p: Tensor) -> Tensor | None:
    if isinstance(v, Tensor):
        return v.detach() if v.is_floating_point() else v.detach().to(torch.float64)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return torch.tensor(float(v), dtype=torch.float64, device=p.device)
    return None


def _float(x: Any) -> float:
    return float(x.item()) if isinstance(x, Tensor) else float(x)


# ---------------------------------------------------------------------- Adam, AdamW, SGD
def _torch_adam(opt: torch.optim.Optimizer, snap: _Snapshot | None) -> list[TorchParamStep]:
    """Read torch Adam/AdamW state: u = 1/(sqrt(v/bc2)+eps).

    update = x_t - x_{t-1} from the snapshot, or from the rule when untracked.
    """
    out = []
    for gi, group in enumerate(opt.param_groups):
        if group.get("capturable") or group.get("differentiable"):
            raise UnsupportedOptimizerError(
                "capturable/differentiable torch Adam is not supported by gradscope"
            )
        lr = float(group["lr"])
        b1, b2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        decoupled = isinstance(opt, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
        for p in group["params"]:
            st = opt.state.get(p)
            if p.grad is None or not st or "exp_avg" not in st:
                continue  # torch's step skipped it: its state is the previous step's
            t = float(st["step"])
            bc1, bc2 = 1.0 - b1**t, 1.0 - b2**t
            v = st["max_exp_avg_sq"] if group["amsgrad"] else st["exp_avg_sq"]
            # the same operations as torch's step, in place on two fresh (or kept) tensors
            ub = snap.buffer_u(p, v) if snap is not None and p in snap.prev else None
            # torch's bias_correction2_sqrt is bc2**0.5 (math.sqrt differs by an ulp at times)
            u = sqrt_into(v, ub).div_(bc2**0.5).add_(eps).reciprocal_()
            if snap is not None and p in snap.prev:
                update = snap.update(p)
            elif decoupled and wd:
                adam_part = torch.mul(st["exp_avg"], u).mul_(-lr / bc1)
                # x_t = x_{t-1}(1 - lr wd) + adam_part, x_{t-1} eliminated in closed form:
                # update = (adam_part - lr wd x_t)/(1 - lr wd), in adam_part's own storage
                update = adam_part.sub_(p.detach(), alpha=lr * wd).div_(1.0 - lr * wd)
            else:
                update = torch.mul(st["exp_avg"], u).mul_(-lr / bc1)
            extra = {"max_exp_avg_sq": st["max_exp_avg_sq"]} if "max_exp_avg_sq" in st else {}
            out.append(
                TorchParamStep(
                    param=p,
                    group=gi,
                    lr=lr,
                    grad=p.grad,
                    exp_avg=st["exp_avg"],
                    exp_avg_sq=st["exp_avg_sq"],
                    stepsize=u,
                    update=update,
                    state=extra,
                )
            )
    return out


def _torch_sgd(opt: torch.optim.Optimizer, snap: _Snapshot | None) -> list[TorchParamStep]:
    """Read torch SGD state: u = 1, m = momentum buffer (or the decayed gradient).

    The update comes from the snapshot, or from the rule when untracked.
    """
    out = []
    for gi, group in enumerate(opt.param_groups):
        lr = float(group["lr"])
        mu, wd = group["momentum"], group["weight_decay"]
        sign = -1.0 if group["maximize"] else 1.0
        for p in group["params"]:
            if p.grad is None:
                continue
            st = opt.state.get(p, {})
            buf: Tensor | None = st.get("momentum_buffer")
            x = p.detach()
            if snap is not None and p in snap.prev:
                update = snap.update(p)
            elif buf is not None and not group["nesterov"]:
                update = buf.mul(-lr)  # x_t = x_{t-1} - lr buf
            else:
                # direction d = s g + wd x_{t-1} (+ mu buf with Nesterov); x_t = x_{t-1} - lr d.
                # With x_{t-1} = (x_t + lr (d - wd x_{t-1}))/(1 - lr wd) eliminated:
                # update = -lr (s g (+ mu buf) + wd x_t) / (1 - lr wd), in one temporary.
                update = p.grad.mul(sign)
                if buf is not None:
                    update.add_(buf, alpha=mu)
                if wd:
                    update.add_(x, alpha=wd)
                update.mul_(-lr / (1.0 - lr * wd))
            out.append(
                TorchParamStep(
                    param=p,
                    group=gi,
                    lr=lr,
                    grad=p.grad,
                    exp_avg=buf,
                    exp_avg_sq=None,
                    stepsize=torch.ones((), dtype=p.dtype, device=p.device),
                    update=update,
                )
            )
    return out
