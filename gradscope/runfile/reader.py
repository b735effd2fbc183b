"""Read run files lazily: every accessor reads only the rows and columns it returns.

:class:`RunFile` opens a file written by :class:`~gradscope.runfile.writer.RunWriter` (also
while training still writes it, through HDF5 SWMR, and after the writer was killed) and
returns NumPy arrays. The number of complete summary rows is the length of ``/step``; longer
datasets (a block torn by a crash) are cut to it.

Anything that is not a readable run file of a supported schema raises
:class:`~gradscope.errors.RunFileError` with one message that names the file and the cause.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import h5py
import numpy as np

from gradscope.errors import MissingDataError, RunFileError
from gradscope.runfile import schema as S
from gradscope.runfile import validate as V

_F = TypeVar("_F", bound=Callable[..., Any])


def _reading(method: _F) -> _F:
    """Turn HDF5 read errors (corrupt chunks, a vanished file) into one RunFileError."""

    @functools.wraps(method)
    def wrapper(self: RunFile, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except RunFileError:
            raise
        except (OSError, RuntimeError, MemoryError) as exc:
            raise RunFileError(
                f"{self.path}: cannot read it: {V.describe_hdf5_error(exc)}"
            ) from exc

    return wrapper  # type: ignore[return-value]


def _ds(g: h5py.Group, path: str) -> h5py.Dataset:
    """The dataset at ``path``: h5py types ``g[path]`` as group, dataset or datatype."""
    return cast(h5py.Dataset, g[path])  # validated on open: the layout's datasets exist


class RunFile:
    """A run file opened for reading.

    Args:
        path: the file.
        swmr: open in SWMR read mode (follow a live writer). ``None`` (default) tries a plain
            open first and falls back to SWMR when the file is still open for writing, or
            was left so by a crash.

    Raises:
        RunFileError: missing, not HDF5, truncated or corrupt, not a gradscope run, or of an
            unsupported schema version.

    Example:
        >>> with RunFile("run.h5") as run:  # doctest: +SKIP
        ...     norms = run.summary("grad", "norm")  # (steps, layers)
    """

    def __init__(self, path: str | os.PathLike[str], *, swmr: bool | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RunFileError(f"{self.path}: no such run file")
        self._f = self._open(swmr)
        try:
            self._check_schema()
            self._read_static()
        except RunFileError:
            self._f.close()
            raise
        except (*V.H5_ERRORS, RecursionError) as exc:
            self._f.close()
            raise RunFileError(
                f"{self.path}: corrupt or incomplete run file: {V.describe_hdf5_error(exc)}"
            ) from exc

    # ------------------------------------------------------------------ opening
    def _open(self, swmr: bool | None) -> h5py.File:
        try:
            is_hdf5 = h5py.is_hdf5(self.path)
        except OSError as exc:
            why = exc.strerror or "I/O error"
            raise RunFileError(f"{self.path}: cannot read it ({why})") from exc
        if not is_hdf5:
            raise RunFileError(f"{self.path}: not an HDF5 file (no HDF5 signature)")
        modes = [False, True] if swmr is None else [bool(swmr)]
        last: BaseException | None = None
        for mode in modes:
            try:
                return h5py.File(self.path, "r", swmr=mode)
            except V.H5_ERRORS as exc:
                last = exc
        words = V.describe_hdf5_error(last) if last is not None else "cannot open it"
        if words.startswith("locked"):
            raise RunFileError(f"{self.path}: {words}") from last
        raise RunFileError(f"{self.path}: truncated or corrupt HDF5 file: {words}") from last

    def _check_schema(self) -> None:
        fmt = V.read_attr(self.path, self._f, "format")
        if fmt != S.FORMAT:
            if fmt is None:
                shown = "no 'format' attribute"
            elif isinstance(fmt, str) and len(fmt) < 64:
                shown = f"format={fmt!r}"
            else:
                shown = "a 'format' attribute that is not a short text"
            raise RunFileError(f"{self.path}: not a gradscope run file ({shown})")
        raw = V.read_attr(self.path, self._f, "format_version")
        v = np.asarray(raw) if raw is not None else np.asarray(-1)
        version = int(v) if v.shape == () and v.dtype.kind in "iu" else None
        if version is None:
            raise RunFileError(f"{self.path}: its format_version is not an integer (damaged)")
        if version not in S.READABLE_VERSIONS:
            raise RunFileError(
                f"{self.path}: run-file schema version {version} is not supported "
                f"(this gradscope reads versions {', '.join(map(str, S.READABLE_VERSIONS))})"
            )
        self._version = version

    def _read_static(self) -> None:
        self._metadata = V.load_metadata(self.path, self._f)
        merged = self._metadata.get("merged")
        if merged:
            # HDF5 reads a virtual dataset whose source is gone as fill values, silently
            missing = [f for f in merged["files"] if not (self.path.parent / f).is_file()]
            if missing:
                raise RunFileError(
                    f"{self.path}: merged run file whose rank files are missing "
                    f"({', '.join(missing)}); keep them next to it, or merge again"
                )
        V.check_layout(self.path, self._f, self._metadata)
        g = cast(h5py.Group, self._f[S.LAYERS])  # the layer table is a group
        self._numel = _ds(g, "numel")[()]
        self._names, self._shapes = V.check_layer_table(
            self.path, list(_ds(g, "name")[()]), list(_ds(g, "shape")[()]), self._numel
        )
        self._group = _ds(g, "group")[()]
        self._forward_rank = _ds(g, "forward_rank")[()]
        self._layer_opt = (
            _ds(g, "optimizer")[()] if "optimizer" in g else np.zeros_like(self._numel)
        )
        self._sample_offset = _ds(g, "sample_offset")[()]
        self._sample_count = _ds(g, "sample_count")[()]
        quantities: Any = self._f.attrs["quantities"]  # a string array (h5py types Empty too)
        self._quantities = [_str(q) for q in quantities]
        stats = self._f.attrs.get("stats")
        self._stats = tuple(_str(x) for x in stats) if stats is not None else S.STATS_V1
        # a group where present (h5py's get also types links, for getlink=True)
        hp = cast("h5py.Group | None", self._f.get(S.HPARAMS_GROUP))
        self._hparam_names = (
            tuple(_str(x) for x in hp.attrs.get("names", [])) if hp is not None else None
        )
        self._index = {n: i for i, n in enumerate(self._names)}

    # ------------------------------------------------------------------ context
    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunFile({str(self.path)!r}, layers={len(self._names)}, rows={self.n_rows})"

    def refresh(self) -> None:
        """See rows a live (SWMR) writer has flushed since the last look."""
        if self._f.swmr_mode:
            self._f.visititems(lambda _n, o: o.refresh() if isinstance(o, h5py.Dataset) else None)

    # ------------------------------------------------------------------ static facts
    @property
    def metadata(self) -> dict[str, Any]:
        """Run metadata (versions, optimizer, model, recorder config, seed, tags)."""
        return self._metadata

    @property
    def attrs(self) -> dict[str, Any]:
        """The root attributes as stored."""
        return {k: self._f.attrs[k] for k in self._f.attrs}

    @property
    def layers(self) -> list[str]:
        """Layer (parameter) names in column order: order of first use in forward."""
        return list(self._names)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter shape per layer."""
        return dict(zip(self._names, self._shapes))

    @property
    def sizes(self) -> np.ndarray:
        """Layer sizes ``n`` (number of coordinates), in column order."""
        return np.asarray(self._numel)

    @property
    def groups(self) -> np.ndarray:
        """Optimizer parameter group of each layer."""
        return np.asarray(self._group)

    @property
    def forward_rank(self) -> np.ndarray:
        """Order of first use in the first forward pass per layer, in column order.

        0 is the layer nearest the input; -1 marks a layer never used in a forward pass
        the recorder saw. Columns are sorted by it (unused layers last), see
        docs/run-format.md "Layer order".
        """
        return np.asarray(self._forward_rank)

    @property
    def quantities(self) -> list[str]:
        """Quantities with statistics and histograms in this file.

        The core ones the optimizer defines, then its other state entries under their own keys.
        """
        return list(self._quantities)

    @property
    def layer_optimizers(self) -> np.ndarray:
        """Index of the optimizer that steps each layer (0 everywhere for one optimizer)."""
        return np.asarray(self._layer_opt)

    @property
    def unavailable(self) -> dict[str, str]:
        """Core quantities this run lacks, each with the reason.

        E.g. ``"stepsize": "stepsize undefined for this optimizer: ..."``; empty for files before
        this field.
        """
        q = self._metadata.get("quantities") if isinstance(self._metadata, dict) else None
        un = q.get("unavailable") if isinstance(q, dict) else None
        return {str(k): str(v) for k, v in un.items()} if isinstance(un, dict) else {}

    @property
    def sample_quantities(self) -> list[str]:
        """Quantities with a stored per-coordinate subsample (readable by :meth:`subsample`).

        Empty when no subsample was configured, or when every layer has zero sampled
        coordinates. Listed in :data:`~gradscope.runfile.schema.QUANTITIES` order.
        """
        return [q for q in S.QUANTITIES if f"{S.SAMPLES_GROUP}/{q}" in self._f]

    @property
    def stats(self) -> tuple[str, ...]:
        """Names of the per-layer statistics (:data:`~gradscope.runfile.schema.STATS`).

        Every name is readable with :meth:`summary`; a statistic this file predates (the
        ``zeros`` count of a version 1 file) reads as NaN.
        """
        return S.STATS

    @property
    def version(self) -> int:
        """The file's schema version."""
        return self._version

    # ------------------------------------------------------------------ row axes
    @property
    def n_rows(self) -> int:
        """Number of complete summary rows (the length of ``/step``)."""
        return int(_ds(self._f, S.STEP).shape[0])

    @property
    @_reading
    def steps(self) -> np.ndarray:
        """The optimizer's own step number t of each summary row.

        From the optimizer's state (``state["step"]``): a run resumed from a checkpoint, or
        a recorder attached late, starts at the true t. Version 1 files hold the recorder's
        count here.
        """
        return _ds(self._f, S.STEP)[()]

    @property
    def recorder_steps(self) -> np.ndarray:
        """The recorder's own count of each row (1 = the first step it saw)."""
        if S.RECORDER_STEP not in self._f:
            return self.steps
        return self._rows(S.RECORDER_STEP)

    @_reading
    def layer_steps(self, rows: slice = slice(None)) -> np.ndarray:
        """Each layer's own t per row, ``(rows, layers)`` int64; -1 where unknown.

        Layers can differ from :attr:`steps`: a parameter without a gradient on some step
        is skipped by torch's optimizers, and several optimizers count separately.
        """
        r = _clip(rows, self.n_rows)
        if S.LAYER_STEP not in self._f:
            st = _ds(self._f, S.STEP)[r]
            return np.repeat(st[:, None], len(self._names), axis=1)
        return _ds(self._f, S.LAYER_STEP)[r]

    @property
    def hparam_names(self) -> tuple[str, ...]:
        """Names of the per-row param-group hyperparameters (``lr``, ``betas.0``, ...)."""
        if self._hparam_names is not None:
            return self._hparam_names
        names: dict[str, None] = {}
        for g in self._metadata_groups():
            names.update(dict.fromkeys(S.hparam_values(g)))
        return tuple(names)

    @_reading
    def hparam(self, name: str, rows: slice = slice(None)) -> np.ndarray:
        """One hyperparameter per row and param group, ``(rows, groups)`` float64.

        NaN where a group has no such entry. Version 1 files give the value the run's
        metadata holds (the groups at the start of the run) on every row.
        """
        r = _clip(rows, self.n_rows)
        n = len(range(*r.indices(self.n_rows)))
        if self._hparam_names is None:
            vals = [S.hparam_values(g).get(name, np.nan) for g in self._metadata_groups()]
            if all(np.isnan(vals)):
                raise MissingDataError(f"{self.path}: no hyperparameter {name!r}")
            return np.tile(np.asarray(vals, dtype=np.float64), (n, 1))
        if name not in self._hparam_names:
            raise MissingDataError(
                f"{self.path}: no hyperparameter {name!r}; recorded: {list(self._hparam_names)}"
            )
        return _ds(self._f, f"{S.HPARAMS_GROUP}/{name}")[r]

    def layer_hparam(self, name: str, rows: slice = slice(None)) -> np.ndarray:
        """One hyperparameter per row and layer (each layer's own group), ``(rows, layers)``."""
        by_group = self.hparam(name, rows)
        g = np.asarray(self._group, dtype=np.int64)
        out = np.full((by_group.shape[0], len(g)), np.nan)
        ok = (g >= 0) & (g < by_group.shape[1])
        out[:, ok] = by_group[:, g[ok]]
        return out

    @_reading
    def eps_dominated(self, rows: slice = slice(None)) -> np.ndarray:
        """Eps-dominated coordinates per row and layer, ``(rows, layers)`` float64.

        Coordinates whose stepsize u >= 1 / (1.01 eps), counted on histogram rows; NaN on
        other rows, where the layer's group has no eps, and in version 1 files.
        """
        r = _clip(rows, self.n_rows)
        if S.EPS_DOMINATED not in self._f:
            n = len(range(*r.indices(self.n_rows)))
            return np.full((n, len(self._names)), np.nan)
        return _ds(self._f, S.EPS_DOMINATED)[r]

    def _metadata_groups(self) -> list[dict[str, Any]]:
        opt = self._metadata.get("optimizer")
        groups = opt.get("param_groups") if isinstance(opt, dict) else None
        if not isinstance(groups, list):
            return []
        return [g if isinstance(g, dict) else {} for g in groups]

    @property
    def wall_time(self) -> np.ndarray:
        """Wall time (s since the epoch) of each summary row."""
        return self._rows(S.WALL_TIME)

    @property
    def loss(self) -> np.ndarray:
        """Logged loss of each summary row (NaN where none was logged)."""
        return self._rows(S.LOSS)

    @property
    def lr(self) -> np.ndarray:
        """Learning rate per row and parameter group, ``(rows, groups)``."""
        return self._rows(S.LR)

    @property
    def hist_recorded(self) -> np.ndarray:
        """Boolean per summary row: were histograms (and quantiles) recorded."""
        return self._rows(S.HIST_RECORDED).astype(bool)

    # ------------------------------------------------------------------ accessors
    def layer_index(self, layer: str | int) -> int:
        """Column of a layer, by name or index."""
        if isinstance(layer, (int, np.integer)):
            if not -len(self._names) <= int(layer) < len(self._names):
                raise MissingDataError(f"layer index {layer} out of range")
            return int(layer) % len(self._names)
        try:
            return self._index[layer]
        except KeyError:
            raise MissingDataError(f"{self.path}: no layer {layer!r}") from None

    @_reading
    def summary(
        self,
        quantity: str,
        stat: str,
        layer: str | int | None = None,
        rows: slice = slice(None),
    ) -> np.ndarray:
        """One statistic of one quantity.

        Args:
            quantity: e.g. ``"grad"`` or ``"stepsize"``.
            stat: one of :data:`~gradscope.runfile.schema.STATS`.
            layer: a layer name or column; ``None`` for all layers.
            rows: which summary rows (default all complete rows).

        Returns:
            ``(rows, layers)``, or ``(rows,)`` for one layer. Quantile statistics are NaN on
            rows without histograms.
        """
        d = self._dataset(S.STATS_GROUP, quantity)
        S.stat_index(stat)  # an unknown name is a KeyError whatever the file's version
        r = _clip(rows, self.n_rows)
        if stat not in self._stats:  # a statistic this file predates
            n = len(range(*r.indices(self.n_rows)))
            return np.full((n,) if layer is not None else (n, len(self._names)), np.nan)
        j = S.stat_index(stat, self._stats)
        if layer is None:
            return d[r, :, j]
        return d[r, self.layer_index(layer), j]

    @_reading
    def histogram(
        self, quantity: str, layer: str | int | None = None, rows: slice = slice(None)
    ) -> np.ndarray:
        """Fixed-bin counts, ``(rows, layers, bins)`` or ``(rows, bins)`` for one layer.

        The last bin counts non-finite values; the others are delimited by
        :meth:`hist_edges`. Rows without histograms are zero (see :attr:`hist_recorded`).
        """
        d = self._dataset(S.HIST_GROUP, quantity)
        r = _clip(rows, self.n_rows)
        if layer is None:
            return d[r]
        return d[r, self.layer_index(layer)]

    def hist_edges(self, quantity: str) -> np.ndarray:
        """Edges of the finite histogram bins (``bins`` values, +-inf at the ends)."""
        return self._dataset(S.HIST_GROUP, f"{quantity}_edges")[()]

    def hist_spec(self, quantity: str) -> S.HistSpec:
        """The histogram bin definition of a quantity."""
        a: Any = self._dataset(S.HIST_GROUP, quantity).attrs  # numbers (h5py types Empty too)
        return S.HistSpec(bool(a["signed"]), int(a["e_lo"]), int(a["e_hi"]), int(a["sub"]))

    @_reading
    def cosine(
        self, quantity: str = "grad", layer: str | int | None = None, rows: slice = slice(None)
    ) -> np.ndarray:
        """Cosine between this and the previous recorded row (NaN on the first row)."""
        d = self._dataset(S.COSINE_GROUP, quantity)
        r = _clip(rows, self.n_rows)
        if layer is None:
            return d[r]
        return d[r, self.layer_index(layer)]

    @property
    @_reading
    def sample_steps(self) -> np.ndarray:
        """Optimizer step of each subsample row."""
        return _ds(self._f, S.SAMPLES_STEP)[()]

    @_reading
    def sample_index(self, layer: str | int) -> np.ndarray:
        """The fixed flat coordinate indices sampled in ``layer`` (sorted)."""
        i = self.layer_index(layer)
        o, c = int(self._sample_offset[i]), int(self._sample_count[i])
        return _ds(self._f, S.SAMPLE_INDEX)[o : o + c]

    @_reading
    def subsample(self, quantity: str, layer: str | int, rows: slice = slice(None)) -> np.ndarray:
        """Per-coordinate time series, ``(sample_rows, k)``; columns match :meth:`sample_index`."""
        name = f"{S.SAMPLES_GROUP}/{quantity}"
        if name not in self._f:
            raise MissingDataError(f"{self.path}: no subsample of {quantity!r} was recorded")
        i = self.layer_index(layer)
        o, c = int(self._sample_offset[i]), int(self._sample_count[i])
        n = int(_ds(self._f, S.SAMPLES_STEP).shape[0])
        return _ds(self._f, name)[_clip(rows, n), o : o + c]

    @property
    @_reading
    def full_steps(self) -> np.ndarray:
        """Optimizer step of each full-tensor dump."""
        return _ds(self._f, S.FULL_STEP)[()]

    @_reading
    def full(self, quantity: str, layer: str | int, rows: slice = slice(None)) -> np.ndarray:
        """Full tensors of one layer, ``(dumps, *shape)``."""
        i = self.layer_index(layer)
        name = f"{S.FULL_GROUP}/{quantity}/{i:05d}"
        if name not in self._f:
            raise MissingDataError(f"{self.path}: no full tensors of {quantity!r} were recorded")
        n = int(_ds(self._f, S.FULL_STEP).shape[0])
        data = _ds(self._f, name)[_clip(rows, n)]
        return data.reshape((data.shape[0], *self._shapes[i]))

    @property
    @_reading
    def examplewise_steps(self) -> np.ndarray:
        """Optimizer step of each per-example statistics row."""
        return _ds(self._f, S.EXAMPLEWISE_STEP)[()]

    @_reading
    def examplewise(
        self, stat: str, layer: str | int | None = None, rows: slice = slice(None)
    ) -> np.ndarray:
        """Per-example gradient statistic (``schema.EXAMPLEWISE_STATS``).

        Returns ``(rows, layers)``, ``(rows,)`` for one layer, or for the whole network
        with ``layer="network"``. Rows are aligned with :attr:`examplewise_steps`.
        """
        try:
            j = S.EXAMPLEWISE_STATS.index(stat)
        except ValueError:
            raise KeyError(
                f"unknown examplewise statistic {stat!r}; known: {list(S.EXAMPLEWISE_STATS)}"
            ) from None
        d = self._dataset(S.EXAMPLEWISE_GROUP, "stats")
        r = _clip(rows, int(_ds(self._f, S.EXAMPLEWISE_STEP).shape[0]))
        if layer is None:
            return d[r, : len(self._names), j]
        col = len(self._names) if layer == "network" else self.layer_index(layer)
        return d[r, col, j]

    @_reading
    def examplewise_batch_size(self) -> np.ndarray:
        """Batch size B of each per-example statistics row."""
        n = int(_ds(self._f, S.EXAMPLEWISE_STEP).shape[0])
        return _ds(self._f, f"{S.EXAMPLEWISE_GROUP}/batch_size")[:n]

    def iter_summary(
        self, quantity: str, stat: str, chunk: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(steps, values)`` blocks of ``chunk`` rows; values ``(rows, layers)``."""
        n = self.n_rows
        for t0 in range(0, n, chunk):
            r = slice(t0, min(n, t0 + chunk))
            yield _ds(self._f, S.STEP)[r], self.summary(quantity, stat, rows=r)

    def to_xarray(self, group: str = S.STATS_GROUP) -> Any:
        """One group of the file as a lazy ``xarray.Dataset`` (``engine="h5netcdf"``).

        Every dataset of a file written by this version carries HDF5 dimension scales, so
        xarray reads it without gradscope; here the axes also get their labels: ``layer``
        (names), ``step`` (the group's own optimizer steps), ``stat`` (statistic names, in
        the ``stats`` group) and
        ``examplewise_row`` (layer names, then ``network``). Values are read when used.

        Args:
            group: ``"/"`` (step, loss, lr, ...), ``"stats"``, ``"cosine"``, ``"hist"``,
                ``"samples"``, ``"hparams"``, ``"layers"``, ``"examplewise"`` or ``"full"``.

        Raises:
            MissingDataError: xarray or h5netcdf is not installed, or the file has no
                dimension scales (written before they were added, or a merged rank view).
        """
        try:
            import xarray as xr
        except ImportError:
            raise MissingDataError(
                "RunFile.to_xarray needs xarray and h5netcdf (pip install xarray h5netcdf)"
            ) from None
        if "layer" not in self._f:
            raise MissingDataError(
                f"{self.path}: this file has no dimension scales (older writer or a merged "
                "rank view): read it with RunFile's accessors"
            )
        try:
            ds = xr.open_dataset(self.path, engine="h5netcdf", group=group)
        except (ValueError, OSError) as e:
            raise MissingDataError(f"{self.path}: xarray cannot open group {group!r}: {e}") from e
        coords: dict[str, Any] = {}
        rows = {
            S.SAMPLES_GROUP: S.SAMPLES_STEP,
            S.EXAMPLEWISE_GROUP: S.EXAMPLEWISE_STEP,
            S.FULL_GROUP: S.FULL_STEP,
        }.get(group.strip("/"), S.STEP)
        if "step" in ds.dims and group.strip("/"):
            coords["step"] = _ds(self._f, rows)[: ds.sizes["step"]]
        if "layer" in ds.dims:
            coords["layer"] = list(self._names)
        if "stat" in ds.dims:
            coords["stat"] = list(self._stats)
        if "examplewise_row" in ds.dims:
            coords["examplewise_row"] = [*self._names, "network"]
        return ds.assign_coords(coords)

    @_reading
    def summaries_frame(
        self,
        quantities: Iterable[str] | None = None,
        stats: Iterable[str] | None = None,
        rows: slice = slice(None),
    ) -> Any:
        """Per-layer summary statistics as a long-format ``pandas.DataFrame``.

        Columns ``step``, ``layer``, ``quantity``, ``stat``, ``value``: one row per recorded
        step, layer, quantity and statistic (``df.pivot_table`` or seaborn take it as is).

        Args:
            quantities: default every recorded quantity.
            stats: default every statistic of the file.
            rows: which summary rows.
        """
        import pandas as pd

        qs = list(quantities) if quantities is not None else list(self.quantities)
        sts = list(stats) if stats is not None else list(self._stats)
        steps = _ds(self._f, S.STEP)[_clip(rows, self.n_rows)]
        names = np.asarray(self._names, dtype=object)
        parts = []
        for q in qs:
            for st in sts:
                v = np.asarray(self.summary(q, st, rows=rows), dtype=float)
                parts.append(
                    pd.DataFrame(
                        {
                            "step": np.repeat(steps, len(names)),
                            "layer": np.tile(names, len(steps)),
                            "quantity": q,
                            "stat": st,
                            "value": v.reshape(-1),
                        }
                    )
                )
        cols = ["step", "layer", "quantity", "stat", "value"]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

    # ------------------------------------------------------------------ helpers
    @_reading
    def _rows(self, name: str) -> np.ndarray:
        return _ds(self._f, name)[: self.n_rows]

    def _dataset(self, group: str, name: str) -> h5py.Dataset:
        path = f"{group}/{name}"
        if path not in self._f:
            raise MissingDataError(f"{self.path}: no {path!r} in this run file")
        return _ds(self._f, path)


def _clip(rows: slice, n: int) -> slice:
    start, stop, step = rows.indices(n)
    return slice(start, stop, step)


def _str(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)
