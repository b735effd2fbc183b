"""Report building on run files with known answers (real Adam/SGD/LAdam through Recorder)."""

from __future__ import annotations

import base64
import json
from html import unescape
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest

from gradscope import theory
from gradscope.errors import MissingDataError, RunFileError
from gradscope.report.build import analyze_run, build, optimizer_facts
from gradscope.runfile import RunFile
from tests.helpers import runs


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.text, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self.text.append(data)


def test_gaussian_adam_fits_exact_law(adam_run):
    an = analyze_run(adam_run)
    assert an.optimizer == "Adam" and an.beta1 == 0.9
    assert len(an.fits) >= 6
    for f in an.fits:
        # 3000-6000 samples: KS noise ~ 1/sqrt(n); the model error is 1e-4 (docs/theory.md, 4)
        assert f.ks_distance < 1.6 / np.sqrt(f.n), (f.layer, f.t, f.ks_distance)
        assert abs(f.var_ratio - 1) < 0.1 and not f.heavy_tailed
    m = an.moments
    late = m.steps >= 3
    np.testing.assert_allclose(m.scaled_var[late], 1.0, atol=0.12)
    np.testing.assert_allclose(m.scaled_var_abs[late] - m.theory_var_abs[late, None], 0, atol=0.04)
    # gradients are i.i.d.: the randomness test flags (almost) nothing
    assert np.all(an.randomness_grad.fraction_nonrandom <= 0.1)
    # Adam's updates with beta1 = 0.9: the isotropic null is not applied
    assert not an.randomness_update.null_applies.any() and "beta1" in an.notes[0]
    assert an.epsilon.flagged_layers == ()
    np.testing.assert_array_equal(an.epsilon.fraction_max, 0.0)
    assert set(an.skipped) == {"examplewise"}


def test_normalization_is_theory_variable(adam_run):
    """-update/lr equals m_hat/(sqrt(v_hat)+eps) recomputed from the recorded pieces."""
    with RunFile(adam_run) as run:
        upd = run.subsample("update", 0, rows=slice(4, 5))[0].astype(float)
        u = run.subsample("stepsize", 0, rows=slice(4, 5))[0].astype(float)
        grads = run.subsample("grad", 0, rows=slice(0, 5)).astype(float)
        lr = run.lr[4, 0]
    w = theory.ema_weights(5, 0.9)
    m_hat = w @ grads
    np.testing.assert_allclose(-upd / lr, u * m_hat, rtol=2e-3, atol=1e-6)


def test_constant_direction_nonrandom_every_layer(constant_run):
    an = analyze_run(constant_run)
    np.testing.assert_array_equal(an.randomness_grad.fraction_nonrandom, 1.0)
    assert an.randomness_grad.n_tested.tolist() == [11, 11, 11]
    assert "update_fit" in an.skipped and "SGD" in an.skipped["update_fit"]


def test_layerwise_optimizer_zero_within_layer_std(layerwise_run):
    an = analyze_run(layerwise_run)
    assert an.stepsizes.layerwise.all()
    np.testing.assert_allclose(an.stepsizes.std, 0.0, atol=1e-6 * np.nanmax(an.stepsizes.mean))
    np.testing.assert_allclose(an.ranges.spread, 0.0, atol=1e-5)


def test_adam_has_within_layer_spread(adam_run):
    an = analyze_run(adam_run)
    assert not an.stepsizes.layerwise.any()
    assert np.all(an.stepsizes.std[-1] > 0.05 * an.stepsizes.mean[-1])


def test_chunked_equals_one_pass(adam_run):
    one = analyze_run(adam_run, chunk=4096)
    many = analyze_run(adam_run, chunk=5)
    np.testing.assert_array_equal(one.stepsizes.mean, many.stepsizes.mean)
    np.testing.assert_array_equal(one.randomness_grad.n_nonrandom, many.randomness_grad.n_nonrandom)
    np.testing.assert_allclose(one.moments.scaled_var, many.moments.scaled_var)
    thin = analyze_run(adam_run, max_points=5)
    assert len(thin.stepsizes.steps) == 5 and thin.stepsizes.steps[-1] == 24
    assert thin.randomness_grad.n_tested.tolist() == one.randomness_grad.n_tested.tolist()


def test_layer_and_step_selection(adam_run):
    an = analyze_run(adam_run, layers=["ps.1"], steps=(5, 10))
    assert an.layers == ("ps.1",) and an.stepsizes.steps.tolist() == list(range(5, 11))
    with pytest.raises(MissingDataError, match="no layer"):
        analyze_run(adam_run, layers=["nope"])
    with pytest.raises(MissingDataError, match="no recorded steps"):
        analyze_run(adam_run, steps=(1000, 2000))


