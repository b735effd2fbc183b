"""Recording schedules: plain ``step -> bool`` functions (as in Cockpit's ``schedules.py``).

Steps count optimizer steps from 1 (the step a post-hook sees right after the first
``optimizer.step()``). Combine schedules with :func:`any_of` / :func:`all_of`.

Examples:
    >>> s = any_of(first(5), every(100))
    >>> [t for t in range(1, 300) if s(t)]
    [1, 2, 3, 4, 5, 100, 200]
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], bool]


def every(k: int, offset: int = 0) -> Schedule:
    """Steps ``t`` with ``t % k == offset % k`` (``every(1)`` is every step).

    Args:
        k: period, >= 1.
        offset: phase; ``every(10, 1)`` records steps 1, 11, 21, ...
    """
    if k < 1:
        raise ValueError(f"every(k) needs k >= 1, got {k}")
    r = offset % k

    def schedule(step: int) -> bool:
        return step >= 1 and step % k == r

    schedule.__qualname__ = f"every({k}, offset={offset})"
    return schedule


def first(n: int) -> Schedule:
    """The first ``n`` steps."""

    def schedule(step: int) -> bool:
        return 1 <= step <= n

    schedule.__qualname__ = f"first({n})"
    return schedule


def log_spaced(per_decade: int = 10, start: int = 1, end: int | None = None) -> Schedule:
    """Dense early, sparse late: about ``per_decade`` recorded steps per factor of ten.

    Records every step from ``start`` to ``start * per_decade`` (where log spacing would be
    denser than one step), then the steps ``round(start * 10**(i / per_decade))``. With the
    defaults: 1, 2, ..., 10, 13, 16, 20, 25, 32, 40, 50, 63, 79, 100, 126, ...

    Args:
        per_decade: recorded steps per factor of ten.
        start: first recorded step (>= 1).
        end: no steps after this one (``None``: unbounded).
    """
    if per_decade < 1 or start < 1:
        raise ValueError(
            f"log_spaced needs per_decade >= 1 and start >= 1, got {per_decade}, {start}"
        )

    def schedule(step: int) -> bool:
        if step < start or (end is not None and step > end):
            return False
        if step <= start * per_decade:
            return True
        i = round(per_decade * math.log10(step / start))
        return any(round(start * 10 ** (j / per_decade)) == step for j in (i - 1, i, i + 1))

    schedule.__qualname__ = f"log_spaced({per_decade}, start={start}, end={end})"
    return schedule


def pairs(s: Schedule) -> Schedule:
    """The steps of ``s`` and the step before each: ``(t - 1, t)`` for every selected ``t``.

    Analyses that compare consecutive values coordinate by coordinate (the cosine of
    successive updates, the t = 1 -> 2 checks) need both steps of a pair in the same table.
    """

    def schedule(step: int) -> bool:
        return step >= 1 and (s(step) or s(step + 1))

    schedule.__qualname__ = f"pairs({_name(s)})"
    return schedule


def default_hist() -> Schedule:
    """Histograms' default: every step up to 10, ten per decade after, and every 100th.

    Dense where the exact update laws are sharpest (small t: bias correction, the first
    moments still forming), then sparse enough that histograms cost ~2 KB per step averaged
    over a 1000-step run of a 62-layer network (docs/run-format.md has the sizing table).
    """
    s = any_of(log_spaced(10), every(100))
    s.__qualname__ = "default_hist()"
    return s


def default_samples() -> Schedule:
    """Subsamples' default: steps 1-3, then pairs around 10**(i/2) and every 5000th step.

    The pairs around 10**(i/2) are 9-10, 31-32, 99-100, ...

    A subsample row holds ``sample`` coordinates of every layer (a few MB on a large
    network), so the default keeps ~13 rows per 1000 steps where the update-law fits are
    most informative, each with its predecessor for coordinate-wise comparisons.
    """
    s = any_of(first(3), pairs(any_of(log_spaced(2), every(5000))))
    s.__qualname__ = "default_samples()"
    return s


def never(step: int) -> bool:
    """No step."""
    return False


def any_of(*schedules: Schedule) -> Schedule:
    """Steps selected by at least one schedule."""

    def schedule(step: int) -> bool:
        return any(s(step) for s in schedules)

    schedule.__qualname__ = "any_of(" + ", ".join(_name(s) for s in schedules) + ")"
    return schedule


def all_of(*schedules: Schedule) -> Schedule:
    """Steps selected by every schedule."""

    def schedule(step: int) -> bool:
        return all(s(step) for s in schedules)

    schedule.__qualname__ = "all_of(" + ", ".join(_name(s) for s in schedules) + ")"
    return schedule


def as_schedule(spec: int | Schedule | None) -> Schedule:
    """``int`` k -> :func:`every` (k), callable -> itself, ``None`` -> :func:`never`."""
    if spec is None:
        return never
    if isinstance(spec, bool):
        raise TypeError("a schedule is an int period or a step -> bool function, not a bool")
    if isinstance(spec, int):
        return every(spec)
    if callable(spec):
        return spec
    raise TypeError(f"a schedule is an int period or a step -> bool function, got {spec!r}")


def _name(s: Schedule) -> str:
    return getattr(s, "__qualname__", repr(s))
