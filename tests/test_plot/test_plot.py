"""Plot functions draw what the records hold (and only that), one figure per call."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import gradscope.analysis as A
from gradscope.plot import randomness as pr
from gradscope.plot import stepsizes as ps
from gradscope.plot import style
from gradscope.plot import updates as pu


@pytest.fixture
def records():
    steps = np.arange(1, 11)
    mean = np.outer(np.linspace(1, 2, 10), [1.0, 10.0])
    prof = A.stepsize_profile(steps, mean, 0.1 * mean, ["a", "b"])
    rng_ = A.stepsize_range(steps, 0.5 * mean, 2 * mean, ["a", "b"])
    cos = np.full((10, 2), 0.01)
    cos[0] = np.nan
    rnd = A.cosine_randomness(steps, cos, [100, 1000], ["a", "b"])
    law = A.reference_law(10, 0.9)
    fit = A.update_fit(law.rvs(500, random_state=0), 10, 0.9, layer="a")
    mom = A.update_moments(steps[1:], law.rvs((9, 2, 100), random_state=1), 0.9, ["a", "b"])
    return prof, rng_, rnd, fit, mom


def test_importing_plot_leaves_the_backend_alone():
    import subprocess
    import sys

    code = "import gradscope.plot.style, gradscope.plot.stepsizes, matplotlib; "
    code += "print(matplotlib.get_backend())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**__import__("os").environ, "MPLBACKEND": "svg"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "svg"


def _panel(fig, label):
    return next(a for a in fig.axes if a.get_label() == label)


def test_stepsize_profile_draws_the_numbers(records):
    prof = records[0]
    with style.theme():
        fig = ps.draw_stepsize_profile(prof)
    heat = _panel(fig, "mean").collections[0]
    np.testing.assert_allclose(np.ma.filled(heat.get_array(), np.nan).reshape(2, 10), prof.mean.T)
    lines = _panel(fig, "lines")
    assert lines.get_yscale() == "log"
    np.testing.assert_array_equal(lines.lines[0].get_ydata(), prof.mean[:, 0])
    np.testing.assert_array_equal(_panel(fig, "compact").lines[0].get_ydata(), prof.compactness)
    assert "stepsize" in _panel(fig, "mean").get_title()


def test_overlay_one_colour_per_run_and_a_legend_of_runs(records):
    prof = records[0]
    fig = ps.draw_stepsize_profile([prof, prof], labels=["r1", "r2"])
    lines = _panel(fig, "compact").lines
    assert len(lines) == 2 and lines[0].get_color() != lines[1].get_color()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["r1", "r2"]
    fig = pr.draw_randomness([records[2], records[2]], labels=["r1", "r2"])
    assert len(_panel(fig, "fraction").lines) == 4
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["r1", "r2"]


def test_compare_cosine_panels_draw_the_promised_critical_values(records):
    rnd = records[2]
    fig = pr.draw_randomness([rnd, rnd], labels=["r1", "r2"])
    a = _panel(fig, "layer0")
    assert "dotted" in a.get_title()
    dotted = sorted(float(ln.get_ydata()[0]) for ln in a.lines if ln.get_linestyle() == ":")
    c = float(rnd.critical_value[0])
    np.testing.assert_allclose(dotted, [-c, -c, c, c])


def test_range_randomness_updates(records):
    _, rng_, rnd, fit, mom = records
    fig = ps.draw_stepsize_range(rng_)
    heat = _panel(fig, "spread").collections[0]
    np.testing.assert_allclose(np.ma.filled(heat.get_array(), np.nan).reshape(2, 10), rng_.spread.T)
    fig = pr.draw_randomness(rnd)
    np.testing.assert_array_equal(
        _panel(fig, "fraction").lines[0].get_ydata(), rnd.fraction_nonrandom
    )
    fig = pu.draw_update_fits([fit, fit, fit], ncols=2)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 3
    np.testing.assert_array_equal(visible[0].lines[0].get_ydata(), fit.pdf)
    fig = pu.draw_update_moments(mom)
    np.testing.assert_array_equal(fig.axes[1].lines[-1].get_ydata(), mom.theory_var_abs)


def test_momentum_note_in_title():
    r = A.cosine_randomness([1, 2], [[0.9], [0.9]], [100], ["a"], quantity="update", momentum=0.9)
    fig = pr.draw_randomness(r)
    assert "not applied" in fig._suptitle.get_text()


def test_save_and_embed(records, tmp_path):
    fig = ps.draw_stepsize_profile(records[0])
    paths, png = style.save(fig, tmp_path / "f", ("png", "svg", "pdf"))
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert paths[0].read_bytes() == png and png[:4] == b"\x89PNG"
    assert style.svg_text(fig).lstrip().startswith("<?xml")


def test_palette_colourblind_and_theme_is_scoped():
    before = dict(matplotlib.rcParams)
    with style.theme():
        assert matplotlib.rcParams["axes.grid"]
    assert matplotlib.rcParams["axes.grid"] == before["axes.grid"]
    assert len(style.palette(12)) == 12


def test_law_curves_drawn():
    c = A.law_curves([2, 10], [0.9])
    fig = pu.draw_law_curves(c)
    assert len(fig.axes[0].lines) == 2


def test_moments_draw_only_the_named_layers(records):
    mom = records[4]
    fig = pu.draw_update_moments(mom, named=["b"])
    var = fig.axes[0]
    # one layer line, then Corollary 1's dashed line
    assert [ln.get_label() for ln in var.lines] == ["b", "Corollary 1"]
    np.testing.assert_array_equal(var.lines[0].get_ydata(), mom.scaled_var[:, 1])


def test_theme_and_palette_are_seaborns():
    """The written-out theme and palette equal seaborn's (whitegrid, notebook x 0.85,
    colorblind), and drawing a report figure imports neither seaborn nor pyplot."""
    import subprocess
    import sys

    import seaborn as sns

    want = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)}
    want.pop("image.cmap")  # seaborn's own map; gradscope's heatmaps name theirs
    assert style.THEME == want
    assert style.palette(12) == [tuple(c) for c in sns.color_palette("colorblind", 10)] + [
        tuple(c) for c in sns.color_palette("colorblind", 2)
    ]
    code = (
        "import sys, numpy as np; import gradscope.analysis as A; "
        "from gradscope.plot import stepsizes as ps, style\n"
        "p = A.stepsize_profile([1, 2], np.ones((2, 3)), np.ones((2, 3)), ['a', 'b', 'c'])\n"
        "with style.theme(): style.png_bytes(ps.draw_stepsize_profile(p))\n"
        "print(sorted(m for m in ('seaborn', 'matplotlib.pyplot') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