def test_build_writes_everything_and_html_is_self_contained(adam_run, tmp_path):
    rep = build(adam_run, tmp_path / "out", formats=("png", "svg"))
    names = {p.name for p in rep.files}
    for stem in (
        "stepsizes",
        "stepsize_range",
        "randomness_grad",
        "randomness_update",
        "update_fits",
        "update_moments",
        "step_length",
    ):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert {"stepsizes.csv", "update_fits.json", "summary.json", "report.html"} <= names
    assert {"step_length.csv", "step_length_windows.csv", "nonfinite.csv", "two_point.csv"} <= names
    html = rep.html.read_text()
    p = _Collect()
    p.feed(html)
    assert len(p.imgs) == 8  # the seven figures and the update-law misfit heatmap
    # rendered once: each embedded image is byte for byte the PNG file written
    pngs = [q for q in rep.files if q.suffix == ".png"]
    assert len(pngs) == len(p.imgs)
    for img, png in zip(p.imgs, pngs):
        assert base64.b64decode(img["src"].split(",", 1)[1]) == png.read_bytes()
    # layout: headline and conclusions, then figures, then the collapsed skipped analyses
    assert html.index("Headline numbers") < html.index("<figure>")
    assert html.rindex("</figure>") < html.index("<details class='skipped'>")
    assert "<summary>Skipped analyses (1)</summary>" in html
    # every figure section that has a verdict ends with it, computed from the numbers
    an = rep.analysis
    for key in ("stepsizes", "randomness_grad", "update_fits", "step_length"):
        assert f"Verdict: {an.verdicts[key]}" in unescape(html)
    for img in p.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in html and "https://" not in html
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"].keys() == {"examplewise"}
    csv_head = (tmp_path / "out" / "stepsizes.csv").read_text().splitlines()[0]
    assert csv_head == "step,layer,mean,std,compactness"


def test_hostile_layer_name_escaped_and_skips_reported(tmp_path):
    bad = "<script>alert(1)</script>"
    path = runs.synthetic_run(tmp_path / "x.h5", names=(bad, "b&\"c'"), samples=False)
    rep = build(path, tmp_path / "r", formats=("png",))
    html = rep.html.read_text()
    assert bad not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    p = _Collect()
    p.feed(html)
    assert p.scripts == 0
    assert "update_fit" in rep.analysis.skipped
    assert "subsample" in rep.analysis.skipped["update_fit"]
    assert any("Skipped analyses" in t for t in p.text)


def test_default_out_next_to_file(tmp_path):
    path = runs.synthetic_run(tmp_path / "run.h5", quantities=("grad", "stepsize"))
    rep = build(path, formats=("png",))
    assert rep.out == tmp_path / "run_report" and rep.html.exists()
    assert "randomness_update" in rep.analysis.skipped


def test_nothing_to_analyse_is_an_error(tmp_path):
    path = runs.synthetic_run(tmp_path / "p.h5", quantities=("param",), samples=False)
    with pytest.raises(MissingDataError, match="nothing to analyse"):
        analyze_run(path)


def test_bad_files_raise_runfileerror(tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(RunFileError, match="not an HDF5"):
        analyze_run(tmp_path / "t.txt")
    with pytest.raises(RunFileError, match="no such"):
        analyze_run(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(RunFileError, match="not a gradscope"):
        analyze_run(tmp_path / "o.h5")
    with pytest.raises(ValueError, match="formats"):
        build(tmp_path / "o.h5", formats=("gif",))


def test_live_file_being_written(tmp_path):
    """A SWMR file still open for writing is analysed (rows flushed so far)."""
    from gradscope.runfile import RunWriter
    from gradscope.runfile import schema as S

    lay = S.Layout(
        layers=(S.LayerInfo("w", (64,), 0, 0, 0),),
        n_groups=1,
        quantities=("grad", "stepsize"),
        sample_quantities=(),
    )
    w = RunWriter(tmp_path / "live.h5", lay, {}, live=True, block=2)
    rng = np.random.default_rng(0)
    for t in range(1, 7):
        st = {q: np.abs(rng.standard_normal((1, len(S.STATS)))) + 0.5 for q in lay.quantities}
        w.write_summary(
            S.SummaryRow(t, float(t), 0.0, np.array([0.1]), st, {"grad": rng.uniform(-0.1, 0.1, 1)})
        )
    w.flush()
    try:
        an = analyze_run(tmp_path / "live.h5")
        assert an.n_rows == 6 and an.stepsizes.mean.shape == (6, 1)
    finally:
        w.close()


def test_optimizer_facts():
    assert optimizer_facts(
        {"optimizer": {"class": "torch.optim.sgd.SGD", "defaults": {"momentum": 0.5}}}
    ) == ("SGD", 0.5, None, 0.0)
    assert optimizer_facts({}) == ("unknown", None, None, 0.0)
