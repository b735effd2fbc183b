"""Any optimizer is recorded: torch's through exact adapters, the rest through the generic path.

Every test trains a small model for 10 steps with a real optimizer (no mocks) and keeps its
own float64 snapshots of each parameter before and after each step, of its gradient and of
the optimizer state. The recorded grad/update/param norms and means must equal those
snapshots to float32 rounding on every layer and step; the recorded stepsize must equal a
NumPy transcription of the optimizer's rule, and that rule (-lr * u * direction, plus the
decoupled decay) must reproduce the parameter change the step actually made.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gradscope.record import Recorder
from gradscope.report.build import analyze_run
from gradscope.runfile import RunFile

STEPS = 10


def model_and_data(seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    gen = torch.Generator().manual_seed(seed + 1)
    data = [
        (torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen))
        for _ in range(STEPS)
    ]
    return model, data


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy().copy()


def train(model, opts, path, losses_per_step=1, **kw):
    """Train with recording; return the loop's own snapshots per step and parameter name."""
    opts = opts if isinstance(opts, (list, tuple)) else [opts]
    names = {id(p): n for n, p in model.named_parameters()}
    snaps = []
    with Recorder(model, opts if len(opts) > 1 else opts[0], path, sample=0, **kw) as rec:
        for x, y in _data_cache[id(model)]:
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            for k in range(losses_per_step):
                rec.log_loss(loss * (k + 1))
            snap = {"loss": float(loss.detach()) * (losses_per_step + 1) / 2}
            for opt in opts:
                for group in opt.param_groups:
                    for p in group["params"]:
                        st = opt.state.get(p, {})
                        snap[names[id(p)]] = {
                            "before": _np(p),
                            "grad": _np(p.grad),
                            "state_before": {
                                k: _np(v) for k, v in st.items() if torch.is_tensor(v)
                            },
                            "group": group,
                            "opt": opt,
                        }
            for opt in opts:
                opt.step()
            for opt in opts:
                for p in (p for g in opt.param_groups for p in g["params"]):
                    d = snap[names[id(p)]]
                    d["after"] = _np(p)
                    d["state"] = {k: _np(v) for k, v in opt.state[p].items() if torch.is_tensor(v)}
            for opt in opts:
                opt.zero_grad()
            snaps.append(snap)
    return snaps


_data_cache: dict[int, list] = {}


def setup(seed=0):
    model, data = model_and_data(seed)
    _data_cache[id(model)] = data
    return model


def close(a, b, rtol=2e-6, atol=1e-12):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def check_core(run: RunFile, snaps, stats=("mean", "norm")):
    """grad, update, param statistics equal the loop's own snapshots on every layer/step."""
    assert run.n_rows == STEPS
    for c, name in enumerate(run.layers):
        for q, f in (
            ("grad", lambda d: d["grad"]),
            ("update", lambda d: d["after"] - d["before"]),
            ("param", lambda d: d["after"]),
        ):
            want = np.array([[_stat(f(s[name]), st) for st in stats] for s in snaps])
            got = np.stack([run.summary(q, st)[:, c] for st in stats], axis=1)
            # update = x_t - x_{t-1} in float32: relative to the update's own size
            close(got, want, rtol=1e-5 if q == "update" else 2e-6, atol=1e-9)


def _stat(x: np.ndarray, st: str) -> float:
    return {"mean": x.mean, "norm": lambda: np.linalg.norm(x), "min": x.min, "max": x.max}[st]()


# ---------------------------------------------------------------------- exact rules in NumPy
def _g(d, wd_coupled=True):
    """The gradient the rule consumed: s g + wd x_{t-1} (coupled decay)."""
    grp = d["group"]
    g = -d["grad"] if grp.get("maximize") else d["grad"]
    wd = grp.get("weight_decay", 0.0)
    if wd and wd_coupled and not grp.get("decoupled_weight_decay", False):
        g = g + wd * d["before"]
    return g


def rule_adagrad(d, t):
    grp = d["group"]
    u = 1 / ((1 + (t - 1) * grp["lr_decay"]) * (np.sqrt(d["state"]["sum"]) + grp["eps"]))
    return u, -grp["lr"] * u * _g(d)


