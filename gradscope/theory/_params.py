"""Sane shape parameters for the generic distribution battery (like scipy's ``_distr_params``).

Each entry is ``(name of the module-level instance in distributions, shape arguments)``.
``SLOW`` laws evaluate a 1-D integral per point; the battery uses fewer points for them.
"""

from __future__ import annotations

DISTCONT: list[tuple[str, tuple[float, ...]]] = [
    ("cosine_null", (7.5,)),
    ("cosine_null", (1000.0,)),
    ("adam_update", (2,)),
    ("adam_update", (3,)),
    ("adam_update", (4,)),
    ("adam_update", (10,)),
    ("adam_update", (100000,)),
    ("adam_update_scaled", (2,)),
    ("adam_update_scaled", (5,)),
    ("adam_update_scaled", (1000,)),
    ("ema_update", (10, 0.9)),
    ("ema_update", (30, 0.5)),
    ("ema_update_approx", (10, 0.9)),
    ("adam_update_nc", (5, -0.5)),
    ("adam_update_nc", (20, 0.3)),
    ("adam_update_imhof", (5, 0.9, 0.999)),
    ("ema_update_nc", (5, 0.9, -0.5)),
]

SLOW: frozenset[str] = frozenset({"adam_update_imhof", "ema_update_nc"})
