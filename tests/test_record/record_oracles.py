"""Brute-force NumPy oracles shared by the recorder tests."""

from __future__ import annotations

import numpy as np

from gradscope.runfile import schema as S


def np_bins(x: np.ndarray, spec: S.HistSpec) -> np.ndarray:
    """Oracle: bin of every value from the stored edges (magnitude [a, b), sign apart)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64).ravel()
    mag = spec.magnitude_edges()
    nb = spec.n_magnitude
    a = np.abs(x)
    m = np.searchsorted(mag, a, side="right") - 1  # -1 below 2**e_lo, nb at/above 2**e_hi
    m = np.clip(m, -1, nb)
    neg = np.signbit(x)
    if spec.signed:
        idx = np.where(neg, nb - m, m + nb + 2)
    else:
        idx = np.where(neg, 0, m + 1)
    return np.where(np.isfinite(x), idx, spec.n_bins - 1)


def np_moments(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return np.array([x.mean(), x.std(), np.linalg.norm(x), x.min(), x.max()])


def np_full(value: np.ndarray | None, shape) -> np.ndarray | None:
    """Broadcast a (possibly 0-d) recorded value to the layer's shape."""
    if value is None:
        return None
    return np.broadcast_to(value, shape).astype(np.float64)


def assert_in_bin(est: float, x: np.ndarray, level: float, edges: np.ndarray) -> None:
    """A histogram quantile lies in the bin of the exact order statistic it interpolates."""
    lo = np.quantile(x, level, method="lower")
    hi = np.quantile(x, level, method="higher")
    b_lo = np.searchsorted(edges, lo, side="right") - 1
    b_hi = np.searchsorted(edges, hi, side="right") - 1
    # an edge value may sit on either side of the boundary (closedness flips for negatives)
    assert edges[max(b_lo - 1, 0)] <= est <= edges[min(b_hi + 2, len(edges) - 1)], (est, lo, hi)