def rule_rmsprop(d, t):
    grp, st = d["group"], d["state"]
    v = st["square_avg"] - (st["grad_avg"] ** 2 if grp["centered"] else 0)
    u = 1 / (np.sqrt(v) + grp["eps"])
    if grp["momentum"] > 0:
        prev = d["state_before"].get("momentum_buffer", np.zeros_like(u))
        # buf_t = mu buf_{t-1} + u g  and  x_t = x_{t-1} - lr buf_t
        np.testing.assert_allclose(
            st["momentum_buffer"], grp["momentum"] * prev + u * _g(d), rtol=1e-5, atol=1e-7
        )
        return u, -grp["lr"] * st["momentum_buffer"]
    return u, -grp["lr"] * u * _g(d)


def rule_adamax(d, t):
    grp, st = d["group"], d["state"]
    u = 1 / st["exp_inf"]
    return u, -grp["lr"] * u * st["exp_avg"] / (1 - grp["betas"][0] ** t)


def rule_nadam(d, t):
    grp, st = d["group"], d["state"]
    b1, b2 = grp["betas"]
    u = 1 / (np.sqrt(st["exp_avg_sq"] / (1 - b2**t)) + grp["eps"])
    mu = b1 * (1 - 0.5 * 0.96 ** (t * grp["momentum_decay"]))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * grp["momentum_decay"]))
    prod = float(st["mu_product"])
    direction = (1 - mu) / (1 - prod) * _g(d) + mu_next / (1 - prod * mu_next) * st["exp_avg"]
    return u, -grp["lr"] * u * direction + _decoupled(d)


def rule_radam(d, t):
    grp, st = d["group"], d["state"]
    b1, b2 = grp["betas"]
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t > 5:
        r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        u = r * math.sqrt(1 - b2**t) / (np.sqrt(st["exp_avg_sq"]) + grp["eps"])
    else:
        u = np.ones_like(st["exp_avg"])
    return u, -grp["lr"] * u * st["exp_avg"] / (1 - b1**t) + _decoupled(d)


def rule_adadelta(d, t):
    grp, st = d["group"], d["state"]
    acc = d["state_before"].get("acc_delta", np.zeros_like(d["grad"]))
    u = np.sqrt(acc + grp["eps"]) / np.sqrt(st["square_avg"] + grp["eps"])
    return u, -grp["lr"] * u * _g(d)


def rule_adafactor(d, t):
    grp, st = d["group"], d["state"]
    eps1, eps2 = grp["eps"]
    eps1 = np.finfo(np.float32).eps if eps1 is None else eps1
    lr = grp["lr"]
    alpha = max(eps2, np.linalg.norm(d["before"]) / math.sqrt(d["before"].size)) * min(lr, t**-0.5)
    g = -d["grad"] if grp["maximize"] else d["grad"]
    if g.ndim > 1:
        row, col = st["row_var"], st["col_var"]
        var = row @ col / max(row.mean(), eps1)
    else:
        var = st["variance"]
    r = 1 / np.sqrt(np.maximum(var, eps1 * eps1))
    denom = max(1.0, np.linalg.norm(r * g) / (math.sqrt(g.size) * grp["d"]))
    u = alpha / (lr * denom) * r
    return u, -lr * u * g - lr * grp["weight_decay"] * d["before"]


def rule_adam(d, t):
    grp, st = d["group"], d["state"]
    b1, b2 = grp["betas"]
    u = 1 / (np.sqrt(st["exp_avg_sq"] / (1 - b2**t)) + grp["eps"])
    dec = isinstance(d["opt"], torch.optim.AdamW) or grp.get("decoupled_weight_decay")
    extra = -grp["lr"] * grp["weight_decay"] * d["before"] if dec else 0
    return u, -grp["lr"] * u * st["exp_avg"] / (1 - b1**t) + extra


def rule_sgd(d, t):
    grp, st = d["group"], d["state"]
    g = _g(d)
    if grp["momentum"] == 0:
        return np.ones(()), -grp["lr"] * g
    buf = st["momentum_buffer"]
    direction = g + grp["momentum"] * buf if grp["nesterov"] else buf
    return np.ones(()), -grp["lr"] * direction


