"""The section registry: a section's needs decide whether it runs or is skipped with its
reason, a section registered from outside appears in the report and in comparisons (with
its figure, caption, verdict, headline and files), and the built-in sections reproduce the
records' own verdicts."""

from __future__ import annotations

import base64
import json
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from gradscope import analysis as A
from gradscope.report import sections as SEC
from gradscope.report.build import analyze_run, build
from gradscope.report.compare import compare_runs
from gradscope.report.runview import RunMeta
from tests.helpers import runs


class GradNormSection(SEC.Section):
    """A toy section: the mean over layers of the recorded gradient norm per step."""

    key = "toy_grad_norm"
    title = "Toy: mean gradient norm"
    needs = ("grad",)

    def analyze(self, view):
        norm = view.run.summary("grad", "norm", rows=view.rows)[:, view.cols]
        return (view.steps, norm.mean(axis=1))

    def verdict(self, record, an):
        return f"toy verdict: largest mean norm {record[1].max():.6g}"

    def headline(self, record, an):
        return {"toy: steps seen": len(record[0])}

    def caption(self, record, ctx):
        return "toy caption: the mean over layers of ||grad||"

    def draw(self, record, ctx):
        from gradscope.plot import style

        fig, ax = style.figure(1, 1)
        ax[0, 0].plot(*record)
        ax[0, 0].set(xlabel="optimizer step", ylabel="mean ||grad||", title="toy")
        return fig

    def export(self, record, out: Path):
        path = out / "toy.csv"
        path.write_text("step,norm\n" + "".join(f"{s},{v!r}\n" for s, v in zip(*record)))
        return [path]

    def compare_caption(self, ctx):
        return "toy compare caption"

    def draw_compare(self, records, labels, ctx):
        from gradscope.plot import style

        fig, ax = style.figure(1, 1)
        for (st, v), lab in zip(records, labels):
            ax[0, 0].plot(st, v, label=lab)
        return fig


@pytest.fixture
def toy():
    sec = SEC.register(GradNormSection())
    yield sec
    SEC.unregister(sec.key)


def test_builtin_sections_in_report_order():
    keys = [s.key for s in SEC.sections()]
    assert keys == [
        "nonfinite",
        "stepsizes",
        "ranges",
        "epsilon",
        "randomness_grad",
        "randomness_update",
        "update_fits",
        "update_misfit",
        "moments",
        "step_length",
        "examplewise",
    ]
    stems = {s.key: s.file_stem for s in SEC.sections()}
    assert stems["ranges"] == "stepsize_range" and stems["moments"] == "update_moments"


def test_register_replaces_and_places(toy):
    assert SEC.sections()[-1] is toy
    again = SEC.register(GradNormSection(), before="stepsizes")
    keys = [s.key for s in SEC.sections()]
    assert keys.count("toy_grad_norm") == 1 and keys.index("toy_grad_norm") == 1
    assert SEC.sections()[1] is again
    with pytest.raises(ValueError, match="key"):
        SEC.register(SEC.Section())


def test_toy_section_appears_in_the_report(toy, tmp_path):
    path = runs.synthetic_run(tmp_path / "r.h5", steps=6)
    rep = build(path, tmp_path / "out")
    an = rep.analysis
    st, norm = an.extra["toy_grad_norm"]
    # the record is the section's own analysis of the file: checked against a direct read
    from gradscope.runfile import RunFile

    with RunFile(path) as run:
        expect = run.summary("grad", "norm")[:, :].mean(axis=1)
    np.testing.assert_array_equal(norm, expect)
    np.testing.assert_array_equal(st, np.arange(1, 7))
    html = unescape(rep.html.read_text())
    assert "Toy: mean gradient norm" in html and "toy caption" in html
    assert f"Verdict: {an.verdicts['toy_grad_norm']}" in html
    assert rep.headline["toy: steps seen"] == 6
    names = {p.name for p in rep.files}
    assert {"toy_grad_norm.png", "toy.csv"} <= names
    # the embedded image is the file written
    png = (tmp_path / "out" / "toy_grad_norm.png").read_bytes()
    assert base64.b64encode(png).decode() in rep.html.read_text()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verdicts"]["toy_grad_norm"].startswith("toy verdict")


