"""FSDP2 (``fully_shard``) and hand-built DTensor parameters on 2 gloo processes.

Rank 0's file is compared with an unsharded single-process run of the same model from the
same initial weights on the union of the two ranks' batches (FSDP2 averages the gradients,
so both runs follow one trajectory up to float32 rounding), and, for parameters built by
hand with ``distribute_tensor`` (Shard(1) with uneven slices, Replicate, an empty slice),
with the bitwise identical unsharded run and with NumPy float64 on the global tensors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gradscope.record import Recorder
from gradscope.runfile import RunFile
from gradscope.runfile import schema as S
from tests.helpers.processes import free_port

from .fsdp_cases import (
    GRADSCOPE_ON_FSDP,
    dtensor_values,
    gradscope_optimizer,
    make_mlp,
    mlp_batch,
    plain_module,
    sgd_for,
    two_optimizers,
)

pytestmark = pytest.mark.slow  # starts two gloo ranks

CHILD = str(Path(__file__).resolve().parent / "fsdp_child.py")
MOMENTS = ("mean", "std", "norm", "min", "max")


def ranks(mode: str, out: Path, world: int = 2) -> list[subprocess.Popen[str]]:
    port = free_port()
    return [
        subprocess.Popen(
            [sys.executable, CHILD, mode, str(out), str(r), str(world), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The 2-rank run (FSDP2 MLP, then the hand-built DTensors) and the unsharded references."""
    out = tmp_path_factory.mktemp("fsdp")
    procs = ranks("fsdp", out)
    # meanwhile, in this process: the unsharded references
    torch.manual_seed(0)
    model = make_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Recorder(model, opt, out / "ref.h5", sample=5) as rec:
        for t in range(1, 9):
            x, y = mlp_batch(t)  # the union of both ranks' halves
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            rec.log_loss(loss)
            opt.step()
    module, grads = plain_module()
    opt = sgd_for(module)
    with Recorder(module, opt, out / "dref.h5", sample=7) as rec:
        for p, g in zip(module.parameters(), grads):
            p.grad = g
        opt.step()
    model = make_mlp()
    opts = two_optimizers(model)
    with Recorder(model, opts, out / "mref.h5", sample=5) as rec:
        for t in range(1, 5):
            x, y = mlp_batch(t)
            for o in opts:
                o.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            for o in opts:
                o.step()
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
    return out


def columns(run: RunFile, names: list[str]) -> list[int]:
    return [run.layer_index(n) for n in names]


def test_rank0_file_has_the_unsharded_layers(sharded):
    with RunFile(sharded / "fsdp.h5") as a, RunFile(sharded / "ref.h5") as b:
        assert sorted(a.layers) == sorted(b.layers)
        assert a.shapes == b.shapes  # full shapes, not the local slices
        assert a.shapes["0.weight"] == (9, 6)
        assert a.metadata["world_size"] == 2 and a.metadata["rank"] == 0
        assert a.quantities == b.quantities
        np.testing.assert_array_equal(a.steps, np.arange(1, 9))
    # (gs-ref-*.h5 are the unsharded references other tests of this module write)
    written = sorted(p.name for p in sharded.glob("*.h5") if not p.name.startswith("gs-ref-"))
    assert written == sorted(
        ["dref.h5", "dtensor.h5", "fail.h5", "fsdp.h5", "mref.h5", "multi.h5", "ref.h5"]
        + [f"gs-{name}.h5" for name in GRADSCOPE_ON_FSDP]
    )  # rank 1 wrote nothing, the refused recorders created nothing


def test_fsdp_statistics_equal_the_unsharded_run(sharded):
    with RunFile(sharded / "fsdp.h5") as a, RunFile(sharded / "ref.h5") as b:
        cols = columns(a, b.layers)
        # the loss: the mean of the two halves' mean losses = the union's mean loss
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
        for q in b.quantities:
            scale = b.summary(q, "norm") / np.sqrt(b.sizes)  # the layer's rms
            for st in (*MOMENTS, *S.QUANTILE_STATS):
                got, want = a.summary(q, st)[:, cols], b.summary(q, st)
                # relative to the value, or to the rms where it cancels (a mean near 0)
                err = np.abs(got - want) / np.maximum(np.abs(want), scale)
                # Adam's m/(sqrt(v)+eps) of a coordinate whose gradient changes sign
                # magnifies the gradients' float32 rounding (1.3e-5 measured at one update
                # coordinate): its extremes get 5e-5
                tol = 5e-5 if (q, st) in {("update", "min"), ("update", "max")} else 1e-5
                assert np.nanmax(err) < tol, (q, st, np.nanmax(err))
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            ha, hb = a.histogram(q)[:, cols], b.histogram(q)
            np.testing.assert_array_equal(ha.sum(axis=2), hb.sum(axis=2))  # = layer sizes
            np.testing.assert_array_equal(ha.sum(axis=2)[0], b.sizes)
            # a coordinate may cross a bin edge by float32 rounding: at most 2 moves per row
            assert np.abs(ha - hb).sum(axis=2).max() <= 4
            np.testing.assert_array_equal(a.summary(q, "nonfinite")[:, cols], 0.0)
        for q in ("grad", "update"):
            np.testing.assert_allclose(a.cosine(q)[1:, cols], b.cosine(q)[1:], atol=1e-5)
            assert np.isnan(a.cosine(q)[0]).all()
        np.testing.assert_array_equal(a.layer_steps()[:, cols], b.layer_steps())


