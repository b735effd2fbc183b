"""Recorder end to end: every stored number against a NumPy recomputation of what the
optimizer reported, schedules, failure policy and model coverage."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from gradscope.errors import RunFileError, UnsupportedLayerError
from gradscope.record import Recorder, every, first
from gradscope.runfile import RunFile
from gradscope.runfile import schema as S

from .record_oracles import assert_in_bin, np_bins, np_full


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


def train(model, opt, rec, steps, *, batch=32, nan_at=None, loss_log=True):
    g = torch.Generator().manual_seed(1)
    n_in = getattr(model, "_orig_mod", model)[0].in_features  # also under torch.compile
    losses = []
    for t in range(1, steps + 1):
        x = torch.randn(batch, n_in, generator=g)
        y = torch.randint(0, 3, (batch,), generator=g)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if nan_at is not None and t == nan_at:
            model[2].weight.grad[0, :3] = float("nan")
            model[2].weight.grad[1, 0] = float("inf")
        if loss_log and rec is not None:
            rec.log_loss(loss)
        losses.append(loss.item())
        opt.step()
    return losses


def by_name(model, spy_rows):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[r["param_id"]]: r for r in spy_rows}


def np_stats(x):
    x = x.ravel()
    fin = x[np.isfinite(x)]
    return np.array(
        [fin.mean(), fin.std(), np.linalg.norm(fin), fin.min(), fin.max(), 1 - fin.size / x.size]
    )


def cos(a, b):
    return float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_adam_every_summary_matches_numpy(tmp_path, spy, layer_path):
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    path = tmp_path / "run.h5"
    with Recorder(
        model,
        opt,
        path,
        every=1,
        hist_every="same",
        sample=50,
        sample_every="same",
        seed=7,
        tags={"exp": "oracle"},
    ) as rec:
        losses = train(model, opt, rec, 6)
    assert len(spy) == 6
    run = RunFile(path)
    assert run.layers == ["0.weight", "0.bias", "2.weight", "2.bias"]
    np.testing.assert_array_equal(run.steps, np.arange(1, 7))
    np.testing.assert_allclose(run.loss, losses, rtol=1e-6)
    np.testing.assert_allclose(run.lr, 1e-2)
    assert run.metadata["tags"] == {"exp": "oracle"}
    assert run.metadata["optimizer"]["class"].endswith("Adam")
    assert run.metadata["model"]["order"] == "forward"
    assert run.hist_recorded.all()
    shapes = run.shapes
    prev = {}
    for t, rows in enumerate(spy):
        rows = by_name(model, rows)
        for li, name in enumerate(run.layers):
            n = int(np.prod(shapes[name]))
            assert run.sizes[li] == n
            for q in S.QUANTITIES:
                x = np_full(rows[name][q], shapes[name])
                got = run.summary(q, "mean", name)[t]
                st = np.array([run.summary(q, s, name)[t] for s in S.MOMENT_STATS])
                want = np_stats(x)
                np.testing.assert_allclose(
                    st[[0, 2, 3, 4, 5]],
                    want[[0, 2, 3, 4, 5]],
                    rtol=1e-5,
                    atol=1e-6 * np.abs(x).max(),
                    err_msg=f"{q} {name} {t}",
                )
                np.testing.assert_allclose(st[1], want[1], rtol=1e-3, atol=1e-9)
                assert got == st[0]
                spec = S.HIST_SPECS[q]
                h = run.histogram(q, name)[t]
                np.testing.assert_array_equal(
                    h, np.bincount(np_bins(x, spec), minlength=spec.n_bins)
                )
                assert h.sum() == n
                edges = spec.edges()
                for level, stat in zip(S.QUANTILE_LEVELS, S.QUANTILE_STATS):
                    est = run.summary(q, stat, name)[t]
                    assert_in_bin(est, x.astype(np.float32), level, edges)
            for q in ("grad", "update"):
                c = run.cosine(q, name)[t]
                if t == 0:
                    assert np.isnan(c)
                else:
                    assert c == pytest.approx(cos(rows[name][q], prev[name, q]), rel=1e-4, abs=1e-6)
                prev[name, q] = rows[name][q]
            ix = run.sample_index(name)
            assert len(ix) == min(50, n) and np.all(np.diff(ix) > 0)
            for q in ("grad", "update", "stepsize"):
                np.testing.assert_allclose(
                    run.subsample(q, name)[t],
                    np_full(rows[name][q], shapes[name]).ravel()[ix],
                    rtol=1e-6,
                )
    # histograms add across steps: summing per-step counts = binning all steps together
    spec = S.HIST_SPECS["grad"]
    allg = np.concatenate([by_name(model, r)["0.weight"]["grad"].ravel() for r in spy])
    np.testing.assert_array_equal(
        run.histogram("grad", "0.weight").sum(0),
        np.bincount(np_bins(allg, spec), minlength=spec.n_bins),
    )
    run.close()


def test_same_seed_same_indices_other_seed_other(tmp_path):
    idx = []
    for seed, name in [(3, "a"), (3, "b"), (4, "c")]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with Recorder(model, opt, tmp_path / f"{name}.h5", sample=20, seed=seed):
            train(model, opt, None, 2)
        with RunFile(tmp_path / f"{name}.h5") as run:
            idx.append(run.sample_index("0.weight"))
            assert run.metadata["seed"] == seed
    np.testing.assert_array_equal(idx[0], idx[1])
    assert not np.array_equal(idx[0], idx[2])


def test_sgd_layerwise_stepsize_and_missing_moments(tmp_path, spy, layer_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with Recorder(model, opt, tmp_path / "sgd.h5") as rec:
        train(model, opt, rec, 3)
    with RunFile(tmp_path / "sgd.h5") as run:
        assert np.isnan(run.summary("exp_avg_sq", "mean")).all()
        assert (run.histogram("exp_avg_sq") == 0).all()
        u = run.summary("stepsize", "mean")
        assert np.isfinite(u).all()
        np.testing.assert_array_equal(run.summary("stepsize", "std"), 0.0)
        np.testing.assert_array_equal(run.summary("stepsize", "min"), u)
        np.testing.assert_array_equal(run.histogram("stepsize").sum(-1), np.tile(run.sizes, (3, 1)))
        np.testing.assert_allclose(
            run.summary("update", "norm"), 0.05 * run.summary("grad", "norm"), rtol=1e-5
        )


def test_schedules_select_rows(tmp_path, spy):
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    path = tmp_path / "s.h5"
    with Recorder(
        model,
        opt,
        path,
        every=2,
        hist_every=every(4),
        sample_every=first(3),
        full_every=every(5),
        full_quantities=("grad", "exp_avg_sq"),
    ) as rec:
        train(model, opt, rec, 10)
    with RunFile(path) as run:
        np.testing.assert_array_equal(run.steps, [2, 4, 6, 8, 10])
        np.testing.assert_array_equal(run.hist_recorded, [False, True, False, True, False])
        assert np.isnan(run.summary("grad", "q50")[0]).all()
        assert np.isfinite(run.summary("grad", "q50")[1]).all()
        assert (run.histogram("grad")[0] == 0).all()
        np.testing.assert_array_equal(run.sample_steps, [1, 2, 3])
        np.testing.assert_array_equal(run.full_steps, [5, 10])
        names = {id(p): n for n, p in model.named_parameters()}
        called = [1, 2, 3, 4, 5, 6, 8, 10]  # union of the four schedules
        assert len(spy) == len(called)
        at = dict(zip(called, spy))
        for k, t in enumerate([5, 10]):
            rows = {names[r["param_id"]]: r for r in at[t]}
            for name in run.layers:
                np.testing.assert_allclose(run.full("grad", name)[k], rows[name]["grad"], rtol=1e-6)
                np.testing.assert_allclose(
                    run.full("exp_avg_sq", name)[k], rows[name]["exp_avg_sq"], rtol=1e-6
                )
        # cosine between *recorded* rows (steps 2 and 4), not successive optimizer steps
        r2 = {names[r["param_id"]]: r for r in at[2]}
        r4 = {names[r["param_id"]]: r for r in at[4]}
        assert run.cosine("grad", "2.bias")[1] == pytest.approx(
            cos(r4["2.bias"]["grad"], r2["2.bias"]["grad"]), rel=1e-4
        )


def test_nan_gradients_recorded_and_counted(tmp_path, spy, layer_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, opt, tmp_path / "nan.h5") as rec:
        train(model, opt, rec, 3, nan_at=2)
    with RunFile(tmp_path / "nan.h5") as run:
        frac = run.summary("grad", "nonfinite", "2.weight")
        assert frac[0] == 0 and frac[1] == pytest.approx(4 / 48)
        assert run.histogram("grad", "2.weight")[1, -1] == 4
        g = by_name(model, spy[1])["2.weight"]["grad"]
        np.testing.assert_allclose(
            run.summary("grad", "mean", "2.weight")[1], g[np.isfinite(g)].mean(), rtol=1e-5
        )
        assert run.summary("grad", "nonfinite", "0.weight")[1] == 0
        # the NaN reached the parameter: later rows count it in param
        assert run.summary("param", "nonfinite", "2.weight")[1] > 0


def test_closure_loss_is_logged(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    losses = []

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.item())
        return loss

    with Recorder(model, opt, tmp_path / "c.h5"):
        for _ in range(3):
            opt.step(closure)
        opt.step(closure=closure)
    with RunFile(tmp_path / "c.h5") as run:
        np.testing.assert_allclose(run.loss, losses, rtol=1e-6)


def test_existing_file_refused(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"keep me")
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RunFileError, match="overwrite=True"):
        Recorder(model, opt, path)
    assert path.read_bytes() == b"keep me"
    with Recorder(model, opt, path, overwrite=True) as rec:
        train(model, opt, rec, 2)
    assert RunFile(path).n_rows == 2


def test_unwritable_path_warns_once_and_training_continues(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    bad = tmp_path / "missing-dir" / "run.h5"
    with pytest.warns(RuntimeWarning, match="recording to .* stopped") as record:
        rec = Recorder(model, opt, bad)
        losses = train(model, opt, rec, 4)
        rec.close()
    assert len([w for w in record if "gradscope" in str(w.message)]) == 1
    assert len(losses) == 4 and not rec.recording
    assert not bad.exists()


def test_unwritable_path_strict_raises(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RunFileError, match="does not exist"):
        Recorder(model, opt, tmp_path / "missing-dir" / "run.h5", strict=True)


def _disk_full(monkeypatch):
    from gradscope.runfile import writer as W

    calls = {"n": 0}
    real = W.RunWriter._write_summary_block

    def flaky(self, rows):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(28, "No space left on device")
        return real(self, rows)

    monkeypatch.setattr(W.RunWriter, "_write_summary_block", flaky)


def test_disk_full_midway_warns_once_keeps_file_valid(tmp_path, monkeypatch):
    _disk_full(monkeypatch)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "full.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(model, opt, path, flush_every=4) as rec:
            losses = train(model, opt, rec, 20)
    msgs = [w for w in caught if "gradscope" in str(w.message)]
    assert len(msgs) == 1 and "No space left" in str(msgs[0].message)
    assert len(losses) == 20
    with RunFile(path) as run:
        np.testing.assert_array_equal(run.steps, [1, 2, 3, 4])


def test_disk_full_strict_raises_into_training(tmp_path, monkeypatch):
    _disk_full(monkeypatch)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, tmp_path / "full.h5", flush_every=1, strict=True)
    with pytest.raises(RunFileError, match="No space left"):
        train(model, opt, rec, 20)
    rec.close()


def test_training_exception_propagates_and_file_stays_valid(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ZeroDivisionError):
        with Recorder(model, opt, tmp_path / "e.h5") as rec:
            train(model, opt, rec, 3)
            1 / 0  # noqa: B018
    assert RunFile(tmp_path / "e.h5").n_rows == 3
    assert not opt._optimizer_step_post_hooks and not opt._optimizer_step_pre_hooks


def test_parameter_outside_model_is_named_in_error(tmp_path):
    model = mlp()
    stray = nn.Parameter(torch.zeros(7, 2))
    opt = torch.optim.SGD([*model.parameters(), stray], lr=0.1)
    with pytest.raises(
        UnsupportedLayerError, match=r"shape \(7, 2\).*not a parameter of the model"
    ):
        Recorder(model, opt, tmp_path / "x.h5")


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)  # declared first, used last
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = ResBlock(4)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.lstm = nn.LSTM(8, 8, num_layers=2, batch_first=True)
        self.enc = nn.TransformerEncoderLayer(
            8, 2, dim_feedforward=16, batch_first=True, dropout=0.0
        )
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        return self.out(self.enc(h).mean(1))


@pytest.mark.parametrize(
    ("make", "data"),
    [
        (ResNet, lambda: torch.randn(4, 1, 6, 6)),
        (Seq, lambda: torch.randint(0, 11, (4, 5))),
    ],
)
def test_models_every_parameter_recorded(tmp_path, make, data, layer_path):
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    path = tmp_path / "m.h5"
    with Recorder(model, opt, path) as rec:
        for _ in range(2):
            opt.zero_grad()
            loss = model(data()).pow(2).mean()
            loss.backward()
            rec.log_loss(loss)
            opt.step()
    with RunFile(path) as run:
        names = [n for n, _ in model.named_parameters()]
        assert sorted(run.layers) == sorted(names)
        for q in ("grad", "exp_avg", "exp_avg_sq", "stepsize", "update", "param"):
            assert np.isfinite(run.summary(q, "mean")).all(), q
            np.testing.assert_array_equal(run.histogram(q).sum(-1), np.tile(run.sizes, (2, 1)))
        fr = dict(zip(run.layers, run.metadata["model"]["layers"]))
        assert all(fr[n]["forward_rank"] >= 0 for n in names)
        if make is ResNet:
            assert run.layers[0] == "stem.weight" and run.layers[-1] == "head.bias"
        else:
            assert run.layers[0] == "emb.weight" and run.layers[-1] == "out.bias"


def test_no_hooks_left_and_double_close(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, tmp_path / "h.h5")
    train(model, opt, rec, 1)
    rec.close()
    rec.close()
    assert not opt._optimizer_step_post_hooks
    assert all(not m._forward_pre_hooks for m in model.modules())
    train(model, opt, rec, 2)  # no longer recorded
    assert RunFile(tmp_path / "h.h5").n_rows == 1


def test_unreadable_optimizer_refused_at_construction(tmp_path):
    from gradscope.errors import UnsupportedOptimizerError

    class NotAnOptimizer:
        param_groups: ClassVar[list] = []

    model = mlp()
    opt = NotAnOptimizer()
    with pytest.raises(UnsupportedOptimizerError, match="NotAnOptimizer"):
        Recorder(model, opt, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_strict_close_error_does_not_mask_training_exception(tmp_path, monkeypatch):
    _disk_full(monkeypatch)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match="closing"), pytest.raises(KeyError, match="mine"):
        with Recorder(model, opt, tmp_path / "s.h5", flush_every=4, strict=True) as rec:
            train(model, opt, rec, 6)  # block 1 written; rows 5-6 fail only at close
            raise KeyError("mine")


@pytest.mark.slow  # torch.compile
@pytest.mark.parametrize("wrap", ["compile", "compile-fullgraph"])
def test_compiled_model_records_as_eager(tmp_path, wrap):
    """torch.compile (dynamo + AOTAutograd, no C++ build) records the same run as eager.

    Names carry no ``_orig_mod.`` prefix, the forward-order hooks survive tracing (with
    ``fullgraph=True``, so they cause no graph break), and every statistic equals the
    eager run's to float rounding.
    """
    runs = {}
    for kind in ("eager", wrap):
        model = mlp()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        run_model = model
        if kind != "eager":
            torch._dynamo.reset()
            run_model = torch.compile(
                model, backend="aot_eager", fullgraph=kind.endswith("fullgraph")
            )
        path = tmp_path / f"{kind}.h5"
        with Recorder(run_model, opt, path, strict=True) as rec:
            train(run_model, opt, rec, 4)
        runs[kind] = RunFile(path)
    eager, comp = runs["eager"], runs[wrap]
    try:
        assert comp.layers == eager.layers == ["0.weight", "0.bias", "2.weight", "2.bias"]
        np.testing.assert_array_equal(comp.forward_rank, [0, 1, 2, 3])
        np.testing.assert_array_equal(comp.steps, [1, 2, 3, 4])
        np.testing.assert_allclose(comp.loss, eager.loss, rtol=1e-5)
        for q in ("grad", "stepsize", "update"):
            np.testing.assert_allclose(
                comp.summary(q, "norm"), eager.summary(q, "norm"), rtol=1e-4, atol=1e-9
            )
        np.testing.assert_allclose(comp.cosine("grad"), eager.cosine("grad"), atol=1e-4)
    finally:
        eager.close()
        comp.close()


@pytest.mark.slow  # torch.compile
@pytest.mark.parametrize("make_opt", ["torch", "gradscope"])
def test_compiled_optimizer_step_records_as_eager(tmp_path, make_opt):
    """A user-compiled ``opt.step()`` runs the recorder's hooks eagerly (compiler-disabled):

    without that, dynamo traces them and gradscope's optimizer loses its tracking flag.
    The compiled run's rows equal the eager run's.
    """
    import gradscope.optim

    cls = torch.optim.Adam if make_opt == "torch" else gradscope.optim.Adam
    runs = {}
    for kind in ("eager", "compiled"):
        model = mlp()
        opt = cls(model.parameters(), lr=1e-2)
        step = opt.step
        if kind == "compiled":
            torch._dynamo.reset()
            step = torch.compile(opt.step, backend="aot_eager")
        path = tmp_path / f"{kind}.h5"
        g = torch.Generator().manual_seed(1)
        with Recorder(model, opt, path, strict=True) as rec:
            for _ in range(4):
                x, y = torch.randn(32, 12, generator=g), torch.randint(0, 3, (32,), generator=g)
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                rec.log_loss(loss)
                step()
        runs[kind] = RunFile(path)
    eager, comp = runs["eager"], runs["compiled"]
    try:
        np.testing.assert_array_equal(comp.steps, [1, 2, 3, 4])
        np.testing.assert_allclose(comp.loss, eager.loss, rtol=1e-5)
        for q in ("grad", "exp_avg_sq", "stepsize", "update"):
            np.testing.assert_allclose(
                comp.summary(q, "norm"), eager.summary(q, "norm"), rtol=1e-4, atol=1e-9
            )
    finally:
        eager.close()
        comp.close()


@pytest.mark.parametrize("make_opt", ["torch", "gradscope"])
def test_parameter_skipping_a_step_is_missing_there_and_restarts_cosines(
    tmp_path, spy, layer_path, make_opt
):
    """A parameter without a gradient at step 3 is not updated by the optimizer: its row is
    NaN there, its cosine is NaN at steps 3 and 4 (no previous value) and exact again at 5."""
    import gradscope.optim

    cls = torch.optim.Adam if make_opt == "torch" else gradscope.optim.Adam
    model = mlp()
    opt = cls(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    path = tmp_path / "skip.h5"
    with Recorder(model, opt, path, sample=0):
        for t in range(1, 6):
            x, y = torch.randn(32, 12, generator=g), torch.randint(0, 3, (32,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if t == 3:
                model[2].bias.grad = None
            before = model[2].bias.detach().clone()
            opt.step()
            if t == 3:
                assert torch.equal(model[2].bias, before)  # the optimizer skipped it
    with RunFile(path) as run:
        li = run.layer_index("2.bias")
        for q in S.QUANTITIES:
            assert np.isnan(run.summary(q, "mean")[2, li]), q
            assert np.isfinite(run.summary(q, "mean")[[0, 1, 3, 4], li]).all(), q
        assert run.histogram("grad", "2.bias")[2].sum() == 0
        cg = run.cosine("grad", "2.bias")
        assert np.isnan(cg[[0, 2, 3]]).all()
        rows = [by_name(model, r)["2.bias"] for r in spy if "2.bias" in by_name(model, r)]
        assert len(rows) == 4  # steps 1, 2, 4, 5
        assert cg[1] == pytest.approx(cos(rows[1]["grad"], rows[0]["grad"]), rel=1e-5)
        assert cg[4] == pytest.approx(cos(rows[3]["grad"], rows[2]["grad"]), rel=1e-5)
        other = run.cosine("update", "0.bias")
        assert np.isnan(other[0]) and np.isfinite(other[1:]).all()


def test_default_schedules_histograms_and_subsamples(tmp_path):
    """Recorder defaults: summaries every step, histograms and subsamples on their schedules."""
    from gradscope.record import schedules

    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Recorder(model, opt, tmp_path / "d.h5") as rec:
        for _ in range(40):
            opt.zero_grad()
            loss = model(torch.randn(4, 6)).square().mean()
            loss.backward()
            rec.log_loss(loss)
            opt.step()
    with RunFile(tmp_path / "d.h5") as run:
        assert run.steps.tolist() == list(range(1, 41))
        hist_steps = run.steps[run.hist_recorded.astype(bool)].tolist()
        assert hist_steps == [t for t in range(1, 41) if schedules.default_hist()(t)]
        assert hist_steps == [*range(1, 11), 13, 16, 20, 25, 32, 40]
        assert run.sample_steps.tolist() == [1, 2, 3, 9, 10, 31, 32]
