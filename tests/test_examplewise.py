"""Tests for gradscope.examplewise against a brute-force autograd loop and NumPy (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from gradscope.errors import GradscopeError, UnsupportedLayerError
from gradscope.examplewise import (
    ExamplewiseMoments,
    examplewise_moments,
    layer_stats,
    network_stats,
    per_example_grads,
    set_grads_from_moments,
    sq_mean_by_param,
)

# torch.func has no batching rule for CPU scaled-dot-product attention and says so.
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")

DT = torch.float64
ATOL = 1e-12


# --------------------------------------------------------------------------- models


class Residual(nn.Module):
    """Residual MLP block with LayerNorm, a frozen parameter and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(5, 6)
        self.block = nn.Sequential(nn.LayerNorm(6), nn.Linear(6, 6), nn.GELU(), nn.Linear(6, 6))
        self.head = nn.Linear(6, 3)
        self.scale = nn.Parameter(torch.full((6,), 0.7), requires_grad=False)
        self.register_buffer("shift", torch.linspace(-0.3, 0.3, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        h = h + self.scale * self.block(h) + self.shift
        return self.head(h)


class CellRNN(nn.Module):
    """LSTMCell unrolled over time: the torch.func-friendly recurrent net."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(3, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], 4)
        c = h
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.head(h)


class FusedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 4, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(
            d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True
        )
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(x).mean(1))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.a(x)) * self.b(z)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def cnn_bn_eval() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)
    )
    net.train()
    net(torch.randn(16, 2, 8, 8))  # non-trivial running statistics
    return net.eval()


def classification(shape: tuple[int, ...]):
    def make(n: int) -> tuple[torch.Tensor, ...]:
        return torch.randn(n, *shape, dtype=DT), torch.randint(0, 3, (n,))

    return make


def two_input_batch(n: int) -> tuple[torch.Tensor, ...]:
    return torch.randn(n, 4, dtype=DT), torch.randn(n, 3, dtype=DT), torch.randn(n, 2, dtype=DT)


CASES = {
    "mlp": (mlp, classification((5,)), F.cross_entropy),
    "cnn": (cnn, classification((2, 8, 8)), F.cross_entropy),
    "residual": (Residual, classification((5,)), F.cross_entropy),
    "lstm_cell": (CellRNN, classification((4, 3)), F.cross_entropy),
    "transformer": (Attention, classification((5, 8)), F.cross_entropy),
    "batchnorm_eval": (cnn_bn_eval, classification((2, 8, 8)), F.cross_entropy),
    "two_inputs_mse": (TwoInputs, two_input_batch, F.mse_loss),
}


def setup(name: str, n: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    make_model, make_batch, loss_fn = CASES[name]
    model = make_model().to(DT)
    return model, loss_fn, make_batch(n)


def brute_force(model: nn.Module, loss_fn, *batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Slow oracle: one ordinary backward per example."""
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    out: dict[str, list[torch.Tensor]] = {k: [] for k, _ in named}
    for b in range(batch[0].shape[0]):
        model.zero_grad(set_to_none=True)
        one = [t[b : b + 1] for t in batch]
        loss_fn(model(*one[:-1]), one[-1]).backward()
        for k, p in named:
            out[k].append(p.grad.clone())
    model.zero_grad(set_to_none=True)
    return {k: torch.stack(v) for k, v in out.items()}


def batch_grad(model: nn.Module, loss_fn, *batch: torch.Tensor) -> tuple[dict, float]:
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(*batch[:-1]), batch[-1])
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return grads, loss.item()


def assert_dicts_close(a: dict, b: dict, atol: float = ATOL, rtol: float = 0.0) -> None:
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol, msg=k)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", list(CASES))
def test_per_example_grads_match_autograd_loop(name: str) -> None:
    model, loss_fn, batch = setup(name)
    got = per_example_grads(model, loss_fn, *batch)
    want = brute_force(model, loss_fn, *batch)
    assert_dicts_close(got, want)
    for k, p in model.named_parameters():
        if p.requires_grad:
            assert got[k].shape == (6, *p.shape)


