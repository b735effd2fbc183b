"""Small run-file layouts and random summary rows for the writer, reader and merge tests."""

from __future__ import annotations

import numpy as np

from gradscope.runfile import schema as S


def make_layout(full=("grad",)) -> S.Layout:
    layers = (
        S.LayerInfo("fc1.weight", (3, 4), 0, 1, 0),
        S.LayerInfo("fc1.bias", (3,), 0, 0, 1),
        S.LayerInfo("out.weight", (2, 3), 1, 2, 2),
    )
    index = (np.array([1, 5, 7]), np.array([0, 2]), np.arange(6))
    return S.Layout(layers=layers, n_groups=2, sample_index=index, full_quantities=full)


def make_row(lay: S.Layout, t: int, rng: np.random.Generator, with_hist: bool) -> S.SummaryRow:
    n_layers = len(lay.layers)
    return S.SummaryRow(
        step=t,
        wall_time=1000.0 + t,
        loss=1.0 / t,
        lr=np.array([1e-3, 2e-3]) * t,
        stats={q: rng.standard_normal((n_layers, len(S.STATS))) for q in lay.quantities},
        cosine={q: rng.uniform(-1, 1, n_layers) for q in S.COSINE_QUANTITIES},
        hist={q: rng.integers(0, 9, (n_layers, lay.hist_specs[q].n_bins)) for q in lay.quantities}
        if with_hist
        else None,
    )