def _decoupled(d):
    grp = d["group"]
    if grp.get("decoupled_weight_decay") and grp["weight_decay"]:
        return -grp["lr"] * grp["weight_decay"] * d["before"]
    return 0.0


EXACT = [
    (torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1), rule_adagrad),
    (torch.optim.Adagrad, dict(lr=0.1, maximize=True, foreach=True), rule_adagrad),
    (torch.optim.Adagrad, dict(lr=0.1, fused=True), rule_adagrad),
    (torch.optim.RMSprop, dict(lr=0.01), rule_rmsprop),
    (torch.optim.RMSprop, dict(lr=0.01, centered=True, weight_decay=0.1), rule_rmsprop),
    (torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, maximize=True, foreach=True), rule_rmsprop),
    (torch.optim.Adamax, dict(lr=0.02, weight_decay=0.1), rule_adamax),
    (torch.optim.Adamax, dict(lr=0.02, maximize=True, foreach=True), rule_adamax),
    (torch.optim.NAdam, dict(lr=0.02, weight_decay=0.1), rule_nadam),
    (torch.optim.NAdam, dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True), rule_nadam),
    (torch.optim.NAdam, dict(lr=0.02, maximize=True, foreach=True), rule_nadam),
    (torch.optim.RAdam, dict(lr=0.02, weight_decay=0.1), rule_radam),
    (torch.optim.RAdam, dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True), rule_radam),
    (torch.optim.RAdam, dict(lr=0.02, foreach=True), rule_radam),
    (torch.optim.Adadelta, dict(lr=1.0, weight_decay=0.1), rule_adadelta),
    (torch.optim.Adadelta, dict(lr=1.0, maximize=True, foreach=True), rule_adadelta),
    (torch.optim.Adafactor, dict(lr=0.01, weight_decay=0.1), rule_adafactor),
    (torch.optim.Adafactor, dict(lr=0.01, maximize=True, foreach=True), rule_adafactor),
    (torch.optim.Adam, dict(lr=0.02, weight_decay=0.1, fused=True), rule_adam),
    (torch.optim.Adam, dict(lr=0.02, maximize=True, foreach=False), rule_adam),
    (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), rule_sgd),
    (torch.optim.SGD, dict(lr=0.05, weight_decay=0.1, maximize=True), rule_sgd),
    (torch.optim.AdamW, dict(lr=0.02, weight_decay=0.1, foreach=True), rule_adam),
]  # fmt: skip
EXACT_IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in cfg.items())}" for c, cfg, _ in EXACT]