@pytest.mark.parametrize("name", list(CASES))
def test_moments_mean_is_minibatch_gradient(name: str) -> None:
    model, loss_fn, batch = setup(name)
    want, loss = batch_grad(model, loss_fn, *batch)
    moments = examplewise_moments(model, loss_fn, *batch, chunk_size=4)
    assert_dicts_close(moments.mean, want)
    assert moments.loss.item() == pytest.approx(loss, abs=ATOL)

    set_grads_from_moments(model, moments)
    got = {k: p.grad for k, p in model.named_parameters() if p.requires_grad}
    assert_dicts_close(got, want)
    # a copy: an in-place change of p.grad (clipping, ...) leaves the record intact
    next(iter(got.values())).mul_(0.0)
    assert_dicts_close(moments.mean, want)


def test_frozen_parameters_and_buffers() -> None:
    model, loss_fn, batch = setup("residual")
    grads = per_example_grads(model, loss_fn, *batch)
    assert "scale" not in grads
    assert "shift" not in grads
    assert set(grads) == {k for k, p in model.named_parameters() if p.requires_grad}


def test_moments_match_numpy() -> None:
    model, loss_fn, batch = setup("residual", n=7)
    g = brute_force(model, loss_fn, *batch)
    moments = examplewise_moments(model, loss_fn, *batch, chunk_size=3)
    for k, gk in g.items():
        a = gk.numpy()
        np.testing.assert_allclose(moments.mean[k].numpy(), a.mean(0), rtol=0, atol=ATOL)
        np.testing.assert_allclose(moments.sq_mean[k].numpy(), (a**2).mean(0), rtol=0, atol=ATOL)
        np.testing.assert_allclose(moments.var[k].numpy(), a.var(0, ddof=1), rtol=0, atol=ATOL)
        gbar = a.mean(0).ravel()
        np.testing.assert_allclose(
            moments.dots[k].numpy(), a.reshape(7, -1) @ gbar, rtol=0, atol=ATOL
        )


def test_per_example_grads_chunked_equals_unchunked() -> None:
    model, loss_fn, batch = setup("cnn", n=7)
    full = per_example_grads(model, loss_fn, *batch)
    for chunk in (1, 3, 100):
        assert_dicts_close(per_example_grads(model, loss_fn, *batch, chunk_size=chunk), full)


def assert_moments_close(a: ExamplewiseMoments, b: ExamplewiseMoments) -> None:
    assert a.batch_size == b.batch_size
    for field in ("mean", "sq_mean", "var", "dots"):
        assert_dicts_close(getattr(a, field), getattr(b, field), atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("name", ["residual", "lstm_cell"])
def test_moments_independent_of_chunking(name: str) -> None:
    model, loss_fn, batch = setup(name, n=8)
    full = examplewise_moments(model, loss_fn, *batch)
    for chunk in (1, 3, 8):
        assert_moments_close(examplewise_moments(model, loss_fn, *batch, chunk_size=chunk), full)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 9), chunk=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_chunking_property(n: int, chunk: int, seed: int) -> None:
    model, loss_fn, batch = setup("mlp", n=n, seed=seed)
    full = examplewise_moments(model, loss_fn, *batch)
    part = examplewise_moments(model, loss_fn, *batch, chunk_size=chunk)
    if n == 1:  # var is NaN for one example; compare the rest
        assert all(torch.isnan(v).all() for v in part.var.values())
        assert_dicts_close(part.mean, full.mean, atol=1e-13)
        assert_dicts_close(part.sq_mean, full.sq_mean, atol=1e-13)
    else:
        assert_moments_close(part, full)


def test_batch_of_one_sq_mean_is_mean_squared() -> None:
    model, loss_fn, batch = setup("residual", n=1)
    moments = examplewise_moments(model, loss_fn, *batch)
    for k in moments.mean:
        assert torch.equal(moments.sq_mean[k], moments.mean[k] ** 2)
        assert torch.isnan(moments.var[k]).all()
    stats = network_stats(moments)
    for value in (stats.variance, stats.gsnr, stats.norm_test, stats.inner_product_test):
        assert torch.isnan(value)


def test_dtype_and_device_follow_parameters() -> None:
    torch.manual_seed(0)
    model = mlp()  # float32
    x, y = torch.randn(5, 5), torch.randint(0, 3, (5,))
    moments = examplewise_moments(model, F.cross_entropy, x, y, chunk_size=2)
    for k, p in model.named_parameters():
        for field in (moments.mean, moments.sq_mean, moments.var):
            assert field[k].dtype == torch.float32
            assert field[k].shape == p.shape
        assert moments.dots[k].shape == (5,)


