"""The sharded path's arithmetic without processes: global indices and the moment combine.

The reference for the index arithmetic is torch's own slicing (``Tensor.chunk`` along the
sharded dim, applied mesh dim by mesh dim, as DTensor's ``Shard`` does) of a global arange;
the reference for the combine is NumPy float64 on the concatenation of the pieces.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.distributed.tensor import Partial, Replicate, Shard

from gradscope.errors import UnsupportedLayerError
from gradscope.record import distributed as shard
from gradscope.record import summaries as sm


def reference_local(global_shape, mesh_shape, coord, placements):
    """Global flat indices of the local slice, by torch's chunking of an arange."""
    x = torch.arange(int(np.prod(global_shape)), dtype=torch.int64).reshape(global_shape)
    for k, i, p in zip(mesh_shape, coord, placements):
        if isinstance(p, Shard):
            chunks = x.chunk(k, dim=p.dim)
            if i < len(chunks):
                x = chunks[i]
            else:  # torch.chunk returns fewer chunks than asked: this rank is empty
                shape = list(x.shape)
                shape[p.dim] = 0
                x = x.new_empty(shape)
    return x.reshape(-1).numpy()


CASES = [
    ((7, 5), (2,), [Shard(0)]),
    ((4, 7), (2,), [Shard(1)]),  # Shard on a non-leading dim, uneven: 4 + 3 columns
    ((3, 5, 6), (4,), [Shard(2)]),  # 6 over 4: 2, 2, 2, 0
    ((3, 5, 6), (3,), [Shard(1)]),
    ((1, 3), (2,), [Shard(0)]),  # one row over two ranks: the second is empty
    ((9,), (4,), [Shard(0)]),  # 3, 3, 3, 0
    ((5, 7), (2, 2), [Shard(0), Shard(1)]),  # FSDP x TP
    ((10, 3), (2, 3), [Shard(0), Shard(0)]),  # nested chunks of one dim
    ((6, 4), (2, 2), [Shard(1), Replicate()]),
    ((6, 4), (2, 2), [Replicate(), Shard(0)]),
    ((4, 7), (2,), [Shard(-1)]),
]


@pytest.mark.parametrize(("shape", "mesh", "placements"), CASES)
def test_global_flat_index_matches_torch_chunking(shape, mesh, placements):
    owned = []
    for coord in itertools.product(*(range(k) for k in mesh)):
        box = shard.shard_box(shape, mesh, coord, placements)
        ref = reference_local(shape, mesh, coord, placements)
        got = shard.global_flat_index(box)
        if box.shape and 0 in box.shape:
            got = got[:0]
        np.testing.assert_array_equal(got, ref)
        assert int(np.prod(box.shape)) == ref.size
        if box.owner:
            owned.append(got)
    # Replicate counted once: the owners' slices partition the tensor exactly
    allidx = np.concatenate(owned)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(int(np.prod(shape))))


@pytest.mark.parametrize(("shape", "mesh", "placements"), CASES)
def test_owned_samples_partition_the_subsample(shape, mesh, placements):
    n = int(np.prod(shape))
    rng = np.random.default_rng(3)
    index = np.sort(rng.choice(n, size=min(n, 11), replace=False))
    values = rng.standard_normal(n)
    got = np.full(index.size, np.nan)
    hits = np.zeros(index.size, dtype=int)
    for coord in itertools.product(*(range(k) for k in mesh)):
        box = shard.shard_box(shape, mesh, coord, placements)
        local = values[reference_local(shape, mesh, coord, placements)]
        pos, loc = shard.owned_samples(box, index)
        got[pos] = local[loc]
        hits[pos] += 1
    np.testing.assert_array_equal(hits, 1)  # each sampled coordinate has exactly one owner
    np.testing.assert_array_equal(got, values[index])


def test_partial_placement_is_refused():
    with pytest.raises(UnsupportedLayerError, match="Partial"):
        shard.shard_box((4, 4), (2,), (0,), [Partial()])


def rows_of(pieces):
    """Each piece's :data:`ROW` row the way a rank makes it (raw sums, then local_rows,
    the finite-only redo for non-finite pieces)."""
    rows = []
    for p in pieces:
        t = torch.from_numpy(p)
        if p.size == 0:
            rows.append(shard.local_rows(np.zeros((1, 5)), np.array([0]))[0])
            continue
        row = shard.local_rows(sm.raw_moments(t, p.size).numpy()[None], np.array([p.size]))[0]
        if not np.isfinite(row).all():
            row = shard.finite_row(t, p.size)
        rows.append(row)
    return np.stack(rows)


def np_stats(x):
    f = x[np.isfinite(x)].astype(np.float64)
    return np.array(
        [f.mean(), f.std(), np.sqrt(np.sum(f * f)), f.min(), f.max(), 1 - f.size / x.size]
    )


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
@pytest.mark.parametrize("split", [(5, 0, 11, 1), (1, 1), (100, 3, 40)])
def test_combine_matches_numpy_on_the_concatenation(offset, split):
    rng = np.random.default_rng(len(split))
    x = (offset + rng.standard_normal(sum(split))).astype(np.float32)
    pieces = np.split(x, np.cumsum(split)[:-1])
    got = shard.combine_moments(rows_of(pieces))
    want = np_stats(x)
    # float64 holds each piece's mean to eps64 |mean|: the std inherits eps64 |mean| / std
    rtol = 1e-13 + 1e-15 * abs(want[0]) / want[1]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def test_combine_with_nonfinite_and_empty_pieces():
    x = np.array([1.0, np.nan, 3.0, np.inf, -2.0, 0.5, -np.inf, 4.0], dtype=np.float32)
    pieces = [x[:3], x[3:4], x[4:4], x[4:]]
    got = shard.combine_moments(rows_of(pieces))
    np.testing.assert_allclose(got, np_stats(x), rtol=1e-14)
    assert got[5] == pytest.approx(3 / 8)


def test_combine_of_nothing_finite_is_nan():
    rows = rows_of([np.array([np.nan, np.inf], dtype=np.float32), np.zeros(0, np.float32)])
    got = shard.combine_moments(rows)
    assert np.isnan(got[:5]).all() and got[5] == 1.0


def test_negative_zero_padding_is_exact():
    """The slots of the other ranks hold -0.0: a SUM returns each value bit for bit."""
    vals = np.array([0.0, -0.0, 1e-300, -5.0, np.inf, np.nan, 3.25])
    pad = np.full_like(vals, -0.0)
    total = vals + pad + pad
    assert np.array_equal(np.signbit(total), np.signbit(vals))
    np.testing.assert_array_equal(total, vals)
