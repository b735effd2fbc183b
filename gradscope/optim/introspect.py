"""One API for what an optimizer just did to each parameter.

``track(opt)`` asks the optimizer to keep, on the following steps, the adaptive stepsize
u it used and the update it applied; ``last_step(opt)`` returns them per parameter as
:class:`ParamStep` records (update = -lr * u * m_hat, lr excluded from u). gradscope's
optimizers report from their own step (nothing recomputed, nothing copied to the host);
``torch.optim.Adam``, ``AdamW`` and ``SGD`` are read from their standard state keys, so
users who keep torch's optimizers can be recorded too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradscope.errors import UnsupportedOptimizerError
from gradscope.optim._core import NotTrackedError, ParamStep, TrackedOptimizer

__all__ = ["NotTrackedError", "ParamStep", "last_step", "track", "supports"]

_TORCH_KINDS = (torch.optim.AdamW, torch.optim.Adam, torch.optim.SGD)


def supports(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`last_step` can read this optimizer."""
    return isinstance(optimizer, TrackedOptimizer) or type(optimizer) in _TORCH_KINDS


def track(optimizer: torch.optim.Optimizer, enabled: bool = True) -> None:
    """Keep (or stop keeping) stepsize and update on the following steps.

    For torch's optimizers this is a no-op: their state already determines both.
    """
    if isinstance(optimizer, TrackedOptimizer):
        optimizer.track(enabled)
    elif not supports(optimizer):
        raise _unsupported(optimizer)


def last_step(optimizer: torch.optim.Optimizer) -> list[ParamStep]:
    """Stepsize, moments and applied update of every parameter that took the last step.

    Raises :class:`UnsupportedOptimizerError` for optimizers gradscope cannot read, and
    :class:`NotTrackedError` if a gradscope optimizer's last step ran untracked.
    """
    if isinstance(optimizer, TrackedOptimizer):
        return optimizer.last_step()
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        return _torch_adam(optimizer)
    if type(optimizer) is torch.optim.SGD:
        return _torch_sgd(optimizer)
    raise _unsupported(optimizer)


def _unsupported(optimizer: object) -> UnsupportedOptimizerError:
    return UnsupportedOptimizerError(
        f"gradscope cannot read the state of {type(optimizer).__module__}."
        f"{type(optimizer).__name__}: use a gradscope.optim optimizer, or torch.optim "
        "Adam, AdamW or SGD"
    )


def _torch_adam(opt: torch.optim.Optimizer) -> list[ParamStep]:
    """Read torch Adam/AdamW state: u = 1/(sqrt(v/bc2)+eps), update from the rule."""
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
            # the same operations as torch's step, in place on two fresh tensors
            u = v.sqrt().div_(math.sqrt(bc2)).add_(eps).reciprocal_()
            adam_part = torch.mul(st["exp_avg"], u).mul_(-lr / bc1)
            if decoupled and wd:
                # x_t = x_{t-1}(1 - lr wd) + adam_part  =>  x_{t-1} = (x_t - adam_part)/(1 - lr wd)
                x_prev = (p.detach() - adam_part) / (1.0 - lr * wd)
                update = p.detach() - x_prev
            else:
                update = adam_part
            out.append(
                ParamStep(
                    param=p,
                    group=gi,
                    lr=lr,
                    grad=p.grad,
                    exp_avg=st["exp_avg"],
                    exp_avg_sq=st["exp_avg_sq"],
                    stepsize=u,
                    update=update,
                )
            )
    return out


def _torch_sgd(opt: torch.optim.Optimizer) -> list[ParamStep]:
    """Read torch SGD state: u = 1, m = momentum buffer (or the decayed gradient)."""
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
            if buf is None:
                # x_t = x_{t-1} - lr (s g + wd x_{t-1})  =>  x_{t-1} = (x_t + lr s g)/(1 - lr wd)
                x_prev = (x + lr * sign * p.grad) / (1.0 - lr * wd)
                direction = sign * p.grad + wd * x_prev
            elif group["nesterov"]:
                # g' = s g + wd x_{t-1};  x_t = x_{t-1} - lr (g' + mu buf)
                x_prev = (x + lr * (sign * p.grad + mu * buf)) / (1.0 - lr * wd)
                direction = sign * p.grad + wd * x_prev + mu * buf
            else:
                direction = buf
            out.append(
                ParamStep(
                    param=p,
                    group=gi,
                    lr=lr,
                    grad=p.grad,
                    exp_avg=buf,
                    exp_avg_sq=None,
                    stepsize=torch.ones((), dtype=p.dtype, device=p.device),
                    update=-lr * direction,
                )
            )
    return out
