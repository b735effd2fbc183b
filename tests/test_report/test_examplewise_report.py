"""The examplewise analysis on a real recorded run, checked against per-example autograd."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from torch import nn

import gradscope
from gradscope.report.build import analyze_run, build
from gradscope.runfile import RunFile

B = 8


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.text = 0, []

    def handle_starttag(self, tag, attrs):
        self.imgs += tag == "img"

    def handle_data(self, data):
        self.text.append(data)


def brute_force_grads(model, x, y):
    """Per-example gradients by one autograd backward per example, float64 NumPy (B, n)."""
    grads = {n: [] for n, _ in model.named_parameters()}
    for b in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[b : b + 1]), y[b : b + 1]).backward()
        for n, p in model.named_parameters():
            grads[n].append(p.grad.detach().double().numpy().ravel().copy())
    model.zero_grad()
    return {n: np.stack(g) for n, g in grads.items()}


def gsnr(g):
    """mean over coordinates with positive variance of mean_b^2 / Var_b (ddof 1)."""
    mean, var = g.mean(0), g.var(0, ddof=1)
    return float((mean[var > 0] ** 2 / var[var > 0]).mean())


@pytest.fixture(scope="module")
def examplewise_run(tmp_path_factory):
    """Six Adam steps of a small MLP, per-example statistics on every step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    path = tmp_path_factory.mktemp("ew") / "ew.h5"
    brute = {}
    with gradscope.Recorder(model, opt, path, examplewise_every=1, sample=8) as rec:
        for _ in range(6):
            x, y = torch.randn(B, 5, generator=g), torch.randint(0, 3, (B,), generator=g)
            if rec.step + 1 == 4:
                brute = brute_force_grads(model, x, y)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            rec.record_examplewise(nn.functional.cross_entropy, x, y)
            rec.log_loss(loss)
            opt.step()
    return path, brute


def test_report_has_examplewise_figure_csv_and_brute_force_gsnr(examplewise_run, tmp_path):
    path, brute = examplewise_run
    rep = build(path, tmp_path / "rep", formats=("png",))
    an = rep.analysis
    assert "examplewise" not in an.skipped
    names = {p.name for p in rep.files}
    assert {"examplewise.png", "examplewise.csv"} <= names
    e = an.examplewise
    np.testing.assert_array_equal(e.steps, np.arange(1, 7))
    np.testing.assert_array_equal(e.batch_size, B)
    assert e.layers == ("0.weight", "0.bias", "2.weight", "2.bias")

    # step 4 (row 3): recorded, analysed and exported GSNR == brute force
    want = {n: gsnr(brute[n]) for n in e.layers}
    want_net = gsnr(np.concatenate([brute[n] for n in e.layers], axis=1))
    with RunFile(path) as run:
        k = int(np.flatnonzero(run.examplewise_steps == 4)[0])
        for n in e.layers:
            assert run.examplewise("gsnr", n)[k] == pytest.approx(want[n], rel=1e-4)
        assert run.examplewise("gsnr", "network")[k] == pytest.approx(want_net, rel=1e-4)
    np.testing.assert_allclose(e.gsnr[3], [want[n] for n in e.layers], rtol=1e-4)
    assert e.network_gsnr[3] == pytest.approx(want_net, rel=1e-4)
    with (rep.out / "examplewise.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 * 4
    for r in rows:
        if r["step"] == "4":
            assert float(r["gsnr"]) == pytest.approx(want[r["layer"]], rel=1e-4)
            assert float(r["network_gsnr"]) == pytest.approx(want_net, rel=1e-4)
    # norm test (Byrd et al.): sqrt(sum Var / (B ||gbar||^2)), and its headline fraction
    allg = np.concatenate([brute[n] for n in e.layers], axis=1)
    nt = np.sqrt(allg.var(0, ddof=1).sum() / (B * (allg.mean(0) ** 2).sum()))
    assert e.network_norm_test[3] == pytest.approx(nt, rel=1e-4)
    frac = float(np.mean(e.network_norm_test > 1.0))
    assert e.network_fraction_too_small == pytest.approx(frac)
    key = "steps with batch too small (network norm test > 1)"
    assert rep.headline[key] == pytest.approx(frac)
    assert rep.headline["median network GSNR"] == pytest.approx(np.median(e.network_gsnr))

    summary = json.loads((rep.out / "summary.json").read_text())
    assert summary["examplewise"]["layers"]["0.weight"]["rows_tested"] == 6
    page = _Imgs()
    page.feed(rep.html.read_text())
    # stepsizes, range, two randomness tests, fits, moments, examplewise
    assert page.imgs == 7 and "Per-example gradient statistics" in page.text


def test_examplewise_chunks_windows_and_thinning(examplewise_run):
    path, _ = examplewise_run
    one = analyze_run(path)
    many = analyze_run(path, chunk=4)
    np.testing.assert_array_equal(one.examplewise.gsnr, many.examplewise.gsnr)
    np.testing.assert_array_equal(one.examplewise.n_too_small, many.examplewise.n_too_small)
    thin = analyze_run(path, max_points=2)
    assert thin.examplewise.steps.tolist() == [1, 6]
    # counts use every row
    np.testing.assert_array_equal(thin.examplewise.n_tested, one.examplewise.n_tested)
    part = analyze_run(path, layers=["2.weight"], steps=(2, 3))
    assert part.examplewise.layers == ("2.weight",)
    np.testing.assert_array_equal(part.examplewise.gsnr, one.examplewise.gsnr[1:3, 2:3])
    # the network series stay those of the whole network
    np.testing.assert_array_equal(part.examplewise.network_gsnr, one.examplewise.network_gsnr[1:3])


def test_examplewise_skipped_with_reason(adam_run):
    an = analyze_run(adam_run)
    assert an.examplewise is None
    assert "recorded no per-example statistics" in an.skipped["examplewise"]
