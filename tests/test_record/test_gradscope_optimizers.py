"""Every gradscope optimizer is recorded through the introspection API (docs/design.md, rule 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradscope.optim import OPTIMIZERS
from gradscope.record import Recorder
from gradscope.runfile import RunFile
from gradscope.runfile import schema as S

from .record_oracles import np_full


class Backwards(nn.Module):
    """Declares its output layer first, so column order (forward) != optimizer order."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(6, 2)
        self.inp = nn.Linear(4, 6)

    def forward(self, x):
        return self.out(torch.tanh(self.inp(x)))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_recorded_update_is_parameter_change_and_stats_match(tmp_path, spy, name, layer_path):
    torch.manual_seed(0)
    model = Backwards()
    opt = OPTIMIZERS[name](model.parameters(), lr=1e-2)
    path = tmp_path / f"{name}.h5"
    g = torch.Generator().manual_seed(0)
    with Recorder(model, opt, path, full_every=1, full_quantities=("update", "param")):
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(8, 4, generator=g)).pow(2).mean().backward()
            if name == "eve":  # Eve consumes per-example second moments; B = 1 here
                opt.set_examplewise({p: p.grad.square() for p in model.parameters()}, 1)
            opt.step()
    names = {id(p): n for n, p in model.named_parameters()}
    with RunFile(path) as run:
        assert run.layers == ["inp.weight", "inp.bias", "out.weight", "out.bias"]
        assert run.metadata["optimizer"]["class"].startswith("gradscope.optim")
        for layer in run.layers:
            p, u = run.full("param", layer), run.full("update", layer)
            assert p.shape[1:] == run.shapes[layer]
            np.testing.assert_allclose(p[2] - p[1], u[2], rtol=1e-4, atol=1e-7)
        for t, rows in enumerate(spy):
            rows = {names[r["param_id"]]: r for r in rows}
            for layer in run.layers:
                for q in S.QUANTITIES:
                    x = np_full(rows[layer][q], run.shapes[layer])
                    got = [run.summary(q, s, layer)[t] for s in ("mean", "norm", "min", "max")]
                    if x is None:
                        assert np.isnan(got).all()
                        continue
                    want = [x.mean(), np.linalg.norm(x), x.min(), x.max()]
                    np.testing.assert_allclose(
                        got, want, rtol=1e-5, atol=1e-6 * np.abs(x).max(), err_msg=f"{q} {layer}"
                    )
                    if np.ndim(rows[layer][q]) == 0:
                        assert run.summary(q, "std", layer)[t] == 0