@pytest.mark.parametrize(("cls", "cfg", "rule"), EXACT, ids=EXACT_IDS)
def test_exact_adapter_matches_the_rule_and_the_parameter_change(tmp_path, cls, cfg, rule):
    model = setup()
    opt = cls(model.parameters(), **cfg)
    snaps = train(model, opt, tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        check_core(run, snaps)
        np.testing.assert_array_equal(run.steps, np.arange(1, STEPS + 1))
        assert "stepsize" in run.quantities and not run.unavailable.get("stepsize")
        for t, s in enumerate(snaps, start=1):
            for c, name in enumerate(run.layers):
                d = s[name]
                u, dx = rule(d, t)
                u = np.broadcast_to(u, d["grad"].shape)
                # the rule, with the NumPy u, reproduces the step torch actually took
                actual = d["after"] - d["before"]
                # float32 steps: x_t and x_{t-1} are each rounded to eps32 |x|
                tol = 1e-5 * np.abs(actual).max() + 4 * 2.0**-23 * np.abs(d["before"]).max()
                np.testing.assert_allclose(dx, actual, rtol=1e-4, atol=tol)
                for st in ("mean", "min", "max", "norm"):
                    close(run.summary("stepsize", st)[t - 1, c], _stat(u, st), rtol=2e-5)
    # the analyses run; only what this optimizer lacks is skipped
    an = analyze_run(tmp_path / "run.h5")
    needed = {"stepsizes", "ranges", "randomness_grad", "randomness_update"}
    if isinstance(opt.defaults.get("eps"), float):  # one eps: eps-dominated counts exist
        needed.add("epsilon")
    assert needed.isdisjoint(an.skipped), an.skipped
    with RunFile(tmp_path / "run.h5") as run:
        # every other state entry under its own key, with its own shape
        for key in _own_keys(cls, cfg):
            assert key in run.quantities, (key, run.quantities)
            for t, s in enumerate(snaps):
                for c, name in enumerate(run.layers):
                    v = s[name]["state"].get(key)
                    if v is None:
                        assert np.isnan(run.summary(key, "mean")[t, c])
                    else:
                        close(run.summary(key, "mean")[t, c], v.mean(), rtol=2e-5, atol=1e-12)
                        close(run.summary(key, "max")[t, c], v.max(), rtol=1e-6)


def _own_keys(cls, cfg):
    return {
        torch.optim.Adagrad: ["sum"],
        torch.optim.RMSprop: (["grad_avg"] if cfg.get("centered") else [])
        + (["momentum_buffer"] if cfg.get("momentum") else []),
        torch.optim.Adamax: ["exp_inf"],
        torch.optim.NAdam: ["mu_product"],
        torch.optim.Adadelta: ["acc_delta"],
        torch.optim.Adafactor: ["row_var", "col_var", "variance"],
    }.get(cls, [])


def test_adafactor_factored_moments_keep_their_shapes(tmp_path):
    model = setup()
    opt = torch.optim.Adafactor(model.parameters(), lr=0.01)
    train(model, opt, tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        shapes = run.metadata["quantities"]["state_shapes"]
        w = run.layers.index("0.weight")
        b = run.layers.index("0.bias")
        assert shapes["row_var"][w] == [6, 1] and shapes["col_var"][w] == [1, 4]
        assert shapes["row_var"][b] is None and shapes["variance"][b] == [6]
        assert np.isnan(run.summary("row_var", "mean")[:, b]).all()


# ---------------------------------------------------------------------- generic path
class Lion(torch.optim.Optimizer):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms"), written by a user:
    ``c = b1 m + (1-b1) g``, ``x <- x (1 - lr wd) - lr sign(c)``, ``m <- b2 m + (1-b2) g``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p)
                st["step"] += 1
                m = st["exp_avg"]
                c = m * b1 + p.grad * (1 - b1)
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(c.sign(), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)
        return loss


def test_user_written_lion_is_recorded_without_a_stepsize(tmp_path):
    model = setup()
    opt = Lion(model.parameters(), lr=1e-3, weight_decay=0.1)
    snaps = train(model, opt, tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        check_core(run, snaps, stats=("mean", "norm", "min", "max"))
        assert run.quantities == ["grad", "exp_avg", "update", "param"]
        assert run.unavailable["stepsize"].startswith("stepsize undefined for this optimizer")
        assert "sign" in run.unavailable["stepsize"]
        np.testing.assert_array_equal(run.steps, np.arange(1, STEPS + 1))
        for t, s in enumerate(snaps):
            for c, name in enumerate(run.layers):
                m = s[name]["state"]["exp_avg"]
                close(run.summary("exp_avg", "norm")[t, c], np.linalg.norm(m), rtol=1e-6)
                # Lion moves every coordinate by lr (sign) plus the decay: |dx + lr wd x| = lr
                d = s[name]
                close(np.abs(d["after"] - d["before"] * (1 - 1e-4)), 1e-3, rtol=1e-3)
        assert run.metadata["optimizer"]["path"] == "generic"


def test_rprop_state_entries_under_their_own_keys(tmp_path):
    model = setup()
    opt = torch.optim.Rprop(model.parameters(), lr=0.01)
    snaps = train(model, opt, tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        check_core(run, snaps)
        assert {"prev", "step_size"} <= set(run.quantities) and "stepsize" not in run.quantities
        assert "step_size" in run.unavailable["stepsize"]
        for t, s in enumerate(snaps):
            for c, name in enumerate(run.layers):
                st = s[name]["state"]
                close(run.summary("step_size", "mean")[t, c], st["step_size"].mean(), rtol=1e-6)
                close(run.summary("prev", "norm")[t, c], np.linalg.norm(st["prev"]), rtol=1e-6)


def test_nadam_scalar_state_is_one_value_per_row(tmp_path):
    model = setup()
    opt = torch.optim.NAdam(model.parameters(), lr=0.01)
    snaps = train(model, opt, tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        for t, s in enumerate(snaps):
            for c, name in enumerate(run.layers):
                v = float(s[name]["state"]["mu_product"])
                close(run.summary("mu_product", "mean")[t, c], v, rtol=1e-12)
                assert run.summary("mu_product", "std")[t, c] == 0


def _muon_and_adamw(model):
    matrices = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    return [torch.optim.Muon(matrices, lr=0.02), torch.optim.AdamW(rest, lr=0.01)]


def test_muon_and_adamw_as_a_list(tmp_path):
    model = setup()
    opts = _muon_and_adamw(model)
    snaps = train(model, opts, tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        check_core(run, snaps)
        np.testing.assert_array_equal(run.steps, np.arange(1, STEPS + 1))
        np.testing.assert_array_equal(run.recorder_steps, np.arange(1, STEPS + 1))
        is_matrix = np.array([len(run.shapes[n]) == 2 for n in run.layers])
        np.testing.assert_array_equal(run.layer_optimizers, np.where(is_matrix, 0, 1))
        np.testing.assert_array_equal(run.groups, np.where(is_matrix, 0, 1))  # numbered globally
        meta = run.metadata["optimizer"]
        assert meta["group_optimizer"] == [0, 1] and len(meta["optimizers"]) == 2
        u = run.summary("stepsize", "mean")
        assert np.isnan(u[:, is_matrix]).all() and np.isfinite(u[:, ~is_matrix]).all()
        assert "Muon" in run.metadata["quantities"]["partial"]["stepsize"]
        np.testing.assert_allclose(run.hparam("lr")[0], [0.02, 0.01])
        # Muon's orthogonalized direction O: x_t = x_{t-1} (1 - lr wd) - lr sqrt(max(1, A/B)) O
        for t, s in enumerate(snaps):
            for c in np.nonzero(is_matrix)[0]:
                d = s[run.layers[c]]
                a, b = d["before"].shape
                wd = d["group"]["weight_decay"]
                o = (d["before"] * (1 - 0.02 * wd) - d["after"]) / (0.02 * math.sqrt(max(1, a / b)))
                close(run.summary("orthogonalized", "norm")[t, c], np.linalg.norm(o), rtol=1e-4)
                # Newton-Schulz drives the leading singular values into about 0.68 ... 1.13
                # (torch's quintic coefficients) and none above
                sv = np.linalg.svd(o, compute_uv=False)
                assert 0.6 < sv.max() < 1.2
        # AdamW's layers: the exact stepsize
        for t, s in enumerate(snaps, start=1):
            for c in np.nonzero(~is_matrix)[0]:
                uu, _ = rule_adam(s[run.layers[c]], t)
                close(run.summary("stepsize", "mean")[t - 1, c], uu.mean(), rtol=2e-5)


def test_muon_steps_with_only_one_optimizer_are_completed_on_close(tmp_path):
    """A row is complete when every optimizer stepped; one stepping twice starts the next."""
    model = setup()
    muon, adamw = _muon_and_adamw(model)
    x, y = _data_cache[id(model)][0]
    with Recorder(model, [muon, adamw], tmp_path / "run.h5", sample=0) as rec:
        for _ in range(3):
            nn.functional.cross_entropy(model(x), y).backward()
            muon.step()  # adamw never steps
            muon.zero_grad()
        assert rec.step == 2  # the third row waits for adamw or the next muon step
    with RunFile(tmp_path / "run.h5") as run:
        assert run.n_rows == 3
        np.testing.assert_array_equal(run.steps, [1, 2, 3])


def test_loss_with_accumulation_is_the_mean_over_micro_batches(tmp_path):
    model = setup()
    opt = torch.optim.RMSprop(model.parameters(), lr=0.01)
    snaps = train(model, opt, tmp_path / "run.h5", losses_per_step=3)
    with RunFile(tmp_path / "run.h5") as run:
        # logged loss, 2 loss, 3 loss: the mean is 2 loss
        close(run.loss, [s["loss"] for s in snaps], rtol=1e-6)


def test_explicit_quantities_keep_only_what_exists(tmp_path):
    model = setup()
    opt = Lion(model.parameters(), lr=1e-3)
    with pytest.warns(RuntimeWarning, match="not recording stepsize"):
        train(model, opt, tmp_path / "run.h5", quantities=("grad", "stepsize", "exp_avg"))
    with RunFile(tmp_path / "run.h5") as run:
        assert run.quantities == ["grad", "exp_avg"]
        assert set(run.unavailable) == {"stepsize"}


def test_unrecorded_steps_take_no_snapshot(tmp_path):
    """Generic-path snapshots are taken on recorded steps only."""
    from gradscope.optim import torch_adapters as TA

    model = setup()
    opt = Lion(model.parameters(), lr=1e-3)
    x, y = _data_cache[id(model)][0]
    with Recorder(model, opt, tmp_path / "run.h5", every=3, sample=0):
        taken = []
        for _ in range(6):
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            taken.append(TA._SNAPSHOTS[opt].fresh)
            opt.zero_grad()
    assert taken == [False, False, True, False, False, True]
    assert opt not in TA._SNAPSHOTS and not opt._optimizer_step_pre_hooks  # removed on close


@pytest.mark.parametrize("which", ["lion", "muon+adamw"])
def test_gradscope_analyze_runs_and_says_why_it_skips(tmp_path, which):
    from typer.testing import CliRunner

    from gradscope.cli import app

    model = setup()
    opt = {
        "lion": lambda: Lion(model.parameters(), lr=1e-3),
        "muon+adamw": lambda: _muon_and_adamw(model),
        "adafactor": lambda: torch.optim.Adafactor(model.parameters(), lr=0.01),
    }[which]()
    train(model, opt, tmp_path / "run.h5")
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "run.h5"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    an = analyze_run(tmp_path / "run.h5")
    if which == "lion":
        assert an.skipped["stepsizes"].startswith("stepsize undefined for this optimizer")
        assert an.skipped["ranges"] == an.skipped["stepsizes"]
    else:
        assert "stepsizes" not in an.skipped
    info = CliRunner().invoke(app, ["info", "--json", str(tmp_path / "run.h5")])
    assert info.exit_code == 0, info.output
    if which == "lion":
        assert "stepsize undefined for this optimizer" in info.output


class ShapeShifter(torch.optim.SGD):
    """SGD that also keeps ``aux``: the gradient for small parameters, its row sums for big ones
    (a state entry whose shape differs from the parameter's on some layers only)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for p in (p for g in self.param_groups for p in g["params"]):
            self.state[p]["aux"] = p.grad.sum(dim=-1) if p.numel() > 1 << 16 else p.grad.clone()
        return loss


def test_state_entry_of_own_shape_on_big_layers_only(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 2))  # 90,000 coords
    x, y = torch.randn(4, 300), torch.randint(0, 2, (4,))
    opt = ShapeShifter(model.parameters(), lr=0.01)
    auxes = []
    with Recorder(model, opt, tmp_path / "run.h5", sample=0):
        for _ in range(3):
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            auxes.append({n: _np(opt.state[p]["aux"]) for n, p in model.named_parameters()})
            opt.zero_grad()
    with RunFile(tmp_path / "run.h5") as run:
        assert run.metadata["quantities"]["state_shapes"]["aux"][0] == [300]
        for t, aux in enumerate(auxes):
            for c, name in enumerate(run.layers):
                a = aux[name]
                close(run.summary("aux", "mean")[t, c], a.mean(), rtol=1e-5, atol=1e-12)
                close(run.summary("aux", "norm")[t, c], np.linalg.norm(a), rtol=1e-5)
                assert run.histogram("aux", name)[t].sum() == a.size  # counts its own size
