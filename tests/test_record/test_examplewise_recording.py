"""Per-example statistics recorded on their own schedule, checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradscope.errors import UnsupportedLayerError
from gradscope.record import Recorder, every
from gradscope.runfile import RunFile


def per_example_numpy(model, x, y):
    """Brute force: one backward per example."""
    grads = {n: [] for n, _ in model.named_parameters()}
    for b in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[b : b + 1]), y[b : b + 1]).backward()
        for n, p in model.named_parameters():
            grads[n].append(p.grad.detach().double().numpy().ravel().copy())
    model.zero_grad()
    return {n: np.stack(g) for n, g in grads.items()}


def test_examplewise_rows_match_brute_force(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "ew.h5"
    want = {}
    with Recorder(model, opt, path, examplewise_every=every(2)) as rec:
        for _ in range(4):
            x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
            brute = per_example_numpy(model, x, y)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            out = rec.record_examplewise(nn.functional.cross_entropy, x, y)
            assert (out is None) == (rec.step % 2 == 0)  # due on steps 2 and 4
            if out is not None:
                want[rec.step + 1] = brute
            opt.step()
    with RunFile(path) as run:
        np.testing.assert_array_equal(run.examplewise_steps, [2, 4])
        np.testing.assert_array_equal(run.examplewise_batch_size(), [8, 8])
        for k, t in enumerate([2, 4]):
            for name in run.layers:
                gb = want[t][name]
                mean = gb.mean(0)
                var = gb.var(0, ddof=1)
                assert run.examplewise("variance", name)[k] == pytest.approx(var.sum(), rel=1e-4)
                assert run.examplewise("grad_norm_sq", name)[k] == pytest.approx(
                    (mean**2).sum(), rel=1e-4
                )
                gsnr = (mean[var > 0] ** 2 / var[var > 0]).mean()
                assert run.examplewise("gsnr", name)[k] == pytest.approx(gsnr, rel=1e-3)
                norm_test = np.sqrt(var.sum() / (8 * (mean**2).sum()))
                assert run.examplewise("norm_test", name)[k] == pytest.approx(norm_test, rel=1e-4)
            allg = np.concatenate([want[t][n] for n in run.layers], axis=1)
            assert run.examplewise("variance", "network")[k] == pytest.approx(
                allg.var(0, ddof=1).sum(), rel=1e-4
            )
            assert np.isfinite(run.examplewise("inner_product_test")[k]).all()


def test_examplewise_batchnorm_is_an_error(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, opt, tmp_path / "bn.h5") as rec:
        with pytest.raises(UnsupportedLayerError):
            rec.record_examplewise(
                nn.functional.cross_entropy, torch.randn(6, 4), torch.randint(0, 2, (6,))
            )