def test_a_run_lacking_what_a_section_needs_lists_it_as_skipped(toy, tmp_path):
    path = runs.synthetic_run(tmp_path / "s.h5", quantities=("stepsize",))
    rep = build(path, tmp_path / "out")
    assert "toy_grad_norm" not in rep.analysis.extra
    assert rep.analysis.skipped["toy_grad_norm"] == "the run recorded no 'grad' statistics"
    html = rep.html.read_text()
    assert "Toy: mean gradient norm" not in html
    assert "<b>toy_grad_norm</b>: the run recorded no &#x27;grad&#x27; statistics" in html


def test_compare_uses_the_same_sections(toy, tmp_path):
    a = runs.synthetic_run(tmp_path / "a.h5", steps=6)
    b = runs.synthetic_run(tmp_path / "b.h5", steps=4)
    cmp = compare_runs([a, b], tmp_path / "cmp")
    html = cmp.html.read_text()
    assert "toy compare caption" in html
    assert (tmp_path / "cmp" / "toy_grad_norm.png").exists()
    # every registered section that compares and that the runs have is drawn, by its stem
    ctx = SEC.context(cmp.analyses[0])
    want = {
        s.file_stem
        for s in SEC.sections()
        if s.compare_caption(ctx) and s.compare_records(cmp.analyses, cmp.labels)[0]
    }
    assert {p.stem for p in cmp.files if p.suffix == ".png"} == want
    assert "stepsizes" in want and "toy_grad_norm" in want


def test_builtin_verdicts_are_the_analyzers(adam_run):
    an = analyze_run(adam_run)
    assert an.verdicts["stepsizes"] == A.stepsize_verdict(an.stepsizes)
    assert an.verdicts["ranges"] == A.range_verdict(an.ranges)
    assert an.verdicts["randomness_grad"] == A.randomness_verdict(
        an.randomness_grad, an.trends["randomness_grad"]
    )
    assert an.verdicts["update_fits"] == A.fit_verdict(an.fits, an.two_point)
    assert "nonfinite" not in an.verdicts  # nothing was non-finite
    assert an.meta.optimizer == "Adam" and an.meta.beta1 == 0.9


def test_run_meta_parses_once_and_tolerates_junk():
    m = RunMeta.parse(
        {
            "optimizer": {
                "class": "torch.optim.adamw.AdamW",
                "defaults": {"lr": 0.01, "betas": [0.8, 0.99], "weight_decay": 0.1, "amsgrad": 1},
                "param_groups": [{"lr": 0.5}, {"weight_decay": 0.0}],
            }
        }
    )
    assert (m.optimizer, m.beta1, m.beta2, m.weight_decay, m.amsgrad) == (
        "AdamW",
        0.8,
        0.99,
        0.1,
        True,
    )
    # each group: the defaults overridden by the group's own entries
    assert m.group_lr(0) == 0.5 and m.group_lr(1) == 0.01 and m.group_lr(2) is None
    junk = RunMeta.parse({"optimizer": {"defaults": {"weight_decay": "x", "betas": 3}}})
    assert (junk.optimizer, junk.beta1, junk.weight_decay, junk.groups[0]["betas"]) == (
        "unknown",
        None,
        0.0,
        3,
    )
    assert RunMeta.parse(None) == RunMeta()


def test_compare_moments_keep_each_runs_colour_when_some_runs_lack_them():
    """In a comparison of three runs where only the second has update moments, the moments
    figure draws that run in the colour it has in every other figure (palette index 1 of
    3), with a legend of runs naming it, not one colour per layer (which the caption would
    contradict)."""
    from matplotlib.colors import to_hex

    from gradscope.plot.style import palette
    from gradscope.report.sections.updates import MOMENTS

    steps = np.array([2.0, 3.0, 10.0])
    rec = A.UpdateMoments(
        layers=("fc1.weight", "fc2.weight"),
        steps=steps,
        scaled_var=np.ones((3, 2)),
        scaled_var_abs=np.full((3, 2), 0.3),
        theory_var=np.ones(3),
        theory_var_abs=np.full(3, 0.36),
    )
    ctx = SEC.Context(A.named_layers(rec.layers, None), "", runs=("a", "b", "c"))
    fig = MOMENTS.draw_compare([rec], ["b"], ctx)
    want = to_hex(palette(3)[1])
    for ax in fig.axes[:2]:
        data = [ln for ln in ax.get_lines() if ln.get_linestyle() != "--"]
        assert len(data) == 2 and {to_hex(ln.get_color()) for ln in data} == {want}
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["b"]
    assert "left out" in MOMENTS.compare_caption(ctx)
