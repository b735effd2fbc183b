"""Argument descriptions shared by the optimizer docstrings (written once, as torch does)."""

from __future__ import annotations

import inspect
import re

COMMON_ARGS = """
    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: learning rate (the common stepsize; excluded from the reported stepsize u).
        betas: coefficients (beta1, beta2) of the EMAs of the first and second moment.
        eps: the epsilon of the rule above (where it goes matters: see the rule).
        weight_decay: L2 coefficient; coupled (added to g before the moments) unless
            ``decoupled_weight_decay`` (x <- x (1 - lr wd), as AdamW).
        decoupled_weight_decay: use decoupled instead of coupled weight decay.
        amsgrad: keep the running maximum of the second moment in the denominator.
        maximize: maximize the objective instead of minimizing it.
        foreach: use the multi-tensor ``torch._foreach_*`` path; None picks it for CUDA
            parameters and the per-tensor loop otherwise (on CPU the loop is faster).
        fused: run each bucket of parameters (same device, dtype and step) as one
            ``torch.compile``-d graph of the same pipeline (inductor: C++/OpenMP on CPU,
            Triton on CUDA). The first step of each new bucket layout compiles (seconds
            per parameter tensor, cached on disk by inductor); CPU parameters need a C++
            compiler. None or False: eager. See docs/optimizers.md, "Backends".
"""


def with_args(cls: type, extra: str = "") -> str:
    """``cls``'s docstring with the shared argument list (and ``extra``, its own ones).

    Only the arguments its ``__init__`` takes are kept: a docstring never documents a keyword
    the class refuses.
    """
    takes = set(inspect.signature(cls.__init__).parameters)
    lines, keep = [], True
    for line in COMMON_ARGS.splitlines():
        m = re.match(r"^ {8}(\w+): ", line)
        if m:
            keep = m.group(1) in takes
        elif not line.startswith(" " * 12):
            keep = True  # the "Args:" header and blank lines
        if keep:
            lines.append(line)
    return (cls.__doc__ or "").rstrip() + "\n" + "\n".join(lines) + "\n" + extra
