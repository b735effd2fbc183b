"""Real runs through the Recorder: non-finite values, dead coordinates, per-group settings,
the fit options of the API and the CLI, verdicts, step length and the comparison verdicts."""

from __future__ import annotations

import json
from html import unescape

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gradscope.cli import app
from gradscope.report.build import analyze_run, build
from gradscope.report.compare import compare_runs
from gradscope.runfile import RunFile
from tests.helpers import runs

runner = CliRunner()


_NAN_GEN = torch.Generator().manual_seed(3)


def _nan_at_20(t, i, n):
    z = torch.randn(n, generator=_NAN_GEN)
    if t == 20 and i == 1:
        z[7] = float("nan")
    return z


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    """Adam with one NaN gradient coordinate in layer ps.1 at step 20 (and a NaN loss)."""
    return runs.train(
        tmp_path_factory.mktemp("nan") / "nan.h5",
        lambda p: torch.optim.Adam(p, lr=1e-3),
        [600, 400],
        30,
        _nan_at_20,
        sample=400,
    )


def test_nonfinite_run_gets_a_full_report(nan_run, tmp_path):
    rep = build(nan_run, tmp_path / "r", formats=("png",))
    an = rep.analysis
    nf = an.nonfinite
    q = nf.quantities.index("grad")
    # the recorder counted exactly one NaN gradient value, in ps.1 at step 20
    assert nf.total[q].tolist() == [0, 1] and nf.first_step[q].tolist() == [-1, 20]
    with RunFile(nan_run) as run:
        # the file holds fractions of the layer: 1/400 per row from step 20 to 30
        want = run.summary("update", "nonfinite")[:, 1].sum() * 400
    assert nf.total[nf.quantities.index("update")][1] == pytest.approx(want) == 11
    assert int(nf.loss_first_step) == 20
    head = rep.headline["non-finite values"]
    assert "grad in 1 layer from step 20" in head and "loss from step 20" in head
    text = an.verdicts["nonfinite"]
    assert "ps.1 1 from step 20" in text
    html = unescape(rep.html.read_text())
    assert text in html and "grad in 1 layer from step 20" in html
    # every figure is drawn from the finite values
    assert {"stepsizes.png", "stepsize_range.png", "step_length.png"} <= {p.name for p in rep.files}
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["nonfinite"]["grad"] == {"ps.1": {"values": 1, "first_step": 20}}


def test_infinite_loss_is_reported(tmp_path):
    torch.manual_seed(0)
    model = runs.Linear([300])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    from gradscope.record import Recorder

    with Recorder(model, opt, tmp_path / "inf.h5", sample=64, sample_every="same") as rec:
        for t in range(1, 9):
            opt.zero_grad()
            loss = model([torch.randn(300)])
            loss.backward()
            rec.log_loss(loss + (float("inf") if t >= 5 else 0.0))
            opt.step()
    rep = build(tmp_path / "inf.h5", tmp_path / "r", formats=("png",))
    assert rep.headline["non-finite values"] == "loss from step 5"
    assert int(rep.analysis.nonfinite.loss_total) == 4


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory):
    """Adam where 40 % of each layer's coordinates never get a gradient (blank inputs)."""

    gen = torch.Generator().manual_seed(4)

    def noise(t, i, n):
        z = torch.randn(n, generator=gen)
        z[: int(0.4 * n)] = 0.0
        return z

    return runs.train(
        tmp_path_factory.mktemp("dead") / "dead.h5",
        lambda p: torch.optim.Adam(p, lr=1e-3),
        [5000, 3000],
        12,
        noise,
        sample=3000,
    )


def test_dead_coordinates_excluded_counted_and_ks_without_them(dead_run):
    an = analyze_run(dead_run, fit_steps=[2, 3, 10])
    assert {f.t for f in an.fits} == {2, 3, 10}
    for f in an.fits:
        # the sample holds 3000 coordinates per layer; 40 % of them are dead
        assert f.n_dead == pytest.approx(1200, abs=90)
        assert f.n + f.n_dead == 3000
        assert not f.rejected and f.ks_distance < 1.63 / np.sqrt(f.n)
        # kept in, they are a point mass at 0 of about 0.4: KS about 0.2
        assert f.ks_with_dead > 0.15
    kept = analyze_run(dead_run, fit_steps=[2], exclude_dead=False)
    assert all(f.rejected and f.n == 3000 for f in kept.fits)
    # the moments leave them out too: Var(u) t_eff near 1 (Corollary 1)
    late = an.moments.steps >= 3
    np.testing.assert_allclose(an.moments.scaled_var[late], 1.0, atol=0.15)
    # eps decides the stepsize of those coordinates (v = 0): ~40 % per layer, flagged
    assert an.epsilon.flagged_layers == ("ps.0", "ps.1")
    np.testing.assert_allclose(an.epsilon.fraction_max, 0.4, atol=0.03)
    # the per-layer table of the report shows the fraction and the dead counts
    from gradscope.report.build import layer_table

    table = layer_table(an)
    assert table[0][:4] == (
        "layer",
        "n",
        "eps-dominated fraction (max)",
        "dead coordinates (v = 0)",
    )
    assert [r[3] for r in table[1:]] == [2000, 1200]  # 40 % of 5000 and of 3000, all rows
    # the range's max is 1/eps: the headline says eps-dominated coordinates drive it
    assert an.ranges.max_spread_eps_capped.all()
    assert "driven by eps-dominated coordinates" in an.verdicts["ranges"]