def test_two_optimizers_and_the_generic_path_equal_the_unsharded_run(sharded):
    """Adam on the weights, a user's Lion (the generic path: no stepsize, the update from a
    snapshot of the sharded parameters) on the biases."""
    with RunFile(sharded / "multi.h5") as a, RunFile(sharded / "mref.h5") as b:
        cols = columns(a, b.layers)
        assert a.quantities == b.quantities
        assert "lion_m" in a.quantities  # Lion's own state entry
        assert np.isnan(a.summary("stepsize", "mean", "0.bias")).all()  # none on Lion's
        np.testing.assert_array_equal(a.layer_optimizers[cols], b.layer_optimizers)
        np.testing.assert_array_equal(a.steps, np.arange(1, 5))
        for q in b.quantities:
            scale = b.summary(q, "norm") / np.sqrt(b.sizes)
            for st in MOMENTS:
                got, want = a.summary(q, st)[:, cols], b.summary(q, st)
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
                err = np.abs(got - want) / np.maximum(np.abs(want), scale)
                assert np.nanmax(err, initial=0.0) < 5e-5, (q, st, np.nanmax(err))


def test_fsdp_subsample_equals_the_unsharded_run(sharded):
    with RunFile(sharded / "fsdp.h5") as a, RunFile(sharded / "ref.h5") as b:
        assert a.sample_quantities == b.sample_quantities == ["grad", "stepsize", "update"]
        np.testing.assert_array_equal(a.sample_steps, b.sample_steps)
        for layer in b.layers:
            ix = a.sample_index(layer)
            np.testing.assert_array_equal(ix, b.sample_index(layer))  # global flat indices
            assert ix.size == min(5, int(np.prod(b.shapes[layer])))
            for q in b.sample_quantities:
                got, want = a.subsample(q, layer), b.subsample(q, layer)
                assert np.isfinite(got).all()
                scale = np.abs(want).max()
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-6 * scale)


def test_hand_built_dtensors_equal_the_unsharded_run_exactly(sharded):
    """Shard(1) with 4 + 3 columns, Replicate, a one-row Shard(0) (rank 1 empty): the same
    float32 inputs on both sides, so every count and sample is identical and the moments
    agree to float64 rounding."""
    with RunFile(sharded / "dtensor.h5") as a, RunFile(sharded / "dref.h5") as b:
        assert a.layers == b.layers == ["w", "r", "e"]
        assert a.shapes == {"w": (4, 7), "r": (3, 5), "e": (1, 3)}
        sharding = a.metadata["sharding"]
        assert sharding["mesh_shape"] == [2]
        assert sharding["placements"] == {
            "w": ["Shard(dim=1)"],
            "r": ["Replicate()"],
            "e": ["Shard(dim=0)"],
        }
        assert "sharding" not in b.metadata
        for q in b.quantities:
            for st in S.STATS:
                got, want = a.summary(q, st), b.summary(q, st)
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
                np.testing.assert_allclose(got, want, rtol=1e-13, err_msg=f"{q} {st}")
            np.testing.assert_array_equal(a.histogram(q), b.histogram(q))
        for q in b.sample_quantities:
            for layer in b.layers:
                np.testing.assert_array_equal(a.sample_index(layer), b.sample_index(layer))
                np.testing.assert_array_equal(a.subsample(q, layer), b.subsample(q, layer))
        np.testing.assert_array_equal(a.eps_dominated(), b.eps_dominated())


def test_hand_built_dtensors_against_numpy_float64(sharded):
    vals = dtensor_values()
    with RunFile(sharded / "dtensor.h5") as a:
        for name, (p0, g) in vals.items():
            g64 = g.double().numpy().reshape(-1)
            fin = g64[np.isfinite(g64)]
            want = [fin.mean(), fin.std(), np.sqrt(np.sum(fin**2)), fin.min(), fin.max()]
            got = [a.summary("grad", st, name)[0] for st in MOMENTS]
            np.testing.assert_allclose(got, want, rtol=1e-12)
            assert a.summary("grad", "nonfinite", name)[0] == pytest.approx(1 - fin.size / g64.size)
            # the parameter after SGD's first step (momentum buffer = grad), in float32
            p1 = p0.clone().add_(g, alpha=-0.1).double().numpy().reshape(-1)
            fin = p1[np.isfinite(p1)]
            want = [fin.mean(), fin.std(), np.sqrt(np.sum(fin**2)), fin.min(), fin.max()]
            got = [a.summary("param", st, name)[0] for st in MOMENTS]
            np.testing.assert_allclose(got, want, rtol=1e-12)
        # "w" holds a NaN and an inf of 28 coordinates; its histogram counts them
        assert a.summary("grad", "nonfinite", "w")[0] == pytest.approx(2 / 28)
        assert a.histogram("grad", "w")[0, -1] == 2
        np.testing.assert_array_equal(a.histogram("grad").sum(axis=2)[0], [28, 15, 3])


