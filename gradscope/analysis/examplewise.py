"""Examplewise statistics (Eve paper, Cockpit): gradient variance, GSNR and batch-size tests.

The recorder stores, per layer and for the whole network, the statistics of
``gradscope.examplewise.layer_stats`` / ``network_stats`` on the ``examplewise_every``
schedule; :func:`examplewise_profile` turns one block of those rows into an
:class:`~gradscope.analysis.results.ExamplewiseProfile` (blocks join with ``concat_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from gradscope.analysis.results import ExamplewiseProfile
from gradscope.names import EXAMPLEWISE_STATS

__all__ = ["EXAMPLEWISE_FIELDS", "examplewise_profile"]

#: The recorded per-example statistics, in the run file's order (the one vocabulary:
#: :data:`gradscope.names.EXAMPLEWISE_STATS`).
EXAMPLEWISE_FIELDS: tuple[str, ...] = EXAMPLEWISE_STATS


def _layer_array(name: str, x: npt.ArrayLike | None, shape: tuple[int, int]) -> np.ndarray:
    if x is None:
        return np.full(shape, np.nan)
    a = np.asarray(x, dtype=float)
    if a.ndim == 1 and shape[0] == 1:
        a = a[None, :]
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected (steps, layers) = {shape}")
    return a


def _row_array(name: str, x: npt.ArrayLike | None, n: int) -> np.ndarray:
    if x is None:
        return np.full(n, np.nan)
    a = np.asarray(x, dtype=float).reshape(-1)
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}; expected ({n},)")
    return a


def _exceed(x: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a defined test value (not NaN; +inf counts) and rows above theta."""
    tested = ~np.isnan(x)
    return tested.sum(axis=0), (tested & (x > theta)).sum(axis=0)


def examplewise_profile(
    steps: npt.ArrayLike,
    batch_size: npt.ArrayLike,
    layers: Sequence[str],
    *,
    variance: npt.ArrayLike,
    grad_norm_sq: npt.ArrayLike,
    gsnr: npt.ArrayLike,
    norm_test: npt.ArrayLike,
    inner_product_test: npt.ArrayLike | None = None,
    orthogonality_test: npt.ArrayLike | None = None,
    network: Mapping[str, npt.ArrayLike] | None = None,
    theta: float = 1.0,
) -> ExamplewiseProfile:
    """Per-layer and whole-network per-example statistics over time, with headline counts.

    Args:
        steps: optimizer step of each row, ``(T,)``.
        batch_size: B of each row, ``(T,)``.
        layers: layer names (``L``).
        variance: recorded per-layer statistic, ``(T, L)``.
        grad_norm_sq: recorded per-layer statistic, ``(T, L)``.
        gsnr: recorded per-layer statistic, ``(T, L)``.
        norm_test: recorded per-layer statistic, ``(T, L)``.
        inner_product_test: ``(T, L)``; None (not recorded): NaN.
        orthogonality_test: ``(T, L)``; None (not recorded): NaN.
        network: the same statistics of the whole network, ``{name: (T,)}`` with names from
            :data:`EXAMPLEWISE_FIELDS`; a missing name (or None) gives NaN.
        theta: constant of the norm test. ``norm_test`` is the smallest theta for which
            ``variance / B <= theta^2 ||gbar||^2`` holds (Byrd et al., 2012, eq. 3.9), so
            ``norm_test > theta`` means the batch is too small for that theta.

    Returns:
        :class:`~gradscope.analysis.results.ExamplewiseProfile`. ``n_tested`` counts rows
        whose norm test is defined (not NaN; +inf from a zero gradient counts as too
        small), ``n_too_small`` those with ``norm_test > theta``.

    Raises:
        ValueError: arrays of mismatched shapes, an unknown network statistic, or
            ``theta <= 0``.
    """
    if not theta > 0:
        raise ValueError(f"theta must be positive, got {theta}")
    st = np.asarray(steps, dtype=np.int64).reshape(-1)
    shape = (len(st), len(layers))
    per_layer = {
        "variance": _layer_array("variance", variance, shape),
        "grad_norm_sq": _layer_array("grad_norm_sq", grad_norm_sq, shape),
        "gsnr": _layer_array("gsnr", gsnr, shape),
        "norm_test": _layer_array("norm_test", norm_test, shape),
        "inner_product_test": _layer_array("inner_product_test", inner_product_test, shape),
        "orthogonality_test": _layer_array("orthogonality_test", orthogonality_test, shape),
    }
    net = dict(network or {})
    unknown = set(net) - set(EXAMPLEWISE_FIELDS)
    if unknown:
        raise ValueError(f"unknown network statistics {sorted(unknown)}")
    whole = {f"network_{k}": _row_array(f"network[{k!r}]", net.get(k), len(st)) for k in net}
    for k in EXAMPLEWISE_FIELDS:
        whole.setdefault(f"network_{k}", np.full(len(st), np.nan))
    n_tested, n_small = _exceed(per_layer["norm_test"], theta)
    net_tested, net_small = _exceed(whole["network_norm_test"], theta)
    return ExamplewiseProfile(
        layers=tuple(layers),
        steps=st,
        batch_size=_row_array("batch_size", batch_size, len(st)).astype(np.int64),
        **per_layer,
        **whole,
        n_tested=n_tested.astype(np.int64),
        n_too_small=n_small.astype(np.int64),
        network_n_tested=np.int64(net_tested),
        network_n_too_small=np.int64(net_small),
        theta=float(theta),
    )
