"""One table of every gradscope optimizer: the generic tests run over it (torch's optim_db).

Each entry gives the class, the name of its float64 NumPy oracle rule, valid
configurations (hyperparameters chosen to exercise every branch), invalid ones with the
exception and message they must raise, and flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradscope.optim as O


@dataclass(frozen=True)
class OptimInfo:
    cls: type
    ref: str
    configs: list[dict]
    invalid: list[tuple[dict, type, str]] = field(default_factory=list)
    layerwise: bool = False
    examplewise: bool = False
    #: relative tolerance against the oracle; M-SVAG's factor at t = 1 is 0/0 in exact
    #: arithmetic (condition number 1/(1 - rho) = 1e4), so rounding differences in m grow.
    rtol: float = 1e-12

    @property
    def name(self) -> str:
        return self.cls.__name__


_BETAS = [
    (dict(betas=(1.0, 0.999)), ValueError, r"beta1"),
    (dict(betas=(0.9, -0.1)), ValueError, r"beta2"),
    (dict(betas=(0.9, 1.0)), ValueError, r"beta2"),
]
_COMMON_BAD = [
    (dict(lr=-1e-3), ValueError, r"learning rate: -0\.001"),
    (dict(eps=-1.0), ValueError, r"epsilon"),
    (dict(weight_decay=-0.1), ValueError, r"weight_decay"),
    (dict(lr=float("nan")), ValueError, r"learning rate"),
]
_ADAPTIVE_BAD = _COMMON_BAD + _BETAS
_K_BAD = [
    (dict(k=0), ValueError, r"k \(number of projections\): 0"),
    (dict(k=1.5), ValueError, r"k \(number of projections\)"),
    (dict(xi=-1.0), ValueError, r"xi"),
]

BASE = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3)

OPTIMS: list[OptimInfo] = [
    OptimInfo(
        O.SGD,
        "sgd",
        [
            dict(lr=0.1),
            dict(lr=0.1, momentum=0.9, weight_decay=0.1),
            dict(lr=0.1, momentum=0.9, nesterov=True),
            dict(lr=0.1, momentum=0.5, dampening=0.3, maximize=True),
        ],
        _COMMON_BAD[:1]
        + [
            (dict(lr=0.1, momentum=1.0), ValueError, r"momentum"),
            (dict(lr=0.1, nesterov=True), ValueError, r"Nesterov"),
        ],
    ),
    OptimInfo(
        O.Adam,
        "adam",
        [
            BASE,
            dict(BASE, weight_decay=0.1),
            dict(BASE, amsgrad=True),
            dict(BASE, maximize=True, weight_decay=0.1, decoupled_weight_decay=True),
        ],
        _ADAPTIVE_BAD,
    ),
    OptimInfo(O.AdamW, "adamw", [dict(BASE, weight_decay=0.1), dict(BASE, amsgrad=True)]),
    OptimInfo(
        O.AdaBelief,
        "adabelief",
        [
            BASE,
            dict(BASE, weight_decay=0.1),
            dict(BASE, amsgrad=True),
            dict(BASE, rectify=True, betas=(0.9, 0.999)),
            dict(BASE, weight_decay=0.1, decoupled_weight_decay=True),
        ],
        _ADAPTIVE_BAD,
    ),
    OptimInfo(
        O.AdamPlus,
        "adamplus",
        [BASE, dict(BASE, weight_decay=0.1), dict(BASE, amsgrad=True)],
        _ADAPTIVE_BAD,
    ),
    OptimInfo(O.AdamL, "adaml", [BASE, dict(BASE, weight_decay=0.1)], layerwise=True),
    OptimInfo(O.AdaBeliefL, "adabeliefl", [BASE], layerwise=True),
    OptimInfo(O.LAdam, "ladam", [BASE, dict(BASE, weight_decay=0.1)], layerwise=True),
    OptimInfo(O.LAdaBelief, "ladabelief", [BASE], layerwise=True),
    OptimInfo(
        O.Aida,
        "aida",
        [dict(BASE, k=1), dict(BASE, k=2, weight_decay=0.1), dict(BASE, k=3, xi=1e-3)],
        _ADAPTIVE_BAD + _K_BAD,
    ),
    OptimInfo(O.AidaGrad, "aidagrad", [BASE, dict(BASE, xi=1e-2)], _COMMON_BAD),
    OptimInfo(
        O.LAida,
        "laida",
        [dict(BASE, k=1), dict(BASE, k=2)],
        _K_BAD,
        layerwise=True,
    ),
    OptimInfo(O.Eve, "eve", [BASE, dict(BASE, weight_decay=0.1)], _ADAPTIVE_BAD, examplewise=True),
    OptimInfo(
        O.SETAdam,
        "setadam",
        [BASE, dict(BASE, tau=0.0), dict(BASE, tau=0.9, weight_decay=0.1)],
        _ADAPTIVE_BAD
        + [
            (dict(tau=1.5), ValueError, r"tau: 1\.5"),
            (dict(tau=-0.1), ValueError, r"tau"),
            (dict(tau=1.0), ValueError, r"tau"),
        ],
    ),
    OptimInfo(
        O.RAdam,
        "radam",
        [
            dict(lr=0.05, betas=(0.8, 0.999), eps=1e-3),
            dict(lr=0.05, betas=(0.8, 0.999), eps=1e-3, weight_decay=0.1),
            dict(lr=0.05, betas=(0.8, 0.999), weight_decay=0.1, decoupled_weight_decay=True),
        ],
        _ADAPTIVE_BAD,
    ),
    OptimInfo(O.Yogi, "yogi", [dict(lr=0.05, betas=(0.8, 0.95)), dict(lr=0.05, eps=1e-2)]),
    OptimInfo(
        O.MSVAG, "msvag", [dict(lr=0.1), dict(lr=0.1, beta=0.5, weight_decay=0.1)], rtol=1e-8
    ),
    OptimInfo(O.Fromage, "fromage", [dict(lr=0.1), dict(lr=0.1, maximize=True)]),
]

CASES = [(info, cfg) for info in OPTIMS for cfg in info.configs]
CASE_IDS = [f"{info.name}-{i}" for info in OPTIMS for i, _ in enumerate(info.configs)]