def test_fit_layers_and_steps_options(adam_run, tmp_path):
    an = analyze_run(adam_run, fit_steps=[1, 2, 5, 999], fit_layers=["ps.1"])
    assert {(f.layer, f.t) for f in an.fits} == {("ps.1", 2), ("ps.1", 5)}
    assert [(c.layer, c.step, c.passed) for c in an.two_point] == [("ps.1", 1, True)]
    assert any("999" in n for n in an.notes)
    with pytest.raises(ValueError, match="unknown fit layers"):
        analyze_run(adam_run, fit_layers=["nope"])
    r = runner.invoke(
        app,
        ["analyze", str(adam_run), "-o", str(tmp_path / "c"), "-f", "png", "--fit-steps", "2,3",
         "--fit-layers", "all"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    fits = json.loads((tmp_path / "c" / "update_fits.json").read_text())
    assert sorted((f["layer"], f["t"]) for f in fits) == [
        ("ps.0", 2), ("ps.0", 3), ("ps.1", 2), ("ps.1", 3)
    ]  # fmt: skip
    # the verdicts are printed after the headline
    assert "update_fits: The zero-mean law fits" in r.stdout.replace("\n", " ")
    for bad in ("0,2", "a,b"):
        r = runner.invoke(app, ["analyze", str(adam_run), "-o", str(tmp_path), "--fit-steps", bad])
        assert r.exit_code == 2 and "--fit-steps" in r.stderr


def test_small_layers_not_fitted_unless_named(constant_run, tmp_path):
    # build a tiny Adam run: layers of 50 and 400 coordinates
    g = torch.Generator().manual_seed(5)
    p = runs.train(
        tmp_path / "small.h5",
        lambda ps: torch.optim.Adam(ps, lr=1e-3),
        [50, 400],
        4,
        lambda t, i, n: torch.randn(n, generator=g),
        sample=400,
    )
    an = analyze_run(p)
    assert {f.layer for f in an.fits} == {"ps.1"}
    assert any("fewer than 256" in n and "ps.0" in n for n in an.notes)
    named = analyze_run(p, fit_layers=["ps.0"])
    assert {f.layer for f in named.fits} == {"ps.0"}


def test_sgd_anticorrelation_shown_and_compare_verdicts(constant_run, adam_run, tmp_path):
    # alternating gradient directions: successive cosines are -1, shown signed
    d = {}

    def flip(t, i, n):
        if i not in d:
            d[i] = torch.randn(n, generator=torch.Generator().manual_seed(20 + i))
        return d[i] * (-1) ** t

    p = runs.train(
        tmp_path / "flip.h5",
        lambda ps: torch.optim.SGD(ps, lr=0.01),
        [50, 400, 3000],
        10,
        flip,
        sample=16,
    )
    an = analyze_run(p)
    np.testing.assert_allclose(an.randomness_grad.mean_cosine, -1.0, atol=1e-6)
    assert (
        "negative (anti-correlated successive grads) in 3 of 3 layers"
        in (an.verdicts["randomness_grad"])
    )
    c = compare_runs([p, constant_run], tmp_path / "cmp", formats=("png",))
    assert any("step-length CV" in v for v in c.verdicts)
    assert "flip vs const" in " ".join(c.verdicts)
    html = unescape(c.html.read_text())
    assert all(v in html for v in c.verdicts)
    # per-pair tables: flip's step length is constant (CV 0) in all 3 layers, const's grows;
    # SGD's u is 1 everywhere, so neither run has the lower within-layer spread anywhere
    from gradscope.report.compare import pair_tables

    spread, cv = pair_tables(c.analyses, c.labels)
    assert c.labels == ("flip", "const")
    assert cv.lower.tolist() == [[0, 3], [0, 0]] and cv.common.tolist() == [[0, 3], [3, 0]]
    assert spread.lower.tolist() == [[0, 0], [0, 0]]
    assert "<th>flip</th><td></td><td>3/3</td>" in html


def test_mixed_momentum_groups_null_per_layer(tmp_path):
    """SGD, default momentum 0, one group at 0.9, i.i.d. gradients: the update cosines of the
    momentum group are not tested, the others are and flag about alpha or fewer."""
    g = torch.Generator().manual_seed(6)
    torch.manual_seed(0)
    model = runs.Linear([2000, 2000, 2000])
    ps = list(model.parameters())
    opt = torch.optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "momentum": 0.9}], lr=0.01)
    from gradscope.record import Recorder

    with Recorder(model, opt, tmp_path / "mix.h5", sample=64, sample_every="same") as rec:
        for _ in range(200):
            opt.zero_grad()
            loss = model([torch.randn(2000, generator=g) for _ in range(3)])
            loss.backward()
            rec.log_loss(loss)
            opt.step()
    an = analyze_run(tmp_path / "mix.h5")
    ru, rg = an.randomness_update, an.randomness_grad
    np.testing.assert_array_equal(ru.null_applies, [True, True, False])
    assert np.all(ru.fraction_nonrandom[:2] <= 0.05) and np.isnan(ru.fraction_nonrandom[2])
    assert ru.n_nonrandom[2] == 0 and "ps.2" in ru.note
    # momentum 0.9 updates are strongly correlated: their cosines are still drawn and averaged
    assert ru.mean_cosine[2] > 0.5 and abs(ru.mean_cosine[0]) < 0.05
    assert rg.null_applies.all() and np.all(rg.fraction_nonrandom <= 0.05)
    assert (
        "Not tested (momentum, the null does not apply): ps.2." in an.verdicts["randomness_update"]
    )


