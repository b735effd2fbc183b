"""The recorder: a thin layer over ``Optimizer.register_step_pre_hook``/``post_hook``.

Usage::

    with Recorder(model, optimizer, "run.h5", every=1) as rec:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            loss.backward()
            rec.log_loss(loss)          # optional, before optimizer.step()
            optimizer.step()            # recording happens in the step hooks
            optimizer.zero_grad()

Several optimizers at once (Muon for the matrices, AdamW for the rest) are passed as a
sequence: ``Recorder(model, [muon, adamw], path)``. A row is complete when each of them has
stepped once; its ``/step`` is the first optimizer's own t.

What the optimizer did is read through :mod:`gradscope.optim.introspect`: the recorder
never re-derives optimizer math (docs/design.md, rule 4). Reductions run on the parameters'
device and are copied to the host once per recorded step; a writer thread appends them to
the run file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

import gradscope
from gradscope import examplewise as ew
from gradscope import names
from gradscope.errors import GradscopeError, RunFileError, UnsupportedLayerError
from gradscope.optim import introspect
from gradscope.optim import torch_adapters as TA
from gradscope.optim._core import TrackedOptimizer
from gradscope.record import distributed as shard
from gradscope.record import reducer as red
from gradscope.record import schedules as sched
from gradscope.record import summaries as sm
from gradscope.runfile import schema as S
from gradscope.runfile.writer import RunWriter, check_replaceable


@dataclass(frozen=True)
class _Plan(red.StepPlan):
    full: bool

    @property
    def any(self) -> bool:
        return self.summary or self.samples or self.full


class Recorder:
    """Record what an optimizer does to every parameter, into one HDF5 run file.

    Args:
        model: the model whose parameters the optimizer updates (a ``DistributedDataParallel``
            wrapper is unwrapped). Supplies the layer names and the input-to-output order.
        optimizer: any ``torch.optim.Optimizer`` (gradscope's report their stepsize from
            their own step; torch's Adam, AdamW, SGD, Adagrad, RMSprop, Adamax, NAdam, RAdam,
            Adadelta and Adafactor through exact adapters; any other through the generic
            path of :mod:`gradscope.optim.torch_adapters`, without a stepsize), or a
            sequence of them. Param groups are numbered globally (the optimizers' groups
            concatenated); accelerate's ``AcceleratedOptimizer`` is unwrapped.
        path: run file to create.
        every: summary schedule: an int period or a ``step -> bool`` function
            (:mod:`gradscope.record.schedules`). A summary row holds per-layer statistics of
            every quantity, cosines to the previous row, loss and learning rates.
        hist_every: histogram (and quantile) schedule, a subset of the summary rows;
            default ``"default"``: :func:`~gradscope.record.schedules.default_hist` (every
            step to 10, ten per decade, every 100th); ``"same"``: every summary row; ``None``
            disables histograms.
        sample: coordinates per layer in the fixed random subsample (all if the layer is
            smaller); 0 disables subsampling.
        sample_every: subsample schedule; default ``"default"``:
            :func:`~gradscope.record.schedules.default_samples` (steps 1-3 and log-spaced
            pairs of steps); ``"same"``: the summary schedule.
        full_every: schedule of full-tensor dumps (default never).
        examplewise_every: steps on which :meth:`record_examplewise` computes and records;
            ``None`` (default): whenever it is called.
        quantities: quantities with statistics and histograms; default ``None``: every
            quantity the optimizer defines (the core ones among grad, exp_avg, exp_avg_sq,
            stepsize, update, param, then each other state entry under its own key, e.g.
            ``square_avg``, ``row_var``). Requested ones it lacks are left out and listed in
            the metadata with the reason (``run.unavailable``).
        sample_quantities: quantities whose subsample is stored (core quantities only).
        full_quantities: quantities stored in full dumps (core quantities only).
        cosine: store cosines between successive recorded gradients and updates (keeps a
            float32 copy of both on the device).
        seed: seed of the subsample indices.
        live: write a SWMR file readers can follow while training runs (local disks only).
        flush_every: rows per write block and flush; a SIGKILL loses at most this many rows.
        flush_seconds: also flush when rows have waited this long.
        overwrite: replace an existing file (otherwise :class:`RunFileError` is raised).
        strict: raise recording errors (unwritable path, disk full) into the training loop
            instead of warning once and stopping the recording.
        per_rank: under ``torch.distributed``, every rank writes ``<stem>.rank<r>.h5``;
            default: rank 0 only (DDP gradients and states are replicated after all-reduce).
            Sharded DTensor parameters (FSDP2) are always recorded by every rank and
            written by rank 0 as exact global statistics (:mod:`gradscope.record.distributed`).
        collective_timeout: seconds a rank waits in the one reduction per recorded step of
            sharded parameters before it stops recording (a dead rank never hangs training).
        tags: user metadata stored with the run (JSON-able).
        compression: ``None``, ``"gzip"`` or ``"lzf"`` for subsamples and full tensors.
        reduce: how large layers are reduced (:mod:`gradscope.record.reducer`):
            ``"compiled"`` (one generated pass per layer value, compiled with
            ``torch.compile`` at the first recorded step), ``"eager"`` (the reference, a
            few eager passes), or ``"auto"`` (default): compiled on the CPU when the layers
            of more than 65,536 coordinates hold at least 2**20 of them and the compile
            works; eager otherwise. Both give the same statistics to float64 accuracy.

    Raises:
        RunFileError: the path exists and ``overwrite`` is false.
        UnsupportedLayerError: a parameter the recorder cannot cover (named in the message).
        UnsupportedOptimizerError: an object that is not a ``torch.optim.Optimizer``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
        path: str | os.PathLike[str],
        every: int | sched.Schedule = 1,
        *,
        hist_every: int | sched.Schedule | str | None = "default",
        sample: int = 4096,
        sample_every: int | sched.Schedule | str | None = "default",
        full_every: int | sched.Schedule | None = None,
        examplewise_every: int | sched.Schedule | None = None,
        quantities: Iterable[str] | None = None,
        sample_quantities: Iterable[str] = ("grad", "update", "stepsize"),
        full_quantities: Iterable[str] = ("grad", "update", "stepsize"),
        cosine: bool = True,
        seed: int = 0,
        live: bool = False,
        flush_every: int = S.DEFAULT_BLOCK,
        flush_seconds: float = 30.0,
        overwrite: bool = False,
        strict: bool = False,
        per_rank: bool = False,
        tags: Mapping[str, Any] | None = None,
        compression: str | None = None,
        collective_timeout: float = 300.0,
        reduce: red.Backend = "auto",
    ) -> None:
        if sample < 0:
            raise ValueError(f"sample must be >= 0, got {sample}")
        self.schedule = sched.as_schedule(every)
        self.hist_schedule = _schedule(hist_every, self.schedule, sched.default_hist)
        self.sample_schedule = _schedule(sample_every, self.schedule, sched.default_samples)
        self.full_schedule = sched.as_schedule(full_every)
        self.examplewise_schedule = (
            None if examplewise_every is None else sched.as_schedule(examplewise_every)
        )
        self._requested = None if quantities is None else _check_names(quantities)
        self.quantities: tuple[str, ...] = (
            tuple(q for q in S.QUANTITIES if q in self._requested)
            if self._requested is not None
            else S.QUANTITIES
        )  # final once the first recorded step shows what the optimizer holds
        self.sample_quantities = _check_quantities(sample_quantities, "sample_quantities")
        self.full_quantities = _check_quantities(full_quantities, "full_quantities")
        if sample == 0:
            self.sample_quantities = ()
        if full_every is None:
            self.full_quantities = ()
        self._cosine = cosine
        red.check_backend(reduce)  # at construction, not at the first recorded step
        self._reduce: red.Backend = reduce
        self.reducer: red.StepReducer | None = None
        self.cosine_quantities: tuple[str, ...] = ()
        self.sample = sample
        self.seed = seed
        self.strict = strict
        self.tags = dict(tags or {})
        self._writer_kw = {
            "live": live,
            "block": flush_every,
            "flush_seconds": flush_seconds,
            "overwrite": overwrite,
            "compression": compression,
        }
        self.optimizers = _as_optimizers(optimizer)
        #: the first optimizer (the one whose step numbers the rows)
        self.optimizer = self.optimizers[0]
        self._groups_all = [g for opt in self.optimizers for g in opt.param_groups]
        self._group_opt = [k for k, opt in enumerate(self.optimizers) for _ in opt.param_groups]
        self.model = _unwrap(model)
        self.rank, self.world_size = _dist_rank()
        self.path = Path(path)
        if per_rank and self.world_size > 1:
            self.path = Path(names.rank_path(self.path, self.rank))
        self.active = per_rank or self.rank == 0

        self._params, self._names, self._groups = _collect_params(self.model, self.optimizers)
        # --- sharded (FSDP2 / DTensor) parameters: every rank reduces its slices, rank 0
        # writes (gradscope/record/distributed.py); None otherwise
        self._sharded = shard.ShardedRecording.create(self._params, per_rank, collective_timeout)
        self._writes = self.active
        if self._sharded is not None:
            if full_every is not None:
                raise ValueError(
                    "full_every: full-tensor dumps of sharded DTensor parameters would gather "
                    "them on one rank; record statistics and subsamples instead"
                )
            self.active = True  # every rank takes part in the reduction
        # ---
        self._opt_of = [self._group_opt[g] for g in self._groups]  # per optimizer parameter
        self._handles: list[Any] = []
        self._depth: dict[int, int] = {}  # nesting of each optimizer's step hooks
        self._forward_seen: dict[int, int] = {}
        self._step = 0
        self._plan: _Plan | None = None
        self._tracking: bool | None = None
        self._pending_loss: torch.Tensor | float | None = None
        self._n_losses = 0
        self._stepped: set[int] = set()  # optimizers that stepped in the current row
        self._collected: list[Any] = []
        self._writer: RunWriter | None = None
        self._failed = False
        self._closed = False
        if not self.active:
            return
        # refuses an existing path without overwrite, and one another writer holds
        if self._writes:
            check_replaceable(self.path, overwrite)
        if self._writes and not _writable_dir(self.path.parent):
            why = (
                "directory not writable"
                if self.path.parent.is_dir()
                else f"folder {self.path.parent} does not exist"
            )
            err = RunFileError(f"cannot create run file {self.path}: {why}")
            if self._sharded is None or self.strict:
                self._fail(err)
                return
            self._sharded.pending = err  # the ranks stop together at the first reduction
        self._register_forward_order()
        # When the user compiles a function that calls ``optimizer.step()``, dynamo would trace
        # these hooks (file I/O, host copies): run them eagerly instead, one graph break each.
        for opt in self.optimizers:
            # cast: torch.compiler.disable's stub returns a union of decorator forms
            pre = cast(Any, torch.compiler.disable(self._pre_hook))
            post = cast(Any, torch.compiler.disable(self._post_hook))
            self._handles.append(opt.register_step_pre_hook(pre))
            self._handles.append(opt.register_step_post_hook(post))
        # after our pre-hook: the snapshot hook of the generic path then sees this step's
        # tracking decision
        for opt in self.optimizers:
            introspect.track(opt, False)
        self._tracking = False

    # ------------------------------------------------------------------ public
    @property
    def step(self) -> int:
        """Optimizer steps seen so far."""
        return self._step

    @property
    def recording(self) -> bool:
        """False once recording stopped (closed, failed, or a non-recording rank)."""
        return self.active and not self._failed and not self._closed

    def log_loss(self, loss: torch.Tensor | float) -> None:
        """Attach ``loss`` to the next optimizer step (call it before ``optimizer.step()``).

        With gradient accumulation call it once per micro-batch: the step's row gets the
        mean over its micro-batches. A tensor is kept on its device (no host sync) and
        copied with the step's summaries. The loss returned by a closure passed to
        ``optimizer.step(closure)`` is logged automatically (it replaces logged ones).
        """
        x = loss.detach().reshape(-1)[0] if isinstance(loss, torch.Tensor) else float(loss)
        if self._pending_loss is None:
            self._pending_loss = x.clone() if isinstance(x, torch.Tensor) else x
        elif isinstance(self._pending_loss, torch.Tensor) or isinstance(x, torch.Tensor):
            self._pending_loss = torch.as_tensor(self._pending_loss) + x
        else:
            self._pending_loss = self._pending_loss + x
        self._n_losses += 1

    def record_examplewise(
        self,
        loss_fn: Callable[..., torch.Tensor],
        *batch: torch.Tensor,
        chunk_size: int | None = None,
        projections: bool = True,
    ) -> dict[str, ew.LayerExamplewiseStats] | None:
        """Per-example gradient statistics of ``batch``, recorded for the coming step.

        Call it between ``backward()`` and ``optimizer.step()``: the row is stored under
        step :attr:`step` + 1, the step this batch's gradient is used in. It runs
        :func:`gradscope.examplewise.examplewise_moments` (an extra per-example backward
        pass, ~10x a normal one on CPU) and stores :func:`~gradscope.examplewise.layer_stats`
        per layer plus :func:`~gradscope.examplewise.network_stats` for the whole network.

        Args:
            loss_fn: mean-reduced ``loss_fn(outputs, targets)``.
            *batch: ``(*inputs, targets)``.
            chunk_size: examples per ``vmap`` call (memory bound).
            projections: also compute the inner-product and orthogonality tests.

        Returns:
            The per-layer statistics, or ``None`` when the ``examplewise_every`` schedule
            skips this step or recording has stopped.

        Raises:
            UnsupportedLayerError: the model has layers without per-example gradients
                (BatchNorm in training mode).
        """
        t = self._step + 1
        if self._sharded is not None:
            raise UnsupportedLayerError(
                "record_examplewise does not support sharded DTensor parameters (FSDP2)"
            )
        if not self.recording:
            return None
        if self.examplewise_schedule is not None and not self.examplewise_schedule(t):
            return None
        moments = ew.examplewise_moments(
            self.model, loss_fn, *batch, chunk_size=chunk_size, projections=projections
        )
        per_layer = ew.layer_stats(moments)
        try:
            if self._writer is None:
                self._open()
            rows = [per_layer.get(self._names[i]) for i in self._cols]
            rows.append(ew.network_stats(moments))
            device = self._params[0].device
            table = [
                None if r is None else torch.stack([_ew_value(r, k) for k in S.EXAMPLEWISE_STATS])
                for r in rows
            ]
            arr = sm.stack_rows(table, len(S.EXAMPLEWISE_STATS), device)
            host = torch.cat([arr.reshape(-1).double(), moments.loss.reshape(1).double()]).cpu()
            host = host.numpy()
            self._open_writer().write_examplewise(
                self._next_opt_step(),
                moments.batch_size,
                float(host[-1]),
                host[:-1].reshape(arr.shape),
            )
        except Exception as exc:  # noqa: BLE001 - see _fail
            self._fail(exc)
        return per_layer

    def flush(self) -> None:
        """Write every recorded step to disk now."""
        if self._writer is not None and not self._failed:
            try:
                self._writer.flush()
            except RunFileError as exc:
                self._fail(exc)

    def close(self) -> None:
        """Remove the hooks, write what is left and close the file. Idempotent."""
        if self._closed:
            return
        if self._stepped and self.recording:
            try:
                self._finish_step()  # a row whose other optimizers never stepped
            except Exception as exc:  # noqa: BLE001 - see _fail
                self._fail(exc)
        self._closed = True
        self._remove_hooks()
        for opt in self.optimizers:
            try:
                if isinstance(opt, TrackedOptimizer):
                    if self._tracking:
                        introspect.track(opt, False)
                else:
                    TA.untrack(opt)
            except GradscopeError:
                pass
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except RunFileError as exc:
                self._fail(exc)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # never mask the training loop's own exception with a recording error
            self.close()
        except GradscopeError as err:
            warnings.warn(f"gradscope: closing {self.path} failed: {err}", RuntimeWarning, 2)

    # ------------------------------------------------------------------ hooks
    def _register_forward_order(self) -> None:
        """Rank parameters by first use in forward (hooks removed at the first step).

        A module's own parameters rank when its forward starts; parameters of submodules
        it used without calling them (e.g. ``MultiheadAttention.out_proj``) when its
        forward ends.
        """
        seen = self._forward_seen

        def mark(params: Iterable[torch.Tensor]) -> None:
            for p in params:
                seen.setdefault(id(p), len(seen))

        def pre_hook(module: nn.Module, _args: Any) -> None:
            mark(module.parameters(recurse=False))

        def post_hook(module: nn.Module, _args: Any, _out: Any) -> None:
            mark(module.parameters())

        self._fwd_handles = []
        for name, m in self.model.named_modules():
            if any(True for _ in m.parameters(recurse=False)):
                self._fwd_handles.append(m.register_forward_pre_hook(pre_hook))
            if name and any(True for _ in m.parameters()):  # not the root: unused stay -1
                self._fwd_handles.append(m.register_forward_hook(post_hook))

    def _remove_forward_hooks(self) -> None:
        for h in getattr(self, "_fwd_handles", []):
            h.remove()
        self._fwd_handles = []

    def _remove_hooks(self) -> None:
        self._remove_forward_hooks()
        for h in self._handles:
            h.remove()
        self._handles = []

    def _pre_hook(
        self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # A subclass whose step calls super().step() runs the hooks twice when torch has
        # wrapped both classes' step (once an instance of the parent exists): act on the
        # outermost call only, so a step is counted once and read after all of it ran.
        depth = self._depth.get(id(optimizer), 0)
        self._depth[id(optimizer)] = depth + 1
        if depth:
            return None
        if not self.recording:
            return None
        try:
            if id(optimizer) in self._stepped:
                self._finish_step()  # it steps again: the others skipped the last row
            if not self._stepped:
                self._begin_step()
            plan = self._plan
            # args[0] is the optimizer itself (torch passes step's full argument list)
            closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
            if closure is not None and plan is not None and plan.summary:
                wrapped = self._wrap_closure(closure)
                if "closure" in kwargs:
                    return args, {**kwargs, "closure": wrapped}
                return (*args[:1], wrapped, *args[2:]), kwargs
        except Exception as exc:  # noqa: BLE001 - see _fail
            self._fail(exc)
        return None

    def _begin_step(self) -> None:
        """Plan the coming row and switch the optimizers' tracking to match it."""
        t = self._step + 1
        s = self.schedule(t)
        plan = _Plan(
            summary=s,
            hist=s and self.hist_schedule(t),
            samples=bool(self.sample_quantities) and self.sample_schedule(t),
            full=bool(self.full_quantities) and self.full_schedule(t),
        )
        self._plan = plan
        self._collected = []
        if plan.any != self._tracking:
            # on the CPU the step's copies and stepsizes go into kept buffers (a fresh
            # parameter-sized tensor costs its page faults every step); on an accelerator
            # the caching allocator already reuses memory, and kept buffers would only
            # hold memory through the forward and backward passes
            reuse = self._params[0].device.type == "cpu"
            for opt in self.optimizers:
                introspect.track(opt, plan.any, reuse=reuse)
            self._tracking = plan.any

    def _wrap_closure(self, closure: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(closure)
        def wrapped() -> Any:
            out = closure()
            if isinstance(out, (torch.Tensor, float, int)):
                self._pending_loss = out.detach() if isinstance(out, torch.Tensor) else float(out)
                self._n_losses = 1
            return out

        return wrapped

    def _post_hook(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        depth = self._depth.get(id(optimizer), 1) - 1
        self._depth[id(optimizer)] = max(depth, 0)
        if depth > 0:
            return
        if not self.recording:
            if optimizer is self.optimizer:
                self._step += 1
            return
        try:
            self._stepped.add(id(optimizer))
            plan = self._plan
            if plan is not None and plan.any:
                with torch.no_grad():
                    self._collected.extend(introspect.last_step(optimizer))
            if len(self._stepped) == len(self.optimizers):
                self._finish_step()
        except Exception as exc:  # noqa: BLE001 - see _fail
            self._fail(exc)

    def _finish_step(self) -> None:
        """Count the row and record it (when planned) with what its optimizers reported."""
        self._step += 1
        self._stepped = set()
        loss, self._pending_loss = self._pending_loss, None
        if loss is not None and self._n_losses > 1:
            loss = loss / self._n_losses  # the mean over the step's micro-batches
        self._n_losses = 0
        plan, self._plan = self._plan, None
        steps, self._collected = self._collected, []
        if not self.recording or plan is None or not plan.any:
            return
        if self._writer is None:
            self._open(steps)
        with torch.no_grad():
            self._record(plan, steps, loss)

    # ------------------------------------------------------------------ failure policy
    def _fail(self, exc: BaseException) -> None:
        """Strict: raise. Otherwise warn once, stop recording and keep the file valid."""
        if self._sharded is not None and not (self.strict or self._closed or self._failed):
            if self._sharded.defer(exc):  # all ranks stop at the next reduction
                return
        if self.strict:
            self._failed = True
            self._remove_hooks()
            if self._writer is not None:
                try:
                    self._writer.close()
                except RunFileError:
                    pass
                self._writer = None
            if isinstance(exc, GradscopeError):
                raise exc
            raise RunFileError(f"recording to {self.path} failed: {exc}") from exc
        if self._failed:
            return
        self._failed = True
        warnings.warn(
            f"gradscope: recording to {self.path} stopped at step {self._step} "
            f"({type(exc).__name__}: {exc}); training continues, the file keeps the steps "
            "written so far",
            RuntimeWarning,
            stacklevel=3,
        )
        self._remove_hooks()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except RunFileError:
                pass

    # ------------------------------------------------------------------ file
    def _open(self, steps: list[Any] | None = None) -> None:
        self._remove_forward_hooks()
        self._choose_quantities(steps)
        seen = self._forward_seen
        # a parameter of a module that ran but that took no part in the loss has no
        # gradient at the first recorded step: it counts as unused (rank -1, last)
        rank = [seen.get(id(p), -1) if p.grad is not None else -1 for p in self._params]
        order = sorted(
            range(len(self._params)),
            key=lambda i: rank[i] if rank[i] >= 0 else len(seen) + i,
        )
        dense = {i: r for r, i in enumerate(i for i in order if rank[i] >= 0)}
        rank = [dense.get(i, -1) for i in range(len(self._params))]
        self._cols = order  # column c holds optimizer parameter order[c]
        self._col_of = {id(self._params[i]): c for c, i in enumerate(order)}
        layers = tuple(
            S.LayerInfo(
                name=self._names[i],
                shape=tuple(self._params[i].shape),
                group=self._groups[i],
                param_index=i,
                forward_rank=rank[i],
                optimizer=self._opt_of[i],
            )
            for i in order
        )
        self._n = [layer.numel for layer in layers]
        self._shapes = [layer.shape for layer in layers]
        rng = np.random.default_rng(self.seed)
        index = tuple(
            np.sort(rng.choice(n, size=min(self.sample, n), replace=False)).astype(np.int64)
            for n in self._n
        )
        device = self._params[0].device
        self._sample_idx = [torch.as_tensor(ix, device=device) for ix in index]
        hparam_names: dict[str, None] = {}
        for g in self._groups_all:
            hparam_names.update(dict.fromkeys(S.hparam_values(g)))
        layout = S.Layout(
            layers=layers,
            n_groups=len(self._groups_all),
            hparam_names=tuple(hparam_names),
            quantities=self.quantities,
            sample_quantities=self.sample_quantities,
            sample_index=index if self.sample_quantities else (),
            full_quantities=self.full_quantities,
            hist_specs={q: S.hist_spec(q) for q in self.quantities},
        )
        self._layout = layout
        # per layer: its parameter (for state["step"]) and its group's eps threshold
        self._layer_params = [self._params[i] for i in order]
        self._layer_state = [self.optimizers[self._opt_of[i]].state for i in order]
        self._first_opt_cols = np.array([self._opt_of[i] == 0 for i in order])
        self._eps_threshold = [_eps_threshold(self._groups_all[layer.group]) for layer in layers]
        if self._sharded is None:
            red_layout = red.ReducerLayout(
                n=tuple(self._n),
                shapes=tuple(self._shapes),
                quantities=self.quantities,
                cosine_quantities=self.cosine_quantities,
                sample_quantities=self.sample_quantities,
                hist_specs=layout.hist_specs,
                eps_threshold=tuple(self._eps_threshold),
            )
            compiled = red.resolve_backend(self._reduce, self._n, device)
            small_max = red.SMALL_LAYER_COMPILED if compiled else red.SMALL_LAYER
            red_layout = dataclasses.replace(red_layout, small_max=small_max)
            self.reducer = red.StepReducer(red_layout, device, self._sample_idx, compiled)
        if self._sharded is None:
            self._writer = RunWriter(self.path, layout, self._metadata(layers), **self._writer_kw)
        else:  # rank 0 writes; a failure to create the file stops every rank together
            sharded = self._sharded
            self._writer = sharded.open_writer(
                lambda: (
                    RunWriter(self.path, layout, self._metadata(layers), **self._writer_kw)
                    if self._writes and sharded.pending is None
                    else shard.NullWriter()
                )
            )

    def _choose_quantities(self, steps: list[Any] | None) -> None:
        """Fix the recorded quantities from what the optimizers define and hold.

        Core quantities come from each optimizer's facts (and, on the generic path, from
        the moments its state holds); every other state entry gets its own quantity, named
        by its key (``state_<key>`` where the key is a core name).
        """
        facts = [_facts(opt) for opt in self.optimizers]
        core: set[str] = set()
        for f in facts:
            core.update(f.quantities)
        state_keys: dict[str, str] = {}
        for ps in steps or ():
            for q in ("exp_avg", "exp_avg_sq"):
                if getattr(ps, q, None) is not None:
                    core.add(q)
            for k in getattr(ps, "state", {}) or {}:
                name = _quantity_name(k)
                state_keys.setdefault(name, k)
        available = [q for q in S.QUANTITIES if q in core] + list(state_keys)
        unavailable: dict[str, str] = {}
        undefined = [f for f in facts if f.stepsize_undefined]
        for q in S.QUANTITIES:
            if q in core:
                continue
            if q == "stepsize" and undefined:
                unavailable[q] = "stepsize undefined for this optimizer: " + "; ".join(
                    str(f.stepsize_undefined) for f in undefined
                )
            else:
                names = " + ".join(f.name.rsplit(".", 1)[-1] for f in facts)
                unavailable[q] = f"{names} holds no {q}"
        partial = {}
        if undefined and "stepsize" in core:  # several optimizers: some lack it
            partial["stepsize"] = "stepsize undefined (NaN) on the layers of " + "; ".join(
                str(f.stepsize_undefined) for f in undefined
            )
        if self._requested is None:
            chosen = available
        else:
            chosen = [q for q in available if q in self._requested]
            for q in self._requested:
                if q not in available:
                    unavailable.setdefault(q, f"the optimizer state holds no {q!r}")
            unavailable = {q: r for q, r in unavailable.items() if q in self._requested}
            if unavailable:
                warnings.warn(
                    "gradscope: not recording "
                    + "; ".join(f"{q} ({why})" for q, why in unavailable.items()),
                    RuntimeWarning,
                    stacklevel=4,
                )
        self.quantities = tuple(chosen)
        self._state_key = {q: state_keys[q] for q in chosen if q in state_keys}
        self.cosine_quantities = (
            tuple(q for q in S.COSINE_QUANTITIES if q in self.quantities) if self._cosine else ()
        )
        self.sample_quantities = tuple(q for q in self.sample_quantities if q in core)
        self.full_quantities = tuple(q for q in self.full_quantities if q in core)
        self._facts = facts
        self._quantity_meta = {
            "recorded": list(self.quantities),
            "core": [q for q in S.QUANTITIES if q in self.quantities],
            "state": dict(self._state_key),
            "unavailable": unavailable,
            "partial": partial,
            "aliases": {k: v for f in facts for k, v in f.aliases.items()},
            "state_shapes": self._state_shapes(steps),
        }

    def _state_shapes(self, steps: list[Any] | None) -> dict[str, list[list[int] | None]]:
        """Per state quantity, each layer's shape of it (``None``: the layer has none)."""
        col = {id(p): c for c, p in enumerate(self._params)}
        out: dict[str, list[list[int] | None]] = {
            q: [None] * len(self._params) for q in self._state_key
        }
        for ps in steps or ():
            st = getattr(ps, "state", {}) or {}
            for q, k in self._state_key.items():
                if k in st and id(ps.param) in col:
                    out[q][col[id(ps.param)]] = list(st[k].shape)
        return out

    def _metadata(self, layers: tuple[S.LayerInfo, ...]) -> dict[str, Any]:
        per_opt = [
            {
                "class": f"{type(opt).__module__}.{type(opt).__qualname__}",
                "defaults": _jsonable(opt.defaults),
                "param_groups": _jsonable(
                    [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                ),
                "path": f.path,
                "stepsize": f.stepsize,
                "stepsize_undefined": f.stepsize_undefined,
            }
            for opt, f in zip(self.optimizers, self._facts)
        ]
        if len(per_opt) == 1:
            optimizer = dict(per_opt[0])
        else:
            optimizer = {
                "class": " + ".join(o["class"] for o in per_opt),
                "defaults": per_opt[0]["defaults"],
                "param_groups": [g for o in per_opt for g in o["param_groups"]],
                "path": "several",
                "stepsize": "; ".join(str(o["stepsize"]) for o in per_opt),
                "stepsize_undefined": "; ".join(
                    o["stepsize_undefined"] for o in per_opt if o["stepsize_undefined"]
                )
                or None,
            }
        optimizer["optimizers"] = per_opt
        optimizer["group_optimizer"] = list(self._group_opt)
        optimizer["steps_counted_by"] = (
            "the first optimizer's own step t (state['step']); one row per training step, "
            "complete when every optimizer stepped once"
        )
        return {
            "gradscope_version": gradscope.__version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "command": list(sys.argv),
            "optimizer": optimizer,
            "quantities": {
                **self._quantity_meta,
                "state_shapes": {
                    q: [shapes[layer.param_index] for layer in layers]
                    for q, shapes in self._quantity_meta["state_shapes"].items()
                },
            },
            "model": {
                "class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
                "n_parameters": int(sum(layer.numel for layer in layers)),
                "order": "forward" if self._forward_seen else "optimizer",
                "layers": [
                    {
                        "name": layer.name,
                        "shape": list(layer.shape),
                        "numel": layer.numel,
                        "group": layer.group,
                        "optimizer": layer.optimizer,
                        "forward_rank": layer.forward_rank,
                    }
                    for layer in layers
                ],
            },
            "recorder": {
                "every": _sched_name(self.schedule),
                "hist_every": _sched_name(self.hist_schedule),
                "sample_every": _sched_name(self.sample_schedule),
                "full_every": _sched_name(self.full_schedule),
                "examplewise_every": _sched_name(self.examplewise_schedule)
                if self.examplewise_schedule is not None
                else "on call",
                "sample": self.sample,
                "quantities": list(self.quantities),
                "sample_quantities": list(self.sample_quantities),
                "full_quantities": list(self.full_quantities),
                "cosine_quantities": list(self.cosine_quantities),
                "stepsize": "u with update = -lr * u * m_hat (lr excluded), as introspect reports"
                if "stepsize" in self.quantities
                else "not recorded: " + self._quantity_meta["unavailable"].get("stepsize", ""),
                **{k: v for k, v in self._writer_kw.items() if k != "overwrite"},
            },
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "tags": _jsonable(self.tags),
            **({} if self._sharded is None else {"sharding": self._sharded.describe(layers)}),
        }

    # ------------------------------------------------------------------ one step
    def _record(self, plan: _Plan, steps: list[Any], loss: torch.Tensor | float | None) -> None:
        by_col: list[Any] = [None] * len(self._n)
        for ps in steps:
            c = self._col_of.get(id(ps.param))
            if c is None:
                raise UnsupportedLayerError(
                    f"introspection reported a parameter of shape {tuple(ps.param.shape)} "
                    "that is not among the recorded ones"
                )
            by_col[c] = ps
        values = {q: [self._value(ps, q) for ps in by_col] for q in self.quantities}
        for q in ("stepsize", *S.ZERO_COUNTED):
            values.setdefault(q, [None] * len(by_col))
        # coordinates per layer value: the layer size for core quantities (a 0-d value
        # stands for every coordinate), the state tensor's own size otherwise
        self._qn = {
            q: self._n if q in S.QUANTITIES else [1 if v is None else v.numel() for v in values[q]]
            for q in self.quantities
        }
        if self._sharded is not None:  # local slices, one collective, rank 0 writes
            self._sharded.record(self, plan, values, loss)
            return

        reducer = self.reducer
        if reducer is None:
            raise AssertionError("the recorder has no reducer after opening")
        steps_t = self._layer_step_tensors()
        extra = [] if steps_t is None else [("lstep", "", steps_t)]
        # everything for the host comes back in one device->host copy
        out = reducer.reduce(plan, values, self._qn, loss, extra)
        layer_step = self._layer_steps(out.get("lstep", {}).get(""))
        # the first optimizer's own t (any optimizer's when the first keeps no step)
        known = layer_step[(layer_step >= 0) & self._first_opt_cols]
        if not known.size:
            known = layer_step[layer_step >= 0]
        t = int(known.max()) if known.size else self._step
        if plan.summary:
            self._write_summary(reducer.summarize(plan, out, values, self._qn), loss, t, layer_step)
        if plan.samples:
            self._open_writer().write_samples(
                t,
                {q: out["samples"][q].astype(np.float32) for q in self.sample_quantities},
            )
        if plan.full:
            full = {}
            for q in self.full_quantities:
                # copy=True: on the CPU .cpu() would alias the live tensor the writer reads later
                full[q] = [
                    np.full(n, np.nan, np.float32)
                    if v is None
                    else v.detach()
                    .expand(self._shapes[c])
                    .reshape(-1)
                    .to(device="cpu", dtype=torch.float32, copy=True)
                    .numpy()
                    for c, (v, n) in enumerate(zip(values[q], self._n))
                ]
            self._open_writer().write_full(t, full)

    def _layer_step_tensors(self) -> torch.Tensor | None:
        """The layers' ``state["step"]`` values held on an accelerator, for the one copy."""
        dev = [
            st
            for st in (
                state.get(p, {}).get("step")
                for p, state in zip(self._layer_params, self._layer_state)
            )
            if isinstance(st, torch.Tensor) and st.device.type != "cpu"
        ]
        if not dev:
            return None
        return torch.stack([st.reshape(()).to(torch.float64) for st in dev])

    def _next_opt_step(self) -> int:
        """The optimizer's t of the coming step (its largest ``state["step"]`` + 1)."""
        state = self.optimizer.state
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        steps = [state.get(p, {}).get("step") for p in params]
        known = [int(float(st)) for st in steps if isinstance(st, (torch.Tensor, int, float))]
        return (max(known) if known else self._step) + 1

    def _layer_steps(self, on_device: np.ndarray | None) -> np.ndarray:
        """Each layer's own t (``state["step"]``; -1 when its state has none)."""
        out = np.full(len(self._layer_params), -1, dtype=np.int64)
        k = 0
        for c, (p, state) in enumerate(zip(self._layer_params, self._layer_state)):
            st = state.get(p, {}).get("step")
            if isinstance(st, torch.Tensor):
                if st.device.type != "cpu":
                    out[c] = int(on_device[k])  # type: ignore[index]
                    k += 1
                else:
                    out[c] = int(st.item())
            elif isinstance(st, (int, float)):
                out[c] = int(st)
        return out

    def _write_summary(
        self,
        summary: red.StepSummary,
        loss: torch.Tensor | float | None,
        t: int,
        layer_step: np.ndarray,
    ) -> None:
        if isinstance(loss, torch.Tensor):
            loss_v = summary.loss
        else:
            loss_v = float("nan") if loss is None else float(loss)
        groups = self._groups_all
        lr = np.array([_float(g.get("lr", np.nan)) for g in groups], dtype=np.float64)
        per_group = [S.hparam_values(g) for g in groups]
        hparams = {
            k: np.array([h.get(k, np.nan) for h in per_group], dtype=np.float64)
            for k in self._layout.hparam_names
        }
        self._open_writer().write_summary(
            S.SummaryRow(
                step=t,
                recorder_step=self._step,
                layer_step=layer_step,
                hparams=hparams,
                eps_dominated=summary.eps_dominated,
                wall_time=time.time(),
                loss=loss_v,
                lr=lr,
                stats=summary.stats,
                cosine=summary.cosine,
                hist=summary.hist,
            )
        )

    def _open_writer(self) -> RunWriter:
        """The writer of a recording that is open (its absence here is a bug)."""
        if self._writer is None:
            raise AssertionError("the recorder wrote a row without an open writer")
        return self._writer

    def _value(self, ps: Any, q: str) -> torch.Tensor | None:
        """One layer's value of quantity ``q`` in its report (``None``: it has none)."""
        if ps is None:
            return None
        if q in S.QUANTITIES:
            return ps.param if q == "param" else getattr(ps, q)
        v = (getattr(ps, "state", None) or {}).get(self._state_key[q])
        return None if v is None else v.detach()


# ---------------------------------------------------------------------- helpers
def _facts(opt: torch.optim.Optimizer) -> TA.OptimizerFacts:
    """What gradscope reads from one optimizer (its own report for gradscope's)."""
    if isinstance(opt, TrackedOptimizer):
        return TA.OptimizerFacts(
            name=f"{type(opt).__module__}.{type(opt).__qualname__}",
            path="gradscope",
            quantities=S.QUANTITIES,
            stepsize="u with update = -lr * u * m_hat (lr excluded), from its own step",
        )
    return TA.describe(opt)


def _quantity_name(key: str) -> str:
    """The quantity of a state entry: its key, ``state_<key>`` where that is a core name."""
    name = str(key).replace("/", "_")
    return f"state_{name}" if name in S.QUANTITIES else name


def _as_optimizers(
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
) -> list[torch.optim.Optimizer]:
    """One optimizer or a sequence, each unwrapped from accelerate's wrapper."""
    items = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    out = []
    for opt in items:
        while type(opt).__name__ == "AcceleratedOptimizer" and hasattr(opt, "optimizer"):
            opt = getattr(opt, "optimizer")  # noqa: B009 - accelerate's wrapper, untyped here
        if not isinstance(opt, torch.optim.Optimizer):
            raise TA.unsupported(opt)
        out.append(opt)
    if not out:
        raise ValueError("Recorder needs at least one optimizer")
    if len({id(o) for o in out}) != len(out):
        raise ValueError("the same optimizer was passed twice")
    return out


def _ew_value(stats: Any, key: str) -> torch.Tensor:
    v = getattr(stats, key)
    if v is None:
        return torch.tensor(float("nan"), device=stats.variance.device)
    return v.detach().to(torch.float32)


def _schedule(
    spec: int | sched.Schedule | str | None,
    same: sched.Schedule,
    default: Callable[[], sched.Schedule],
) -> sched.Schedule:
    """A schedule argument as a schedule.

    ``"same"`` (the summary schedule), ``"default"``, or
    :func:`~gradscope.record.schedules.as_schedule`'s int / function / ``None``.
    """
    if spec == "same":
        return same
    if spec == "default":
        return default()
    if isinstance(spec, str):
        raise ValueError(
            f"a schedule is an int, a function, None, 'same' or 'default', got {spec!r}"
        )
    return sched.as_schedule(spec)


def _check_names(qs: Iterable[str]) -> tuple[str, ...]:
    """Requested quantity names: core names, or state keys (checked at the first step)."""
    qs = tuple(qs)
    bad = [q for q in qs if not isinstance(q, str) or not q or "/" in q]
    if bad:
        raise ValueError(f"quantities: invalid names {bad}")
    return qs


def _check_quantities(qs: Iterable[str], what: str) -> tuple[str, ...]:
    qs = tuple(qs)
    bad = [q for q in qs if q not in S.QUANTITIES]
    if bad:
        raise ValueError(f"{what}: unknown quantities {bad}; known: {list(S.QUANTITIES)}")
    return tuple(q for q in S.QUANTITIES if q in qs)


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's module under DDP/DataParallel and ``torch.compile`` wrappers, in any nesting.

    Layer names then read as in the user's model (no ``module.`` or ``_orig_mod.`` prefix);
    hooks on its submodules still run inside the compiled or replicated forward.
    """
    parallel = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while True:
        if isinstance(model, parallel):
            model = cast(nn.Module, model.module)
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = cast(nn.Module, model._orig_mod)
        else:
            return model


def _dist_rank() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collect_params(
    model: nn.Module, optimizers: Sequence[torch.optim.Optimizer]
) -> tuple[list[torch.Tensor], list[str], list[int]]:
    """Every optimizer parameter with its name and global group index.

    Groups are numbered over the optimizers' groups concatenated; one clear error lists
    the parameters that cannot be covered.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    params, out_names, groups, problems = [], [], [], []
    seen: set[int] = set()
    all_groups = [g for opt in optimizers for g in opt.param_groups]
    for g, group in enumerate(all_groups):
        for j, p in enumerate(group["params"]):
            if id(p) in seen:
                continue
            seen.add(id(p))
            name = names.get(id(p))
            label = name or f"param_groups[{g}]['params'][{j}] (shape {tuple(p.shape)})"
            why = None
            if name is None:
                why = "not a parameter of the model"
            elif p.is_sparse or p.layout != torch.strided:
                why = f"layout {p.layout} is not supported"
            elif p.is_complex():
                why = "complex parameters are not supported"
            elif not p.is_floating_point():
                why = f"dtype {p.dtype} is not floating point"
            elif p.numel() == 0:
                why = "empty parameter (0 coordinates)"
            if why:
                problems.append(f"{label}: {why}")
                continue
            params.append(p)
            out_names.append(name)
            groups.append(g)
    if problems:
        raise UnsupportedLayerError(
            "the recorder cannot cover these optimizer parameters: " + "; ".join(problems)
        )
    if not params:
        raise UnsupportedLayerError("the optimizer has no parameters to record")
    return params, out_names, groups


def _eps_threshold(group: Mapping[str, Any]) -> float | None:
    """``1 / (1.01 eps)`` of a param group: stepsizes at or above it are eps-dominated."""
    eps = group.get("eps")
    if isinstance(eps, torch.Tensor):
        eps = float(eps.item()) if eps.numel() == 1 else None
    if isinstance(eps, (list, tuple)):  # e.g. Adafactor's (eps1, eps2): no single threshold
        return None
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        return None
    return 1.0 / (S.EPS_MARGIN * float(eps))


def _writable_dir(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK | os.X_OK)


def _float(x: Any) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def _sched_name(s: Any) -> str:
    return getattr(s, "__qualname__", repr(s))


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist() if x.numel() <= 16 else f"tensor{tuple(x.shape)}"
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    return repr(x)
