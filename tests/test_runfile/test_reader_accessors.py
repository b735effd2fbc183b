"""RunFile.forward_rank and RunFile.sample_quantities, on written files and a recorded model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradscope.record import Recorder
from gradscope.report.info import has_samples, run_info
from gradscope.runfile import RunFile, RunWriter
from gradscope.runfile import schema as S


def _write(path, layers, **layout_kw):
    lay = S.Layout(layers=layers, n_groups=1, **layout_kw)
    RunWriter(path, lay, {}, block=2).close()
    return path


def test_forward_rank_and_sample_quantities_as_written(tmp_path):
    layers = (
        S.LayerInfo("enc.weight", (4,), 0, 2, 0),
        S.LayerInfo("dec.weight", (3,), 0, 0, 1),
        S.LayerInfo("unused", (2,), 0, 1),  # never in a forward pass: -1
    )
    index = (np.arange(2), np.arange(3), np.arange(1))
    path = _write(
        tmp_path / "a.h5", layers, sample_quantities=("update", "grad"), sample_index=index
    )
    with RunFile(path) as run:
        np.testing.assert_array_equal(run.forward_rank, [0, 1, -1])
        assert run.forward_rank.dtype == np.int64
        # schema order, whatever order the layout listed them in
        assert run.sample_quantities == ["grad", "update"]
        assert has_samples(run, "grad") and not has_samples(run, "stepsize")
    info = run_info(path)
    assert info.forward_rank == (0, 1, -1) and info.sample_quantities == ("grad", "update")


def test_no_subsample_means_no_sample_quantities(tmp_path):
    layers = (S.LayerInfo("w", (4,), 0, 0, 0),)
    none = _write(tmp_path / "none.h5", layers, sample_quantities=())
    # configured, but zero sampled coordinates in every layer: nothing is readable
    empty = _write(tmp_path / "empty.h5", layers, sample_index=(np.zeros(0, dtype=np.int64),))
    for path in (none, empty):
        with RunFile(path) as run:
            assert run.sample_quantities == []
        assert run_info(path).sample_quantities == ()


def test_forward_rank_of_a_recorded_model_follows_the_forward_pass(tmp_path):
    """Parameters declared output-first are ranked by first use: input -> output."""

    class Backwards(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 2)
            self.body = nn.Linear(3, 4)
            self.spare = nn.Linear(2, 2)  # never called

        def forward(self, x):
            return self.head(torch.tanh(self.body(x)))

    torch.manual_seed(0)
    model = Backwards()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, opt, tmp_path / "r.h5", sample=2) as rec:
        for _ in range(2):
            opt.zero_grad()
            model(torch.randn(5, 3)).square().mean().backward()
            opt.step()
    assert rec.step == 2
    with RunFile(tmp_path / "r.h5") as run:
        ranks = dict(zip(run.layers, run.forward_rank.tolist()))
        assert run.layers[:4] == ["body.weight", "body.bias", "head.weight", "head.bias"]
        assert [ranks[n] for n in run.layers[:4]] == [0, 1, 2, 3]
        assert ranks["spare.weight"] == ranks["spare.bias"] == -1
        assert run.sample_quantities == ["grad", "stepsize", "update"]