def _iid(params, opt, steps, g, rec=None):
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()


def test_late_attached_recorder_is_analysed_at_the_true_t(tmp_path):
    """Attached after 100 steps: rows are t = 101.., the fits pass there (not at 1, 2, ..)."""
    from torch import nn

    from gradscope.record import Recorder

    g = torch.Generator().manual_seed(7)
    w = nn.Parameter(torch.zeros(8000))
    opt = torch.optim.Adam([w], lr=1e-3)
    _iid([w], opt, 100, g)
    with Recorder(
        nn.ParameterList([w]), opt, tmp_path / "late.h5", sample=8000, sample_every="same"
    ):
        _iid([w], opt, 20, g)
    an = analyze_run(tmp_path / "late.h5")
    assert (an.first_step, an.last_step) == (101, 120)
    # the default fit steps 1, 2, 3, ... are absent: the first recorded rows are fitted
    assert an.fits and min(f.t for f in an.fits) == 101 and not an.two_point
    for f in an.fits:
        assert not f.rejected and f.ks_distance < 1.63 / np.sqrt(f.n)
    np.testing.assert_allclose(an.moments.scaled_var, 1.0, atol=0.1)
    assert an.verdicts["update_fits"].startswith("The zero-mean law fits at every fitted step")


def test_beta1_schedule_is_reflected_in_the_fitted_law(tmp_path):
    """beta1 ramped 0.5 -> 0.95 over 12 steps (set in the group before each step): the law
    with the recorded per-row beta1 fits; the constant beta1 of the metadata would not."""
    from torch import nn

    from gradscope.record import Recorder

    g = torch.Generator().manual_seed(8)
    w = nn.Parameter(torch.zeros(20000))
    opt = torch.optim.Adam([w], lr=1e-3, betas=(0.5, 0.999))
    ramp = np.linspace(0.5, 0.95, 12)
    with Recorder(
        nn.ParameterList([w]), opt, tmp_path / "ramp.h5", sample=20000, sample_every="same"
    ):
        for b in ramp:
            opt.param_groups[0]["betas"] = (float(b), 0.999)
            _iid([w], opt, 1, g)
    with RunFile(tmp_path / "ramp.h5") as run:
        np.testing.assert_allclose(run.layer_hparam("betas.0")[:, 0], ramp)
    an = analyze_run(tmp_path / "ramp.h5", fit_steps=[12])
    (f,) = an.fits
    assert "schedule" in f.law and not f.rejected
    import gradscope.analysis as A

    assert f.scale == pytest.approx(A.law_scale(12, ramp))
    with RunFile(tmp_path / "ramp.h5") as run:
        x = -run.subsample("update", 0, rows=slice(11, 12))[0] / 1e-3
    assert A.update_fit(x, 12, 0.5).rejected and A.update_fit(x, 12, 0.95).rejected


def test_v1_file_still_analysed():
    from pathlib import Path

    an = analyze_run(Path(__file__).parents[1] / "data" / "v1_run.h5")
    assert an.optimizer == "Adam" and an.stepsizes is not None and an.step_length is not None
    # no recorded eps counts in a v1 file: estimated from the stepsize subsample
    assert an.epsilon.source == "subsample" and an.dead_counts is None
    # every layer is below 256 coordinates: nothing fitted unless named
    assert not an.fits
    named = analyze_run(Path(__file__).parents[1] / "data" / "v1_run.h5", fit_layers=["0.weight"])
    assert {f.layer for f in named.fits} == {"0.weight"}
