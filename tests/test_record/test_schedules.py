"""Schedules are plain step -> bool functions."""

from __future__ import annotations

import pytest

from gradscope.record import schedules as s


def steps(schedule, n=1000):
    return [t for t in range(0, n + 1) if schedule(t)]


def test_every():
    assert steps(s.every(1), 5) == [1, 2, 3, 4, 5]
    assert steps(s.every(10), 35) == [10, 20, 30]
    assert steps(s.every(10, 1), 35) == [1, 11, 21, 31]
    with pytest.raises(ValueError):
        s.every(0)


def test_first_never_and_combinators():
    assert steps(s.first(3)) == [1, 2, 3]
    assert steps(s.never) == []
    assert steps(s.any_of(s.first(3), s.every(400))) == [1, 2, 3, 400, 800]
    assert steps(s.all_of(s.every(2), s.every(3)), 20) == [6, 12, 18]


def test_log_spaced_dense_first_then_sparse():
    got = steps(s.log_spaced(10), 10000)
    want = sorted(set(range(1, 11)) | {round(10 ** (i / 10)) for i in range(0, 41)})
    assert got == want
    assert got[:13] == [*range(1, 11), 13, 16, 20]
    assert steps(s.log_spaced(2, start=5, end=400)) == [5, 6, 7, 8, 9, 10, 16, 50, 158]


def test_as_schedule():
    assert s.as_schedule(None) is s.never
    assert steps(s.as_schedule(5), 20) == [5, 10, 15, 20]
    f = s.every(3)
    assert s.as_schedule(f) is f
    with pytest.raises(TypeError):
        s.as_schedule(True)
    with pytest.raises(TypeError):
        s.as_schedule("often")
