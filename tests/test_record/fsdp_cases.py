"""Models, data and hand-built DTensor parameters shared by the FSDP2 tests and their ranks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: examples per global batch (each of the two ranks trains on half)
GLOBAL_BATCH = 16


def make_mlp() -> nn.Sequential:
    """An MLP whose widths do not divide by 2 (uneven Shard(0) slices), seeded init."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 5), nn.ReLU(), nn.Linear(5, 3))


def mlp_batch(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of step ``t``."""
    g = torch.Generator().manual_seed(1000 + t)
    x = torch.randn(GLOBAL_BATCH, 6, generator=g)
    return x, torch.randint(0, 3, (GLOBAL_BATCH,), generator=g)


def _placement(kind: str) -> Any:
    from torch.distributed.tensor import Replicate, Shard

    return {"shard0": Shard(0), "shard1": Shard(1), "replicate": Replicate()}[kind]


#: name -> (global shape, placement) of the hand-built parameters: Shard(1) with uneven
#: slices (7 columns: 4 + 3), Replicate (counted once), Shard(0) of one row (rank 1 empty)
DTENSOR_SPECS: dict[str, tuple[tuple[int, ...], str]] = {
    "w": ((4, 7), "shard1"),
    "r": ((3, 5), "replicate"),
    "e": ((1, 3), "shard0"),
}


def dtensor_values() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Global (parameter, gradient) of each hand-built parameter: ``w``'s gradient holds
    zeros, a NaN and an inf; ``r`` sits at 1000 with a spread of 1e-3 (mean**2/var ~ 1e12)."""
    g = torch.Generator().manual_seed(7)
    out = {}
    for name, (shape, _) in DTENSOR_SPECS.items():
        p = torch.randn(shape, generator=g)
        grad = torch.randn(shape, generator=g)
        if name == "w":
            grad[0, 1] = 0.0
            grad[2, 5] = 0.0
            grad[1, 6] = float("nan")
            grad[3, 0] = float("inf")
        if name == "r":
            p = 1000.0 + 1e-3 * p
        out[name] = (p, grad)
    return out


class Params(nn.Module):
    """A module that is just named parameters."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name, t in tensors.items():
            self.register_parameter(name, nn.Parameter(t))


def dtensor_module(mesh: Any) -> tuple[Params, list[Any]]:
    """The hand-built parameters as DTensors on ``mesh`` and their DTensor gradients."""
    from torch.distributed.tensor import distribute_tensor

    vals = dtensor_values()
    params, grads = {}, []
    for name, (_shape, kind) in DTENSOR_SPECS.items():
        p, g = vals[name]
        params[name] = distribute_tensor(p, mesh, [_placement(kind)])
        grads.append(distribute_tensor(g, mesh, [_placement(kind)]))
    return Params(params), grads


def plain_module() -> tuple[Params, list[torch.Tensor]]:
    """The same parameters and gradients as full tensors (the unsharded reference)."""
    vals = dtensor_values()
    return Params({k: v[0] for k, v in vals.items()}), [v[1] for v in vals.values()]


def sgd_for(module: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum: grad, update, param and a momentum buffer are recorded."""
    return torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms") as a user writes
    it: unknown to gradscope, so it is read on the generic path. ``torch.optim.Rprop``
    would be the obvious torch choice, but its step fails on DTensors (an in-place
    boolean-mask assignment that DTensor cannot shard)."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99)):
        super().__init__(params, {"lr": lr, "betas": betas})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["lion_m"] = torch.zeros_like(p)
                m = st["lion_m"]
                p.add_(m.mul(b1).add_(p.grad, alpha=1 - b1).sign_(), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


def two_optimizers(model: nn.Module) -> list[torch.optim.Optimizer]:
    """torch's Adam on the weights (an exact adapter), Lion on the biases (the generic path:
    the update from a snapshot of the parameters, its state entry as its own quantity)."""
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return [torch.optim.Adam(weights, lr=1e-2), Lion(biases, lr=1e-2)]


#: gradscope optimizers with layer reductions (Aida's projections, AdamL's layer mean,
#: SET-Adam's sums and minimum, LAdam's layer second moment), stepped on FSDP2's unevenly
#: sharded parameters
GRADSCOPE_ON_FSDP = ("Aida", "AdamL", "SETAdam", "LAdam")


def gradscope_optimizer(name: str, params: Any) -> torch.optim.Optimizer:
    """One of :data:`GRADSCOPE_ON_FSDP` with the settings the FSDP2 test uses."""
    import gradscope.optim as O

    return getattr(O, name)(params, lr=1e-2)
