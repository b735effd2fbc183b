"""Rows carry the optimizer's own t, every param-group hyperparameter, dead and
eps-dominated counts: checked against the training loop's own optimizer state."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

import gradscope.optim as gso
from gradscope.analysis.fit import normalized_update, reference_law
from gradscope.record import Recorder
from gradscope.runfile import RunFile


def iid_steps(params, opt, steps, g):
    """Steps on i.i.d. N(0, 1) gradients (the setting of the exact update laws)."""
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()


@pytest.mark.parametrize("make", [torch.optim.Adam, gso.Adam], ids=["torch", "gradscope"])
def test_attached_late_rows_carry_the_true_t_and_fit_there(tmp_path, make):
    """A recorder attached after 100 steps records t = 101.., and the update law fits at
    that t (KS at sampling level) while the recorder's own count (t = 1..) would not."""
    g = torch.Generator().manual_seed(0)
    w = nn.Parameter(torch.zeros(20_000))
    model = nn.ParameterList([w])
    opt = make([w], lr=1e-3)
    iid_steps([w], opt, 100, g)
    path = tmp_path / "late.h5"
    with Recorder(model, opt, path, sample=4096):
        iid_steps([w], opt, 3, g)
    run = RunFile(path)
    np.testing.assert_array_equal(run.steps, [101, 102, 103])
    np.testing.assert_array_equal(run.recorder_steps, [1, 2, 3])
    np.testing.assert_array_equal(run.layer_steps(), [[101], [102], [103]])
    np.testing.assert_array_equal(run.sample_steps, [101, 102, 103])
    x = normalized_update(run.subsample("update", 0, rows=slice(1, 2))[0], 1e-3)
    ks_true = scipy.stats.kstest(x, reference_law(102, 0.9).cdf).statistic
    ks_count = scipy.stats.kstest(x, reference_law(2, 0.9).cdf).statistic
    assert ks_true < 0.03  # 4096 samples: the 1% critical value is 0.025
    assert ks_count > 0.2


def test_resumed_from_a_checkpoint_and_skipped_layers(tmp_path):
    """A run resumed from a state_dict goes on at the checkpoint's t; a parameter whose
    gradient is None on a step keeps its own t (torch's step skips it)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(8, 4)
    for _ in range(7):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    ckpt = {"model": model.state_dict(), "opt": opt.state_dict()}
    model2 = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model2.load_state_dict(ckpt["model"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["opt"])
    path = tmp_path / "resumed.h5"
    with Recorder(model2, opt2, path, sample=0):
        for k in range(3):
            opt2.zero_grad(set_to_none=True)
            model2(x).square().mean().backward()
            if k == 1:
                model2[1].bias.grad = None  # this step skips 1.bias
            opt2.step()
    run = RunFile(path)
    np.testing.assert_array_equal(run.steps, [8, 9, 10])
    ls = run.layer_steps()
    col = run.layer_index("1.bias")
    np.testing.assert_array_equal(ls[:, col], [8, 8, 9])
    others = [c for c in range(len(run.layers)) if c != col]
    np.testing.assert_array_equal(ls[:, others], np.array([[8], [9], [10]]).repeat(3, 1))
    want = [int(opt2.state[p]["step"]) for p in model2.parameters()]  # the loop's own state
    np.testing.assert_array_equal(ls[-1], [want[i] for i in _param_index(run)])


def _param_index(run):
    return [int(i) for i in run._f["layers/param_index"][()]]


def test_every_group_hyperparameter_per_row(tmp_path):
    """Two groups with their own momentum and eps; OneCycleLR cycles lr and beta1 every
    step: each row holds each group's values right after that step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 2))
    opt = torch.optim.Adam(
        [
            {"params": model[0].parameters(), "eps": 1e-6},
            {"params": model[1].parameters(), "betas": (0.8, 0.99), "weight_decay": 0.1},
        ],
        lr=1e-3,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[1e-2, 2e-2], total_steps=20)
    seen = {k: [] for k in ("lr", "betas.0", "betas.1", "eps", "weight_decay")}
    path = tmp_path / "groups.h5"
    x = torch.randn(16, 6)
    with Recorder(model, opt, path, sample=0, hist_every=None):
        for _ in range(10):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()  # the row is taken here, before the scheduler moves on
            for k in seen:
                key, _, i = k.partition(".")
                seen[k].append([g[key][int(i)] if i else g[key] for g in opt.param_groups])
            sched.step()
    run = RunFile(path)
    assert {"lr", "betas.0", "betas.1", "eps", "weight_decay", "amsgrad"} <= set(run.hparam_names)
    for k, v in seen.items():
        np.testing.assert_allclose(run.hparam(k), np.array(v), rtol=1e-15, err_msg=k)
    assert np.ptp(run.hparam("betas.0")[:, 0]) > 0.01  # the schedule really moved beta1
    np.testing.assert_array_equal(run.hparam("amsgrad"), 0.0)
    per_layer = run.layer_hparam("eps")
    groups = run.groups
    np.testing.assert_allclose(per_layer, np.array(seen["eps"])[:, groups])
    np.testing.assert_allclose(run.lr, run.hparam("lr"))


