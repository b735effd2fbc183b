"""One API for what an optimizer just did to each parameter.

``track(opt)`` asks the optimizer to keep, on the following steps, the adaptive stepsize
u it used and the update it applied; ``last_step(opt)`` returns them per parameter as
:class:`ParamStep` records (update = -lr * u * m_hat, lr excluded from u). gradscope's
optimizers report from their own step (nothing recomputed, nothing copied to the host);
every other ``torch.optim.Optimizer`` is read by :mod:`gradscope.optim.torch_adapters`
(exact stepsizes for torch's Adam-like and SGD-like rules, a generic path for the rest).
"""

from __future__ import annotations

import torch

from gradscope.errors import UnsupportedOptimizerError
from gradscope.optim import torch_adapters as TA
from gradscope.optim._core import NotTrackedError, ParamStep, TrackedOptimizer

__all__ = [
    "NotTrackedError",
    "ParamStep",
    "UnsupportedOptimizerError",
    "last_step",
    "supports",
    "track",
]


def supports(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`last_step` can read this optimizer (any ``torch.optim.Optimizer``)."""
    return isinstance(optimizer, torch.optim.Optimizer)


def track(optimizer: torch.optim.Optimizer, enabled: bool = True, *, reuse: bool = False) -> None:
    """Keep (or stop keeping) stepsize and update on the following steps.

    gradscope's optimizers keep them from their own step; for torch's and any other
    optimizer see :func:`gradscope.optim.torch_adapters.track`. ``reuse=True`` keeps the
    step's copies (and a torch optimizer's stepsizes) in buffers reused from step to
    step: no parameter-sized allocation per step, and reports valid until the next
    tracked step (:meth:`TrackedOptimizer.track`, :func:`torch_adapters.track`).
    """
    if isinstance(optimizer, TrackedOptimizer):
        optimizer.track(enabled, reuse=reuse)
    elif supports(optimizer):
        TA.track(optimizer, enabled, reuse=reuse)
    else:
        raise TA.unsupported(optimizer)


def last_step(optimizer: torch.optim.Optimizer) -> list[ParamStep]:
    """Stepsize, moments and applied update of every parameter that took the last step.

    Raises :class:`UnsupportedOptimizerError` for objects that are not optimizers, and
    :class:`NotTrackedError` if the last step ran untracked where tracking is needed.
    """
    if isinstance(optimizer, TrackedOptimizer):
        return optimizer.last_step()
    if supports(optimizer):
        return list(TA.last_step(optimizer))
    raise TA.unsupported(optimizer)
