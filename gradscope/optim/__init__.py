"""gradscope's optimizers: one Adam-family core, every optimizer of the papers.

All are ``torch.optim.Optimizer`` subclasses with torch's surface (``lr``, ``betas``,
``eps``, ``weight_decay``, param groups, ``state_dict``, closures) and report what each
step did through :mod:`gradscope.optim.introspect`.
"""

from __future__ import annotations

from gradscope.optim._core import AdaptiveOptimizer, ParamStep, TrackedOptimizer
from gradscope.optim.adabelief import AdaBelief, AdamPlus
from gradscope.optim.adam import Adam, AdamW
from gradscope.optim.aida import Aida, AidaGrad
from gradscope.optim.baselines import MSVAG, SGD, Fromage, RAdam, Yogi
from gradscope.optim.eve import Eve
from gradscope.optim.introspect import last_step, track
from gradscope.optim.layerwise import AdaBeliefL, AdamL, LAdaBelief, LAdam, LAida
from gradscope.optim.set_adam import SETAdam

#: name -> class, for the CLI, the demo and the tests.
OPTIMIZERS: dict[str, type[TrackedOptimizer]] = {
    cls.__name__.lower(): cls
    for cls in (
        SGD,
        Adam,
        AdamW,
        AdaBelief,
        AdamPlus,
        AdamL,
        AdaBeliefL,
        LAdam,
        LAdaBelief,
        Aida,
        AidaGrad,
        LAida,
        Eve,
        SETAdam,
        RAdam,
        Yogi,
        MSVAG,
        Fromage,
    )
}

__all__ = [
    "OPTIMIZERS",
    "MSVAG",
    "SGD",
    "AdaBelief",
    "AdaBeliefL",
    "Adam",
    "AdamL",
    "AdamPlus",
    "AdamW",
    "AdaptiveOptimizer",
    "Aida",
    "AidaGrad",
    "Eve",
    "Fromage",
    "LAdaBelief",
    "LAdam",
    "LAida",
    "ParamStep",
    "RAdam",
    "SETAdam",
    "TrackedOptimizer",
    "Yogi",
    "last_step",
    "track",
]
