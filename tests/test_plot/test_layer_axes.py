"""Figures stay readable from 6 to 300 layers: tick labels never overlap (measured from the
tick Text objects' extents with the Agg renderer), layers are grouped by module prefix,
line plots name a few layers by a stated rule, and log-axis bands stay above zero."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gradscope.analysis as A
from gradscope.plot import randomness as pr
from gradscope.plot import stepsizes as ps
from gradscope.plot import style


def resnet18_names() -> list[str]:
    """torchvision's ResNet-18 parameter names (62), written out by their rule."""
    names = ["conv1.weight", "bn1.weight", "bn1.bias"]
    for stage in range(1, 5):
        for block in range(2):
            p = f"layer{stage}.{block}"
            names += [f"{p}.conv1.weight", f"{p}.bn1.weight", f"{p}.bn1.bias"]
            names += [f"{p}.conv2.weight", f"{p}.bn2.weight", f"{p}.bn2.bias"]
            if stage > 1 and block == 0:
                names += [f"{p}.downsample.0.weight", f"{p}.downsample.1.weight"]
                names += [f"{p}.downsample.1.bias"]
    return [*names, "fc.weight", "fc.bias"]


def transformer_names(n: int = 300) -> list[str]:
    names = ["embed.weight"]
    i = 0
    while len(names) < n - 2:
        names += [f"blocks.{i}.attn.qkv.weight", f"blocks.{i}.mlp.fc1.weight"]
        i += 1
    return [*names[: n - 2], "head.weight", "head.bias"]


NAMES = {
    6: ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"],
    62: resnet18_names(),
    300: transformer_names(),
}


def _profile(names, steps=12):
    rng = np.random.default_rng(0)
    mean = 10 ** rng.uniform(-4, 1, (steps, len(names)))
    return A.stepsize_profile(np.arange(1, steps + 1), mean, 2.5 * mean, names)


