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


def test_pairs_add_the_step_before_each_selected_step():
    assert steps(s.pairs(s.every(10)), 35) == [9, 10, 19, 20, 29, 30]
    assert steps(s.pairs(s.first(1)), 5) == [1]  # steps count from 1: no step 0


def test_default_histograms_dense_to_ten_then_ten_per_decade_and_every_hundredth():
    decade = [13, 16, 20, 25, 32, 40, 50, 63, 79, 100, 126, 158, 200, 251, 316, 398, 501, 631,
              794, 1000]  # round(10 ** (i / 10)) for i = 11..30  # fmt: skip
    want = sorted({*range(1, 11), *decade, *range(100, 1001, 100)})
    assert steps(s.default_hist()) == want
    assert len(want) == 37  # the count docs/run-format.md's sizing table uses


def test_default_samples_are_the_first_steps_and_log_spaced_pairs():
    assert steps(s.default_samples()) == [1, 2, 3, 9, 10, 31, 32, 99, 100, 315, 316, 999, 1000]
    late = [t for t in range(1001, 20001) if s.default_samples()(t)]
    assert late == [3161, 3162, 4999, 5000, 9999, 10000, 14999, 15000, 19999, 20000]
