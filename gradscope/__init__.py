"""gradscope: see inside an optimizer while a network trains.

Subpackages are imported lazily (module ``__getattr__``, as scipy does), so that
``gradscope info run.h5`` never pays for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what static tools see; at run time every name below loads on first use
    from gradscope import (
        analysis,
        errors,
        examplewise,
        names,
        optim,
        plot,
        record,
        report,
        runfile,
        theory,
    )
    from gradscope.record import Recorder

__version__ = "0.1.0"

_SUBMODULES = {
    "optim",
    "examplewise",
    "record",
    "runfile",
    "theory",
    "analysis",
    "plot",
    "report",
    "errors",
    "names",
}
_LAZY_ATTRS = {"Recorder": "gradscope.record"}

__all__ = [  # a literal list, so static tools see it; equal to the two sets above
    "Recorder",
    "__version__",
    "analysis",
    "errors",
    "examplewise",
    "names",
    "optim",
    "plot",
    "record",
    "report",
    "runfile",
    "theory",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"gradscope.{name}")
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    raise AttributeError(f"module 'gradscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