def _labels(axis):
    return [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


def assert_no_overlap(fig) -> int:
    """Every axis' visible tick labels are disjoint along the axis; returns how many."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    count = 0
    for ax in fig.axes:
        for axis, lo, hi in ((ax.xaxis, "x0", "x1"), (ax.yaxis, "y0", "y1")):
            boxes = sorted(
                (t.get_window_extent(renderer) for t in _labels(axis)),
                key=lambda b: getattr(b, lo),
            )
            for a, b in itertools.pairwise(boxes):
                assert getattr(a, hi) <= getattr(b, lo) + 0.5, (
                    f"{ax.get_label() or ax.get_title()}: labels overlap"
                )
            count += len(boxes)
    return count


def test_resnet18_names_are_62():
    assert len(resnet18_names()) == 62


def test_groups_by_module_prefix():
    g = A.layer_groups(resnet18_names())
    assert [p for p, _, _ in g.groups] == [
        "conv1",
        "bn1",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "fc",
    ]
    assert g.groups[2] == ("layer1", 3, 15)  # 2 blocks x 6 tensors
    assert g.short[3] == "0.conv1.weight"
    # one prefix for all (blocks.*) is split at the first level that separates layers
    g = A.layer_groups(transformer_names())
    assert [p for p, _, _ in g.groups] == ["embed", "blocks", "head"]


def test_named_layers_rule():
    nl = A.named_layers(list("abcdefghij"), [5, 1, 2, 3, 9, 4, 6, 7, 8, 0], what="u")
    assert nl.index == (0, 4, 5, 9)  # first, middle (5), last; max at 4; min at 9 (= last)
    assert "first, middle and last" in nl.rule and "largest and smallest u" in nl.rule
    assert A.named_layers(["a", "b"]).index == (0, 1)


def test_geometric_band_stays_positive_when_std_exceeds_mean():
    p = A.stepsize_profile([1], [[1.0]], [[3.0]], ["a"])
    lo, hi = p.geometric_band
    f = np.exp(np.sqrt(np.log(10.0)))  # 1 + (3/1)^2 = 10
    np.testing.assert_allclose([lo[0, 0], hi[0, 0]], [1 / f, f])
    assert lo[0, 0] > 0


@pytest.mark.parametrize("n", [6, 62, 300])
def test_stepsize_figure_labels_never_overlap(n):
    names = NAMES[n]
    with style.theme():
        fig = ps.draw_stepsize_profile(_profile(names), named=A.named_layers(names))
        count = assert_no_overlap(fig)
    heat = next(a for a in fig.axes if a.get_label() == "mean")
    shown = _labels(heat.yaxis)
    # every layer named when they fit (6), at least every third at ResNet scale, and a
    # readable sample of 300
    assert len(shown) == n if n == 6 else len(shown) >= min(n // 3, 40)
    assert count > 0
    line_panel = next(a for a in fig.axes if a.get_label() == "lines")
    assert len(line_panel.lines) == len(A.named_layers(names).index) == (6 if n == 6 else 3)


def test_randomness_figure_300_layers_and_compare():
    names = NAMES[300]
    rng = np.random.default_rng(1)
    res = A.cosine_randomness(
        np.arange(1, 9), rng.uniform(-0.01, 0.01, (8, 300)), np.full(300, 4096), names
    )
    with style.theme():
        assert_no_overlap(pr.draw_randomness(res))
        fig = pr.draw_randomness([res, res], labels=["adam", "sgd"])
        assert_no_overlap(fig)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["adam", "sgd"]


def assert_panels_apart(fig) -> int:
    """No two panels' boxes (axes with their tick labels, labels, titles and colour bars)
    intersect, figure legends and the suptitle touch no panel, and all lie inside the
    figure. Returns how many boxes were checked."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [a.get_tightbbox(r) for a in fig.axes if a.get_visible()]
    boxes += [leg.get_window_extent(r) for leg in fig.legends]
    boxes += [t.get_window_extent(r) for t in fig.texts if t.get_text()]
    page = Bbox.from_bounds(0, 0, fig.bbox.width, fig.bbox.height).expanded(1.001, 1.001)
    for b in boxes:
        assert page.contains(b.x0, b.y0) and page.contains(b.x1, b.y1), f"{b} leaves the figure"
    for a, b in itertools.combinations(boxes, 2):
        inter = Bbox.intersection(a, b)
        assert inter is None or inter.width < 1.0 or inter.height < 1.0, f"{a} meets {b}"
    return len(boxes)


def _records(names, steps=12):
    rng = np.random.default_rng(2)
    n = len(names)
    mean = 10 ** rng.uniform(-4, 1, (steps, n))
    st = np.arange(1, steps + 1)
    rnd = A.cosine_randomness(st, rng.uniform(-0.01, 0.01, (steps, n)), np.full(n, 4096), names)
    rng_ = A.stepsize_range(st, 0.01 * mean, 10 * mean, names)
    return A.stepsize_profile(st, mean, 2.5 * mean, names), rng_, rnd


@pytest.mark.parametrize("n", [6, 62, 300])
def test_panels_never_meet(n):
    """The one-pass layout leaves room for every panel's labels, titles and colour bar."""
    names = NAMES[n]
    prof, rng_, rnd = _records(names)
    nl = A.named_layers(names)
    with style.theme():
        figs = [
            ps.draw_stepsize_profile(prof, named=nl),
            ps.draw_stepsize_range(rng_, named=nl),
            pr.draw_randomness(rnd, named=nl),
            pr.draw_randomness([rnd, rnd], ["adam", "a run with a long name"], named=nl),
            ps.draw_stepsize_profile([prof, prof], ["adam", "sgd"], named=nl),
        ]
        for fig in figs:
            assert assert_panels_apart(fig) >= 2
            assert_no_overlap(fig)


def test_layout_is_fixed_before_render():
    """png_bytes lays the figure out once and removes the engine: the saved figure is drawn
    once, at the positions the layout chose."""
    names = NAMES[62]
    prof, _, _ = _records(names)
    with style.theme():
        fig = ps.draw_stepsize_profile(prof, named=A.named_layers(names))
        assert isinstance(fig.get_layout_engine(), style.GridLayout)
        png = style.png_bytes(fig)
        assert fig.get_layout_engine() is None and png[:4] == b"\x89PNG"
        pos = [a.get_position().bounds for a in fig.axes]
        style.png_bytes(fig)
        assert [a.get_position().bounds for a in fig.axes] == pos
        assert_panels_apart(fig)


def _step_length(names, steps=60):
    rng = np.random.default_rng(3)
    norm = 10 ** rng.uniform(-4, -1, (steps, len(names)))
    return A.step_length(np.arange(1, steps + 1), norm, names, window=20)


def _examplewise(names, steps=10):
    rng = np.random.default_rng(4)
    n = len(names)
    var = 10 ** rng.uniform(-3, 0, (steps, n))
    g2 = 10 ** rng.uniform(-4, -1, (steps, n))
    return A.examplewise_profile(
        np.arange(1, steps + 1),
        np.full(steps, 32),
        names,
        variance=var,
        grad_norm_sq=g2,
        gsnr=g2 / var,
        norm_test=np.sqrt(var / (32 * g2)),
        inner_product_test=np.sqrt(var / (32 * g2)),
        orthogonality_test=np.sqrt(var / (32 * g2)),
        network={
            "variance": var.sum(1),
            "grad_norm_sq": g2.sum(1),
            "gsnr": (g2 / var).mean(1),
            "norm_test": np.sqrt(var.sum(1) / (32 * g2.sum(1))),
            "inner_product_test": np.sqrt(var.sum(1) / (32 * g2.sum(1))),
            "orthogonality_test": np.sqrt(var.sum(1) / (32 * g2.sum(1))),
        },
    )


@pytest.mark.parametrize("n", [6, 62, 300])
def test_step_length_and_examplewise_heatmaps_scale(n):
    """Step length and GSNR get a layer x step heatmap of every layer (the values drawn are
    the record's), labelled like the others, above the panels of named layers."""
    from gradscope.plot import examplewise as pe
    from gradscope.plot import steplength as psl

    names = NAMES[n]
    nl = A.named_layers(names)
    sl, ex = _step_length(names), _examplewise(names)
    with style.theme():
        for fig, rec in (
            (psl.draw_step_length(sl, named=nl), sl.layer_norm),
            (pe.draw_examplewise(ex, named=nl.names), ex.gsnr),
        ):
            heat = next(a for a in fig.axes if a.get_label() == "heat")
            drawn = np.ma.filled(heat.collections[0].get_array(), np.nan).reshape(n, -1)
            np.testing.assert_allclose(drawn, rec.T)
            assert assert_no_overlap(fig) > 0
            assert assert_panels_apart(fig) >= 4
            shown = _labels(heat.yaxis)
            assert len(shown) == n if n == 6 else len(shown) >= min(n // 3, 40)


@pytest.mark.parametrize("n", [6, 62, 300])
def test_titles_clear_the_labels_above_their_panel(n):
    """Titles are placed by the layout, not by matplotlib: every visible title sits above
    its panel and above the tick labels drawn over the panel (the depth profile's module
    names on its top axis), and within the figure."""
    names = NAMES[n]
    with style.theme():
        fig = ps.draw_stepsize_profile(_profile(names), named=A.named_layers(names))
        style.png_bytes(fig)
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lifted = 0
    for ax in fig.axes:
        if not ax.get_title():
            continue
        title = ax.title.get_window_extent(renderer)
        tops = [ax.get_window_extent(renderer).y1]
        for child in ax.child_axes:
            tops += [t.get_window_extent(renderer).y1 for t in _labels(child.xaxis)]
        assert title.y0 >= max(tops) - 0.5, ax.get_title()
        assert title.y1 <= fig.bbox.y1 + 0.5
        lifted += len(tops) > 1
    assert lifted >= 1  # the depth profile has module names above it