# --------------------------------------------------------------------------- statistics


def numpy_stats(per_example: list[np.ndarray]) -> dict[str, float]:
    """Cockpit's definitions, written out on the stacked (B, n) per-example gradients."""
    g = np.concatenate([a.reshape(a.shape[0], -1) for a in per_example], axis=1)
    b = g.shape[0]
    gbar = g.mean(0)
    norm2 = gbar @ gbar
    var = g.var(0, ddof=1)
    variance = var.sum()
    pos = var > 0
    proj = g @ gbar
    var_proj = ((proj**2).sum() - b * norm2**2) / (b - 1)
    var_ortho = ((g**2).sum() - (proj**2).sum() / norm2) / (b - 1)
    return {
        "variance": variance,
        "grad_norm_sq": norm2,
        "gsnr": np.mean(gbar[pos] ** 2 / var[pos]),
        "norm_test": np.sqrt(variance / b / norm2),
        "inner_product_test": np.sqrt(var_proj / b / norm2**2),
        "orthogonality_test": np.sqrt(var_ortho / b / norm2),
    }


def assert_stats(got, want: dict[str, float], numel: int) -> None:
    assert got.numel == numel
    for field, value in want.items():
        assert float(getattr(got, field)) == pytest.approx(value, rel=1e-9, abs=1e-12), field


@pytest.mark.parametrize("chunk", [None, 4])
def test_stats_match_numpy(chunk: int | None) -> None:
    model, loss_fn, batch = setup("residual", n=9)
    model.block[1].bias.requires_grad_(False)  # frozen inside a layer: skipped everywhere
    g = {k: v.numpy() for k, v in brute_force(model, loss_fn, *batch).items()}
    moments = examplewise_moments(model, loss_fn, *batch, chunk_size=chunk)

    per_layer = layer_stats(moments)
    assert list(per_layer) == list(g)
    for k, a in g.items():
        assert_stats(per_layer[k], numpy_stats([a]), a[0].size)
    assert_stats(
        network_stats(moments), numpy_stats(list(g.values())), sum(a[0].size for a in g.values())
    )


def test_gsnr_skips_zero_variance_coordinates() -> None:
    # With ReLU, dead units have zero gradient for every example: var = 0 there.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)).to(DT)
    with torch.no_grad():
        model[0].bias[:3] = -100.0  # three dead units ...
        model[0].bias[3:] = 100.0  # ... and three always active
    x, y = torch.randn(8, 3, dtype=DT), torch.randint(0, 2, (8,))
    moments = examplewise_moments(model, F.cross_entropy, x, y)
    var = moments.var["0.weight"]
    assert (var[:3] == 0).all()
    assert (var[3:] > 0).all()
    m = moments.mean["0.weight"][3:]
    want = (m**2 / var[3:]).mean()
    torch.testing.assert_close(layer_stats(moments)["0.weight"].gsnr, want, atol=0, rtol=1e-12)


def test_without_projections() -> None:
    model, loss_fn, batch = setup("mlp", n=6)
    with_p = examplewise_moments(model, loss_fn, *batch, chunk_size=2)
    moments = examplewise_moments(model, loss_fn, *batch, chunk_size=2, projections=False)
    assert moments.dots is None
    stats = network_stats(moments)
    assert stats.inner_product_test is None
    assert stats.orthogonality_test is None
    torch.testing.assert_close(stats.norm_test, network_stats(with_p).norm_test)


# --------------------------------------------------------------------------- layers


def test_batchnorm_train_raises_with_module_name() -> None:
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    x, y = torch.randn(6, 4), torch.randint(0, 2, (6,))
    with pytest.raises(UnsupportedLayerError, match=r"1 \(BatchNorm1d\).*model\.eval\(\)") as err:
        examplewise_moments(net, F.cross_entropy, x, y)
    assert "GroupNorm" in str(err.value)
    assert isinstance(err.value, GradscopeError)
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnsupportedLayerError, match="BatchNorm1d"):
        per_example_grads(net, F.cross_entropy, x, y)
    net.eval()
    assert examplewise_moments(net, F.cross_entropy, x, y).batch_size == 6


