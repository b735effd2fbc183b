"""StepReducer without hooks: its eager and compiled paths against NumPy float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradscope.optim import Adam
from gradscope.record import Recorder
from gradscope.record import reducer as red
from gradscope.runfile import RunFile
from gradscope.runfile import schema as S

from .record_oracles import np_moments

SIZES = (70_000, 200_003, 5, 300)  # two large layers (compiled path), two small ones


def layout(qs=("grad", "param", "stepsize")):
    return red.ReducerLayout(
        n=SIZES,
        shapes=tuple((k,) for k in SIZES),
        quantities=qs,
        cosine_quantities=tuple(q for q in qs if q in S.COSINE_QUANTITIES),
        sample_quantities=(),
        hist_specs={q: S.hist_spec(q) for q in qs},
        eps_threshold=(1e8,) * len(SIZES),
    )


def step_values(rng, t):
    """One step's layer values: offsets up to 1e4 std, a 0-d stepsize, a missing layer."""
    grad = [torch.from_numpy(rng.standard_normal(k) * 1e-3 + 1e-4 * t).float() for k in SIZES]
    param = [torch.from_numpy(1.0 + 1e-4 * rng.standard_normal(k)).float() for k in SIZES]
    stepsize = [
        torch.from_numpy(rng.lognormal(3.0, 1.0, SIZES[0])).float(),
        torch.tensor(0.01 * t),  # layerwise: one value for the layer
        None,  # the optimizer skipped this layer
        torch.from_numpy(rng.lognormal(0.0, 0.5, SIZES[3])).float(),
    ]
    return {"grad": grad, "param": param, "stepsize": stepsize, "exp_avg_sq": [None] * 4}


@pytest.mark.parametrize("compiled", [False, True])
def test_reducer_statistics_and_cosines_match_float64(compiled, monkeypatch):
    """Three steps through reduce + summarize: every moment within 1e-12 of NumPy float64
    on the concatenated coordinates, a 0-d value as n equal coordinates, NaN for a missing
    layer, and cosines to the previous step's value (the compiled kernel's shifts are the
    previous step's means from the second step on; each large layer's full values go
    through one call: grad, param and stepsize, then grad and param, the 0-d stepsize on
    its own)."""
    calls: list[list[int]] = []
    many = red.sm.fused_moments_many

    def counted(xs, *args):
        calls.append([x.numel() for x in xs])
        return many(xs, *args)

    monkeypatch.setattr(red.sm, "fused_moments_many", counted)
    rng = np.random.default_rng(7)
    lay = layout()
    r = red.StepReducer(lay, torch.device("cpu"), compiled=compiled)
    plan = red.StepPlan(summary=True, hist=True, samples=False)
    qn = {q: SIZES for q in lay.quantities}
    prev = None
    for t in (1, 2, 3):
        values = step_values(rng, t)
        out = r.reduce(plan, values, qn)
        got = r.summarize(plan, out, values, qn)
        for q in lay.quantities:
            for c, v in enumerate(values[q]):
                if v is None:
                    assert np.isnan(got.stats[q][c, :5]).all()
                    continue
                x = v.double().expand(SIZES[c]).numpy() if v.dim() == 0 else v.double().numpy()
                np.testing.assert_allclose(got.stats[q][c, :5], np_moments(x), rtol=1e-12)
                assert got.hist[q][c].sum() == SIZES[c]
        for q in lay.cosine_quantities:
            for c in range(len(SIZES)):
                if prev is None:
                    assert np.isnan(got.cosine[q][c])
                    continue
                a, b = values[q][c].double().numpy(), prev[q][c].double().numpy()
                want = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
                # the eager dot of a large layer is float32 BLAS; the kernel and the
                # small layers' segmented sums are float64
                rel = 1e-12 if compiled or SIZES[c] <= red.SMALL_LAYER else 1e-5
                assert got.cosine[q][c] == pytest.approx(want, rel=rel)
        prev = values
    want_calls = [[SIZES[0]] * 3, [SIZES[1]] * 2] * 3 if compiled else []
    assert calls == want_calls


