"""Ranks of the FSDP2 recorder tests (not a test module).

Usage: python fsdp_child.py MODE OUT RANK WORLD PORT

Modes:
  fsdp   an MLP sharded per layer and at the root (``fully_shard``), torch Adam, 8 steps on
         this rank's half of each global batch, recorded to OUT/fsdp.h5; the refusals of
         full dumps and per-rank files (OUT/refused<rank>.json); parameters built by hand
         with ``distribute_tensor`` (Shard(1) with uneven slices, Replicate, Shard(0) with
         an empty slice), one SGD step recorded to OUT/dtensor.h5; each rank's global flat
         indices of a Shard(1) tensor (OUT/index<rank>.npy, OUT/box<rank>.npy); a write
         failure injected on rank 0 at step 3 (OUT/fail.h5, OUT/fail<rank>.json); torch
         Adam on the weights and Rprop (the generic path) on the biases (OUT/multi.h5).
  kill   rank 1 SIGKILLs itself in step 6 before the recorder's reduction; rank 0 prints
         "stopped at <t> after <s> s" once its recording stopped, and exits.
  stall  the same with SIGSTOP: rank 0's reduction times out (collective_timeout=3).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from fsdp_cases import (  # noqa: E402
    DTENSOR_SPECS,
    GLOBAL_BATCH,
    GRADSCOPE_ON_FSDP,
    dtensor_module,
    gradscope_optimizer,
    make_mlp,
    mlp_batch,
    sgd_for,
    two_optimizers,
)
from torch import nn  # noqa: E402

from gradscope.record import Recorder  # noqa: E402
from gradscope.record import distributed as shard  # noqa: E402


def fsdp_model() -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = make_mlp()
    for m in model:
        if isinstance(m, nn.Linear):
            fully_shard(m)
    fully_shard(model)
    return model


def train(model, opt, rec, rank, world, steps, after=None):
    half = GLOBAL_BATCH // world
    for t in range(1, steps + 1):
        x, y = mlp_batch(t)
        x, y = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        rec.log_loss(loss)
        opt.step()
        if after is not None:
            after(t)


def train_many(model, opts, rec, rank, world, steps):
    half = GLOBAL_BATCH // world
    for t in range(1, steps + 1):
        x, y = mlp_batch(t)
        x, y = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
        for o in opts:
            o.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for o in opts:
            o.step()


def _t(opt) -> int:
    return int(next(iter(opt.state.values()))["step"])


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    rank, world, port = (int(a) for a in sys.argv[3:6])
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20)
    )
    if mode == "fsdp":
        model = fsdp_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        with Recorder(model, opt, out / "fsdp.h5", sample=5, overwrite=True) as rec:
            train(model, opt, rec, rank, world, 8)
        refused = {}
        for key, kw in (("full", {"full_every": 1}), ("per_rank", {"per_rank": True})):
            try:
                Recorder(model, opt, out / f"{key}.h5", **kw)
            except Exception as exc:  # noqa: BLE001 - the test reads type and message
                refused[key] = f"{type(exc).__name__}: {exc}"
        (out / f"refused{rank}.json").write_text(json.dumps(refused))
        # parameters built by hand: Shard(1) uneven, Replicate, an empty Shard(0) slice
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh("cpu", (world,))
        module, grads = dtensor_module(mesh)
        opt = sgd_for(module)
        with Recorder(module, opt, out / "dtensor.h5", sample=7, overwrite=True) as rec:
            for p, g in zip(module.parameters(), grads):
                p.grad = g
            opt.step()
        # the index arithmetic against DTensor's own slicing of an arange
        from torch.distributed.tensor import Shard, distribute_tensor

        shape, _ = DTENSOR_SPECS["w"]
        full = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(shape)
        dt = distribute_tensor(full, mesh, [Shard(1)])
        box = shard.shard_box(shape, mesh.shape, mesh.get_coordinate(), dt.placements)
        np.save(out / f"index{rank}.npy", dt.to_local().reshape(-1).numpy().astype(np.int64))
        np.save(out / f"box{rank}.npy", shard.global_flat_index(box))
        # two optimizers, one of them on the generic path
        model = fsdp_model()
        opts = two_optimizers(model)
        with Recorder(model, opts, out / "multi.h5", sample=5, overwrite=True) as rec:
            train_many(model, opts, rec, rank, world, 4)
        # gradscope's own optimizers (layer reductions over the sharded parameters), 3 steps
        for name in GRADSCOPE_ON_FSDP:
            model = fsdp_model()
            opt = gradscope_optimizer(name, model.parameters())
            with Recorder(model, opt, out / f"gs-{name}.h5", sample=0, overwrite=True) as rec:
                train(model, opt, rec, rank, world, 3)
            full = {k: v.full_tensor().detach().numpy() for k, v in model.state_dict().items()}
            if rank == 0:
                np.savez(out / f"gs-{name}.npz", **full)
        # a write failure on rank 0 at step 3: both ranks stop recording at step 4, train on
        model = fsdp_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Recorder(model, opt, out / "fail.h5", overwrite=True) as rec:

                def boom(*_args, **_kwargs):
                    raise OSError("boom: disk gone")

                trained = []

                def after(t: int) -> None:
                    trained.append(t)
                    if t == 2 and rank == 0:
                        rec._writer.write_summary = boom

                train(model, opt, rec, rank, world, 6, after)
                report = {"recording": rec.recording, "trained": len(trained)}
        report["warnings"] = [str(w.message) for w in caught]
        (out / f"fail{rank}.json").write_text(json.dumps(report))
    elif mode in ("kill", "stall"):
        # rank 1 SIGKILLs (or SIGSTOPs) itself in step 6, after the optimizer step and
        # before the recorder's reduction (its step hook runs before the recorder's)
        model = fsdp_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sig = signal.SIGKILL if mode == "kill" else signal.SIGSTOP
        if rank == 1:
            opt.register_step_post_hook(
                lambda o, a, k: os.kill(os.getpid(), sig) if o.state and _t(o) == 6 else None
            )
        rec = Recorder(model, opt, out / "kill.h5", flush_every=2, collective_timeout=3)
        t0 = [0.0]

        def after(t: int) -> None:
            if t == 5:
                t0[0] = time.monotonic()
            if not rec.recording:
                print(f"stopped at {t} after {time.monotonic() - t0[0]:.1f} s", flush=True)
                os._exit(3)  # the other rank is gone: no orderly shutdown

        train(model, opt, rec, rank, world, 50, after)
    else:
        raise SystemExit(f"unknown mode {mode}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
