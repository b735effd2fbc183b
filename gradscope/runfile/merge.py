"""Merge the per-rank files of one multi-process run into one run file of virtual datasets.

``Recorder(..., per_rank=True)`` under ``torch.distributed`` writes ``<stem>.rank<r:05d>.h5``
per rank. :func:`merge_ranks` writes a small file that :class:`~gradscope.runfile.RunFile`
(and plain h5py) reads as one run: its datasets are HDF5 virtual datasets that map onto the
rank files (no data copied), with **relative** source paths, so the merged file keeps
working when its folder and the rank files move together.

What comes from where (see docs/run-format.md, "Multiple processes"):

* statistics, histograms, cosines, learning rates, subsamples, full tensors, per-example
  statistics: the lowest rank's file (rank 0). Under DDP gradients are all-reduced before
  the step and the optimizer state is replicated, so every rank holds the same numbers;
  histograms are **not** summed over ranks (that would count each identical coordinate
  once per rank, and a layer's counts would no longer sum to its size n);
* ``/ranks/loss`` ``(T, R)``: every rank's logged loss (a virtual dataset);
* ``/loss``: the mean over ranks of the finite losses (the loss of the global batch when
  the local batches have equal size). A virtual dataset cannot compute, so this vector
  and ``/step`` (the common rows) are the only data stored in the merged file.

Only the first ``T`` summary rows are mapped, ``T`` the shortest rank's row count; the
merged file is a snapshot (merge again to see rows written later).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np

from gradscope import names
from gradscope.errors import RunFileError
from gradscope.runfile import schema as S
from gradscope.runfile.reader import RunFile

__all__ = ["merge_ranks"]

RANKS_GROUP = names.RANKS_GROUP
RANKS_LOSS = names.RANKS_LOSS

#: Datasets with one row per summary row (mapped up to the common row count).
_SUMMARY_GROUPS = (S.STATS_GROUP, S.COSINE_GROUP, S.HPARAMS_GROUP)
#: HDF5 dimension-scale attributes hold references into the source file: never copied.
_SCALE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"}


def merge_ranks(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = True,
) -> Path:
    """Write one run file of virtual datasets over the per-rank files of one run.

    Args:
        paths: the rank files (any order; sorted by ``metadata.rank`` when recorded).
        out: the merged file to write (its folder is created).
        overwrite: replace an existing ``out``; otherwise an existing path is refused.

    Returns:
        ``out`` as a :class:`~pathlib.Path`, readable with :class:`RunFile`.

    Raises:
        RunFileError: no files, a file that is not a readable run file, files that are not
            ranks of one run (schema, layers, shapes, quantities, samples, bins, ranks or
            step rows differ), or ``out`` exists and ``overwrite`` is false.
    """
    if not paths:
        raise RunFileError("merge_ranks: no rank files given")
    out = Path(out)
    srcs = [Path(p) for p in paths]
    if len({p.resolve() for p in srcs}) != len(srcs):
        raise RunFileError("merge_ranks: the same rank file is given twice")
    if out.resolve() in {p.resolve() for p in srcs}:
        raise RunFileError(f"merge_ranks: output {out} is one of the rank files")
    if out.exists() and not overwrite:
        raise RunFileError(f"{out} exists; pass overwrite=True to replace it")
    runs: list[RunFile] = []
    try:
        for p in srcs:
            runs.append(RunFile(p))
        runs = _order(runs)
        n = _check(runs)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with h5py.File(out, "w") as f:
                _write(f, runs, n, out.parent)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RunFileError(f"cannot write merged run file {out}: {exc}") from exc
    finally:
        for r in runs:
            r.close()
    return out


def _order(runs: list[RunFile]) -> list[RunFile]:
    """Sort by recorded rank; refuse duplicate ranks or differing world sizes."""
    got = [r.metadata.get("rank") for r in runs]
    if any(not isinstance(k, int) for k in got):
        return runs
    ranks = cast("list[int]", got)  # every one an int: checked just above
    seen: dict[int, Path] = {}
    for r, k in zip(runs, ranks):
        if k in seen:
            raise RunFileError(
                f"{r.path}: rank {k} again (also {seen[k]}); these are not ranks of one run"
            )
        seen[k] = r.path
    worlds = {r.metadata.get("world_size") for r in runs}
    if len(worlds) > 1:
        raise RunFileError(
            f"rank files disagree on world_size ({sorted(map(str, worlds))}); "
            "these are not ranks of one run"
        )
    return [r for _, r in sorted(zip(ranks, runs), key=lambda x: x[0])]


def _check(runs: list[RunFile]) -> int:
    """Check the files are ranks of one run; return the common number of summary rows."""
    ref = runs[0]
    f0 = ref._f
    for r in runs[1:]:
        f = r._f
        for what, a, b in (
            ("layers", ref.layers, r.layers),
            ("layer shapes", ref.shapes, r.shapes),
            ("quantities", ref.quantities, r.quantities),
            ("subsampled quantities", ref.sample_quantities, r.sample_quantities),
            ("parameter groups", _ds(f0, S.LR).shape[1:], _ds(f, S.LR).shape[1:]),
            (
                "sampled coordinates",
                _digest(_ds(f0, S.SAMPLE_INDEX)),
                _digest(_ds(f, S.SAMPLE_INDEX)),
            ),
            ("histogram bins", _specs(ref), _specs(r)),
            ("full-tensor quantities", _attr(f0, S.FULL_GROUP), _attr(f, S.FULL_GROUP)),
        ):
            if a != b:
                raise RunFileError(
                    f"{r.path}: {what} differ from {ref.path}; these are not ranks of one run"
                )
    n = min(r.n_rows for r in runs)
    steps = ref.steps[:n]
    for r in runs[1:]:
        bad = np.flatnonzero(r.steps[:n] != steps)
        if bad.size:
            i = int(bad[0])
            raise RunFileError(
                f"{r.path}: summary row {i} is step {int(r.steps[i])}, {ref.path} has step "
                f"{int(steps[i])}; rank files of one run record the same steps"
            )
    return n


def _digest(d: h5py.Dataset) -> tuple[int, int]:
    a = d[()]
    return a.shape[0], hash(a.tobytes())


def _specs(run: RunFile) -> dict[str, S.HistSpec]:
    return {q: run.hist_spec(q) for q in run.quantities}


def _ds(f: h5py.File, path: str) -> h5py.Dataset:
    """The dataset at ``path``: h5py types ``f[path]`` as group, dataset or datatype."""
    return cast(h5py.Dataset, f[path])  # the file was validated: ``path`` is a dataset


def _attr(f: h5py.File, group: str) -> list[str]:
    names: Any = f[group].attrs["quantities"]  # a string array (h5py also types h5py.Empty)
    return [str(x.decode() if isinstance(x, bytes) else x) for x in names]


def _is_summary(name: str) -> bool:
    if name in (
        S.WALL_TIME,
        S.LOSS,
        S.LR,
        S.HIST_RECORDED,
        S.RECORDER_STEP,
        S.LAYER_STEP,
        S.EPS_DOMINATED,
    ):
        return True
    group, _, leaf = name.partition("/")
    if group in _SUMMARY_GROUPS:
        return True
    return group == S.HIST_GROUP and not leaf.endswith("_edges")


def _write(f: h5py.File, runs: list[RunFile], n: int, where: Path) -> None:
    src = runs[0]._f
    rel = [_relative(r.path, where) for r in runs]
    for k, v in src.attrs.items():
        f.attrs[k] = v
    meta = dict(runs[0].metadata)
    meta["merged"] = {
        "files": rel,
        "ranks": [r.metadata.get("rank") for r in runs],
        "rows": n,
        "source_rank": meta.get("rank"),
    }
    f.attrs["metadata_json"] = S.to_json(meta)

    step = f.create_dataset(S.STEP, data=runs[0].steps[:n])
    step.make_scale("step")
    losses = np.stack([r.loss[:n] for r in runs], axis=1)
    finite = np.isfinite(losses)
    count = finite.sum(axis=1)
    total = np.where(finite, losses, 0.0).sum(axis=1)
    mean = np.full(n, np.nan)
    np.divide(total, count, out=mean, where=count > 0)
    f.create_dataset(S.LOSS, data=mean)
    _ds(f, S.LOSS).dims[0].attach_scale(step)

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            g = f.require_group(name)
            for k, v in obj.attrs.items():
                g.attrs[k] = v
            return
        if name in (S.STEP, S.LOSS):
            return
        summary = _is_summary(name)
        shape = (n, *obj.shape[1:]) if summary else obj.shape
        if h5py.check_string_dtype(obj.dtype) is not None or 0 in shape:
            d = f.create_dataset(name, data=obj[tuple(slice(0, s) for s in shape)], dtype=obj.dtype)
        else:
            lay = h5py.VirtualLayout(shape=shape, dtype=obj.dtype)
            vs = h5py.VirtualSource(rel[0], name, shape=obj.shape, dtype=obj.dtype)
            lay[...] = vs[: shape[0]] if shape else vs
            d = f.create_virtual_dataset(name, lay, fillvalue=_fill(obj.dtype))
        for k, v in obj.attrs.items():
            if k not in _SCALE_ATTRS:
                d.attrs[k] = v
        if summary:
            d.dims[0].attach_scale(step)

    src.visititems(visit)

    g = f.require_group(RANKS_GROUP)
    g.attrs["files"] = rel
    g.attrs["ranks"] = json.dumps([r.metadata.get("rank") for r in runs])
    if n == 0:
        g.create_dataset("loss", shape=(0, len(runs)), dtype=np.float64)
    else:
        lay = h5py.VirtualLayout(shape=(n, len(runs)), dtype=np.float64)
        for j, (r, p) in enumerate(zip(runs, rel)):
            shape = _ds(r._f, S.LOSS).shape
            lay[:, j] = h5py.VirtualSource(p, S.LOSS, shape=shape, dtype=np.float64)[:n]
        g.create_virtual_dataset("loss", lay, fillvalue=np.nan)
    _ds(f, RANKS_LOSS).dims[0].attach_scale(step)


def _relative(path: Path, where: Path) -> str:
    """Source path relative to the merged file's folder (absolute across drives)."""
    try:
        rel = os.path.relpath(path.resolve(), where.resolve())
    except ValueError:
        return str(path.resolve())
    return rel if rel.startswith("..") else f".{os.sep}{rel}"


def _fill(dtype: np.dtype) -> Any:
    """NaN for floats: a source that cannot be found reads as NaN, not as zeros."""
    return np.nan if np.issubdtype(dtype, np.floating) else 0