def test_batchnorm_without_running_stats_still_raises() -> None:
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, track_running_stats=False))
    with pytest.raises(UnsupportedLayerError, match="BatchNorm1d"):
        per_example_grads(net, F.mse_loss, torch.randn(3, 4), torch.randn(3, 5))


def test_instancenorm_with_running_stats_in_training_raises() -> None:
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.InstanceNorm1d(3, track_running_stats=True))
    x, y = torch.randn(4, 2, 6), torch.randn(4, 3, 4)
    with pytest.raises(UnsupportedLayerError, match=r"1 \(InstanceNorm1d\).*track_running_stats"):
        per_example_grads(net, F.mse_loss, x, y)
    net[1] = nn.InstanceNorm1d(3)  # per-example statistics only: fine
    assert per_example_grads(net, F.mse_loss, x, y)["0.weight"].shape == (4, 3, 2, 3)


def test_fused_lstm_is_unsupported_with_clear_error() -> None:
    # torch 2.13: aten::lstm/gru/rnn have no vmap batching rule and the fallback fails.
    torch.manual_seed(0)
    model = FusedLSTM().to(DT)
    x, y = torch.randn(4, 5, 3, dtype=DT), torch.randint(0, 3, (4,))
    with pytest.raises(UnsupportedLayerError, match=r"rnn \(LSTM\).*LSTMCell"):
        examplewise_moments(model, F.cross_entropy, x, y)


def test_dropout_uses_different_masks_per_example() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.5), nn.Linear(32, 2)).to(DT)
    x = torch.randn(1, 4, dtype=DT).expand(6, 4)  # six copies of one example
    y = torch.zeros(6, dtype=torch.long)
    grads = per_example_grads(model, F.cross_entropy, x, y)["0.weight"]
    assert torch.isfinite(grads).all()
    assert not torch.allclose(grads[0], grads[1])  # independent masks
    model.eval()
    grads = per_example_grads(model, F.cross_entropy, x, y)["0.weight"]
    torch.testing.assert_close(grads, grads[:1].expand_as(grads), atol=1e-15, rtol=0)


def test_dropout_second_pass_replays_masks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 3))
    model = model.to(DT)
    x, y = torch.randn(7, 4, dtype=DT), torch.randint(0, 3, (7,))

    torch.manual_seed(1)
    moments = examplewise_moments(model, F.cross_entropy, x, y, chunk_size=2)
    after_two_passes = torch.get_rng_state()
    # sum_b <g_b, gbar> = B ||gbar||^2 only if both passes saw the same masks
    for k, mean in moments.mean.items():
        torch.testing.assert_close(
            moments.dots[k].sum(), 7 * mean.square().sum(), atol=1e-12, rtol=1e-12
        )
    # replaying does not shift the generator: same stream as a single pass
    torch.manual_seed(1)
    single = examplewise_moments(model, F.cross_entropy, x, y, chunk_size=2, projections=False)
    assert torch.equal(torch.get_rng_state(), after_two_passes)
    assert_dicts_close(single.mean, moments.mean, atol=0)
    # and the brute-force stats oracle holds for the replayed pass
    stats = network_stats(moments)
    assert float(stats.orthogonality_test) <= float(stats.norm_test) + 1e-12


# --------------------------------------------------------------------------- hand-over


def test_sq_mean_by_param_pairs_model_parameters() -> None:
    model, loss_fn, batch = setup("residual")
    moments = examplewise_moments(model, loss_fn, *batch)
    pairs = sq_mean_by_param(model, moments)
    trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    assert len(pairs) == len(trainable)
    for (p, sq), (k, q) in zip(pairs, trainable):
        assert p is q
        assert sq is moments.sq_mean[k]
        assert (sq >= moments.mean[k] ** 2 - 1e-15).all()  # Jensen: E g^2 >= (E g)^2
    with pytest.raises(ValueError, match="does not have"):
        sq_mean_by_param(mlp(), moments)
    unfrozen = Residual().to(DT).requires_grad_(True)  # "scale" now trainable, not in moments
    with pytest.raises(ValueError, match=r"lack trainable parameters.*scale"):
        set_grads_from_moments(unfrozen, moments)