def test_reducer_far_shift_is_recomputed_exactly():
    """A layer whose mean jumps 1e5 std between steps (the compiled kernel's shift is far
    off): the host flags it and the statistics are still exact."""
    lay = layout(("param",))
    r = red.StepReducer(lay, torch.device("cpu"), compiled=True)
    plan = red.StepPlan(summary=True, hist=False, samples=False)
    qn = {"param": SIZES}
    g = torch.Generator().manual_seed(0)
    for offset in (0.0, 1e5):
        values = {
            "param": [torch.randn(k, generator=g) + offset for k in SIZES],
            "stepsize": [None] * 4,
            "exp_avg_sq": [None] * 4,
        }
        got = r.summarize(plan, r.reduce(plan, values, qn), values, qn)
        for c, v in enumerate(values["param"]):
            np.testing.assert_allclose(
                got.stats["param"][c, :5], np_moments(v.double().numpy()), rtol=1e-9
            )


def test_reducer_nonfinite_layer_on_the_compiled_path():
    """A NaN and an inf in a large layer: the row is recomputed over its finite
    coordinates with the non-finite fraction, as on the eager path."""
    lay = layout(("grad",))
    plan = red.StepPlan(summary=True, hist=False, samples=False)
    qn = {"grad": SIZES}
    x = torch.randn(SIZES[0])
    x[[5, 900]] = torch.tensor([float("nan"), float("inf")])
    rest = [torch.randn(k) for k in SIZES[1:]]
    values = {"grad": [x, *rest], "stepsize": [None] * 4, "exp_avg_sq": [None] * 4}
    rows = []
    for compiled in (False, True):
        r = red.StepReducer(lay, torch.device("cpu"), compiled=compiled)
        rows.append(r.summarize(plan, r.reduce(plan, values, qn), values, qn).stats["grad"][0])
    fin = x.double().numpy()
    fin = fin[np.isfinite(fin)]
    for row in rows:
        np.testing.assert_allclose(row[:5], np_moments(fin), rtol=1e-12)
        assert row[5] == pytest.approx(2 / SIZES[0])


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(300, 400), nn.Tanh(), nn.Linear(400, 300), nn.Linear(300, 2))


def test_recorder_compiled_equals_eager(tmp_path):
    """The same 4 training steps recorded with reduce="eager" and reduce="compiled": every
    statistic equal to 1e-10 relative (both are float64 sums in another order; the
    quantiles and histograms identical), and
    cosines to 1e-5 (float32 against float64 accumulation of the dot)."""
    runs = {}
    x, y = torch.randn(32, 300), torch.randint(0, 2, (32,))
    for mode in ("eager", "compiled"):
        model = _net()
        opt = Adam(model.parameters(), lr=1e-3)
        path = tmp_path / f"{mode}.h5"
        with Recorder(model, opt, path, hist_every="same", sample=0, reduce=mode) as rec:
            for _ in range(4):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            assert rec.reducer is not None and rec.reducer.compiled == (mode == "compiled")
        runs[mode] = RunFile(path)
    a, b = runs["eager"], runs["compiled"]
    assert a.quantities == b.quantities
    for q in a.quantities:
        for stat in S.STATS:
            np.testing.assert_allclose(
                b.summary(q, stat), a.summary(q, stat), rtol=1e-10, atol=0, equal_nan=True
            )
        np.testing.assert_array_equal(b.histogram(q), a.histogram(q))
    for q in ("grad", "update"):
        np.testing.assert_allclose(b.cosine(q), a.cosine(q), rtol=1e-5, equal_nan=True)


def test_recorder_auto_picks_compiled_only_for_large_models(tmp_path):
    """``reduce="auto"``: eager below 2**20 coordinates in large layers, compiled above."""
    small = nn.Linear(10, 10)
    rec = Recorder(small, Adam(small.parameters()), tmp_path / "s.h5", sample=0)
    assert not red.resolve_backend("auto", [100, 70_000], torch.device("cpu"))
    assert red.resolve_backend("auto", [1 << 20, 70_000], torch.device("cpu"))
    assert not red.resolve_backend("auto", [1 << 20], torch.device("meta"))
    rec.close()
    with pytest.raises(ValueError, match="reduce must be"):
        Recorder(small, Adam(small.parameters()), tmp_path / "x.h5", reduce="fast")  # type: ignore[arg-type]