def test_dead_and_eps_dominated_counts(tmp_path):
    """Input features that are always zero leave their weight columns with v = 0 (dead):
    the zeros of exp_avg_sq and the eps-dominated stepsizes count them exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 7), nn.Tanh(), nn.Linear(7, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    x = torch.randn(32, 10)
    x[:, [2, 5, 6]] = 0.0  # 3 dead inputs: 3 x 7 = 21 dead weights of layer 0
    path = tmp_path / "dead.h5"
    with Recorder(model, opt, path, sample=0, hist_every=lambda t: t % 2 == 0):
        for _ in range(4):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    run = RunFile(path)
    zeros = run.summary("exp_avg_sq", "zeros")
    epsd = run.eps_dominated()
    hist = run.hist_recorded
    np.testing.assert_array_equal(hist, [False, True, False, True])
    assert np.isnan(zeros[~hist]).all() and np.isnan(epsd[~hist]).all()
    want_zero, want_eps = [], []
    for p in model.parameters():
        st = opt.state[p]
        v = st["exp_avg_sq"]
        vhat = v / (1 - 0.999 ** float(st["step"]))
        u = 1.0 / (vhat.sqrt() + 1e-8)
        want_zero.append(int((v == 0).sum()))
        want_eps.append(int((u >= 1 / (1.01 * 1e-8)).sum()))
    cols = _param_index(run)
    np.testing.assert_array_equal(zeros[-1], [want_zero[i] for i in cols])
    np.testing.assert_array_equal(epsd[-1], [want_eps[i] for i in cols])
    assert zeros[-1][0] == 21 and epsd[-1][0] >= 21
    assert np.isnan(run.summary("grad", "zeros")).all()  # counted for exp_avg_sq only


class SGDWithAux(torch.optim.SGD):
    """A user's subclass whose step calls super().step() and then adds state."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for p in (p for g in self.param_groups for p in g["params"]):
            self.state[p]["aux"] = p.grad.clone()
        return loss


def test_subclass_calling_super_step_is_one_step(tmp_path):
    """Once a plain SGD exists, torch has wrapped SGD.step too, so the hooks of a subclass
    fire around both calls: the recorder counts one step and reads the state after the
    whole subclass step (its ``aux`` entry included)."""
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)  # wraps SGD.step
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    opt = SGDWithAux(model.parameters(), lr=0.1)
    path = tmp_path / "sub.h5"
    grads = []
    with Recorder(model, opt, path, sample=0) as rec:
        for _ in range(4):
            opt.zero_grad()
            model(torch.randn(5, 3)).square().mean().backward()
            opt.step()
            grads.append(model[0].weight.grad.double().norm().item())
        assert rec.step == 4
    run = RunFile(path)
    np.testing.assert_array_equal(run.recorder_steps, [1, 2, 3, 4])
    assert "aux" in run.quantities
    col = run.layer_index("0.weight")
    np.testing.assert_allclose(run.summary("aux", "norm")[:, col], grads, rtol=1e-6)


class WithSpare(nn.Module):
    """A module that runs in forward but owns a parameter the loss never touches."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.spare = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return self.lin(x)


def test_a_parameter_the_loss_never_touches_is_unused(tmp_path):
    """Its module ran (so it was seen in forward), but it has no gradient: rank -1, last."""
    torch.manual_seed(0)
    model = WithSpare()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    path = tmp_path / "spare.h5"
    with Recorder(model, opt, path, sample=0):
        for _ in range(2):
            opt.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
    run = RunFile(path)
    assert run.layers == ["lin.weight", "lin.bias", "spare"]
    np.testing.assert_array_equal(run.forward_rank, [0, 1, -1])