@pytest.mark.parametrize(
    ("batch", "kwargs", "match"),
    [
        ((torch.randn(4, 5),), {}, "at least 2"),
        ((torch.randn(4, 5), torch.randint(0, 3, (3,))), {}, "leading dimension"),
        ((torch.randn(4, 5), 3), {}, "batch element 1"),
        ((torch.randn(4, 5), torch.randint(0, 3, (4,))), {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_arguments(batch, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        examplewise_moments(mlp(), F.cross_entropy, *batch, **kwargs)


def test_unreduced_loss_is_rejected() -> None:
    x, y = torch.randn(4, 5), torch.randn(4, 3)
    with pytest.raises(ValueError, match="mean-reduced"):
        per_example_grads(mlp(), lambda o, t: F.mse_loss(o, t, reduction="none"), x, y)


def test_works_inside_no_grad() -> None:
    # optimizer hooks may run under torch.no_grad(); torch.func.grad ignores the outer one
    model, loss_fn, batch = setup("mlp")
    want, _ = batch_grad(model, loss_fn, *batch)
    with torch.no_grad():
        moments = examplewise_moments(model, loss_fn, *batch, chunk_size=4)
    assert_dicts_close(moments.mean, want)


@pytest.mark.parametrize("chunk", [None, 8])
def test_float32_variance_avoids_cancellation(chunk: int | None) -> None:
    # Gradients with a large common part and a tiny spread (GSNR ~ 1e7): sq_mean - mean**2
    # loses everything in float32, the centred pairwise M2 keeps ~4 digits.
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = 10 + 1e-3 * torch.randn(64, 3)
    y = -5 + 1e-3 * torch.randn(64, 1)
    f32 = examplewise_moments(model, F.mse_loss, x, y, chunk_size=chunk)
    f64 = examplewise_moments(model.to(DT), F.mse_loss, x.to(DT), y.to(DT), chunk_size=chunk)
    want = f64.var["weight"]
    rel = ((f32.var["weight"].to(DT) - want) / want).abs().max()
    naive = (f32.sq_mean["weight"] - f32.mean["weight"] ** 2) * 64 / 63
    assert rel < 1e-3
    assert ((naive.to(DT) - want) / want).abs().max() > 1e-2  # the problem is real


@pytest.mark.parametrize("n", [1, 7])
def test_rowwise_cpu_path_matches_vectorized(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    from gradscope import examplewise

    model, loss_fn, batch = setup("cnn", n=n)
    monkeypatch.setattr(examplewise, "_ROWWISE_MIN_NUMEL", 1 << 62)  # always vectorized
    vectorized = examplewise_moments(model, loss_fn, *batch, chunk_size=3)
    monkeypatch.setattr(examplewise, "_ROWWISE_MIN_NUMEL", 0)  # always row by row
    rowwise = examplewise_moments(model, loss_fn, *batch, chunk_size=3)
    if n == 1:
        for k in rowwise.mean:
            assert torch.equal(rowwise.sq_mean[k], rowwise.mean[k] ** 2)
        assert_dicts_close(rowwise.mean, vectorized.mean, atol=0)
    else:
        assert_moments_close(rowwise, vectorized)


def test_default_chunk_bounds_the_per_example_gradients_kept(monkeypatch) -> None:
    """chunk_size=None keeps at most AUTO_CHUNK_BYTES of per-example gradients at once: with
    a budget of 3 examples the batch of 8 runs in chunks of 3, 3, 2 (twice, for the
    projections) and gives the one-chunk result."""
    import gradscope.examplewise as ew

    model, loss_fn, batch = setup("residual", n=8)
    full = examplewise_moments(model, loss_fn, *batch, chunk_size=8)
    per_example = sum(p.numel() * p.element_size() for p in model.parameters())
    monkeypatch.setattr(ew, "AUTO_CHUNK_BYTES", 3 * per_example + per_example // 2)
    seen: list[int] = []
    real = ew._Examplewise.__call__

    def spying(self, chunk):
        seen.append(chunk[0].shape[0])
        return real(self, chunk)

    monkeypatch.setattr(ew._Examplewise, "__call__", spying)
    assert_moments_close(examplewise_moments(model, loss_fn, *batch), full)
    assert seen == [3, 3, 2, 3, 3, 2]
    monkeypatch.setattr(ew, "AUTO_CHUNK_BYTES", 1)  # smaller than one example: one at a time
    seen.clear()
    examplewise_moments(model, loss_fn, *batch, projections=False)
    assert seen == [1] * 8