def test_global_index_of_shard1_matches_dtensor_slicing(sharded):
    for rank in range(2):
        got = np.load(sharded / f"box{rank}.npy")
        want = np.load(sharded / f"index{rank}.npy")  # DTensor's own local slice of arange
        np.testing.assert_array_equal(got, want)
    assert np.load(sharded / "index0.npy").size == 16  # 4 rows x 4 of the 7 columns
    assert np.load(sharded / "index1.npy").size == 12


def test_full_dumps_and_per_rank_files_are_refused_under_sharding(sharded):
    for rank in range(2):
        refused = json.loads((sharded / f"refused{rank}.json").read_text())
        assert refused["full"].startswith("ValueError: full_every")
        assert refused["per_rank"].startswith("UnsupportedLayerError: per_rank=True")


def test_a_write_failure_on_rank0_stops_every_rank_at_one_step(sharded):
    """Rank 0's writer fails at step 3: the failure rides in step 4's reduction, both ranks
    stop recording there (neither waits in a collective the other never joins), training
    runs to its end, and the file keeps the rows written before the failure."""
    r0 = json.loads((sharded / "fail0.json").read_text())
    r1 = json.loads((sharded / "fail1.json").read_text())
    assert r0["trained"] == r1["trained"] == 6  # both trained to the end
    assert not r0["recording"] and not r1["recording"]
    (w0,), (w1,) = r0["warnings"], r1["warnings"]
    assert "stopped at step 4" in w0 and "boom: disk gone" in w0
    assert "stopped at step 4" in w1 and "rank(s) 0 stopped recording" in w1
    with RunFile(sharded / "fail.h5") as run:
        np.testing.assert_array_equal(run.steps, [1, 2])


@pytest.mark.parametrize("mode", ["kill", "stall"])
def test_rank0_survives_a_dead_or_stalled_rank1(tmp_path, mode):
    """Rank 1 is SIGKILLed (or SIGSTOPped) in step 6, before the recorder's reduction: rank
    0's reduction fails (connection reset) or times out (collective_timeout=3 s), its
    recording stops and closes the file with steps 1..5, and its training gets control back."""
    procs = ranks(mode, tmp_path)
    r0 = procs[0]
    try:
        line = r0.stdout.readline().strip()
        _, err = r0.communicate(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
    assert line.startswith("stopped at 6 after"), err[-3000:]
    waited = float(line.split()[-2])  # from the end of step 5 to rank 0 getting control
    assert waited < (2.5 if mode == "kill" else 20.0), line
    if mode == "stall":
        assert waited >= 3.0, line  # it waited the collective timeout, not more
    assert "the ranks' reduction failed" in err
    with RunFile(tmp_path / "kill.h5") as run:
        np.testing.assert_array_equal(run.steps, np.arange(1, 6))
        assert np.isfinite(run.summary("grad", "norm")).all()
        assert np.isfinite(run.loss).all()


@pytest.mark.parametrize("name", GRADSCOPE_ON_FSDP)
def test_gradscope_optimizers_step_fsdp2_parameters_as_unsharded(sharded, name):
    """Layer reductions (Aida's projections, AdamL's and LAdam's layer means, SET-Adam's
    sums and minimum) over unevenly sharded DTensors combine over the ranks: the parameters
    after 3 steps equal the unsharded run's, and the recorder records them."""
    model = make_mlp()
    opt = gradscope_optimizer(name, model.parameters())
    with Recorder(model, opt, sharded / f"gs-ref-{name}.h5", sample=0) as rec:
        for t in range(1, 4):
            x, y = mlp_batch(t)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            rec.log_loss(loss)
            opt.step()
    got = np.load(sharded / f"gs-{name}.npz")
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(got[k], v.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    with RunFile(sharded / f"gs-{name}.h5") as a, RunFile(sharded / f"gs-ref-{name}.h5") as b:
        assert a.steps.tolist() == b.steps.tolist() == [1, 2, 3]
        for q in ("grad", "stepsize", "update"):
            for stat in ("mean", "norm"):
                np.testing.assert_allclose(
                    a.summary(q, stat)[:, columns(a, list(b.layers))],
                    b.summary(q, stat),
                    rtol=1e-4,
                    atol=1e-7,
                    err_msg=f"{q} {stat}",
                )
