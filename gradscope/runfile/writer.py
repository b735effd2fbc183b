"""Append-only HDF5 writer for run files, working off the training thread.

:class:`RunWriter` creates every dataset when it opens the file (HDF5 SWMR forbids creating
datasets later), then takes rows from a bounded queue on its own thread. Rows are buffered
into blocks of ``block`` steps and written with one call per dataset; after every block (and
at least every ``flush_seconds`` while rows wait) the file is flushed, so a process killed
with SIGKILL leaves a file that opens and holds every flushed step.

Guarantees (docs/run-format.md, "Guarantees"):

* **Data before counts.** Every group's rows are published by its step dataset (``/step``,
  ``/samples/step``, ``/full/step``, ``/examplewise/step``): a block's data is written and
  flushed first, then the step dataset grows and is flushed. A reader cuts every dataset to
  its step length, so a crash or a failed write never exposes a row whose data is missing.
* **Failed writes are seen.** The writer keeps one handle per dataset for the file's life,
  so HDF5 writes its chunk caches at each flush, where a full disk (ENOSPC) or an I/O error
  raises; the error is kept and re-raised as :class:`~gradscope.errors.RunFileError` by the
  next call on the training side, and the file keeps the rows published before it.
* **Atomic creation.** The file is created under a temporary name in the same folder, all
  datasets are made and flushed, then it is renamed onto the path: a failed or killed
  creation leaves the old file (or none) and at most a ``.<name>.<pid>.gradscope-tmp`` file.
* **One writer per path.** The writer holds a POSIX record lock on its file; before
  replacing a path (``overwrite=True``) it refuses one that another writer holds (that lock,
  or HDF5's own file lock) or that this process is writing.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import errno
import os
import platform
import queue
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np

from gradscope import names
from gradscope.errors import RunFileError
from gradscope.runfile import schema as S

try:  # POSIX; on Windows the lock checks are skipped
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_CLOSE = object()
#: Free bytes kept beyond a block's data for HDF5's metadata (see _ensure_space).
_SPACE_MARGIN = 128 << 10
#: Resolved paths this process is writing (POSIX locks do not conflict within a process).
_OPEN_PATHS: set[str] = set()
_OPEN_LOCK = threading.Lock()


def _in_use_by_other_writer(path: Path) -> bool:
    """Whether another writer holds ``path``.

    This process, gradscope's record lock in another process, or HDF5's own exclusive file
    lock (a writer without SWMR).
    """
    with _OPEN_LOCK:
        if str(path.resolve()) in _OPEN_PATHS:
            return True
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        for lock in (fcntl.lockf, fcntl.flock):
            try:
                lock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    return True
                raise
        return False
    finally:
        os.close(fd)  # also releases the shared locks just taken


def check_replaceable(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse a path that exists (unless ``overwrite``) or that another writer holds.

    Raises:
        RunFileError: the path exists and ``overwrite`` is false, or a process (this one
            or another) is writing it.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise RunFileError(f"{path} exists; pass overwrite=True to replace it")
    if path.is_dir():
        raise RunFileError(f"{path} is a directory, not a run file")
    if _in_use_by_other_writer(path):
        raise RunFileError(
            f"{path} is being written by another process (or another Recorder in this "
            "one); refusing to replace it. Record to another path, or stop that run first"
        )


class RunWriter:
    """Write one run file.

    Args:
        path: file to create.
        layout: layers, quantities and samples; fixes every dataset's shape.
        metadata: JSON-able run metadata, stored as the root attribute ``metadata_json``.
        overwrite: replace an existing file; otherwise an existing path is refused.
        live: write a SWMR file (``libver=("v110", "v110")``) that readers can follow while
            training runs (local disks only; see docs/run-format.md).
        block: rows per write and per flush.
        flush_seconds: also flush when rows have waited this long.
        max_queue: queue length; a full queue makes the training thread wait.
        compression: ``None`` (default), ``"gzip"`` or ``"lzf"`` for the sample and
            full-tensor datasets. Histograms and statistics are always gzip-1 with shuffle.

    Raises:
        RunFileError: the path exists (and ``overwrite`` is false) or the file cannot be
            created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        layout: S.Layout,
        metadata: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
        live: bool = False,
        block: int = S.DEFAULT_BLOCK,
        flush_seconds: float = 30.0,
        max_queue: int = 64,
        compression: str | None = None,
    ) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        if flush_seconds <= 0:
            raise ValueError(f"flush_seconds must be > 0, got {flush_seconds}")
        if compression not in (None, "gzip", "lzf"):
            raise ValueError(f"compression must be None, 'gzip' or 'lzf', got {compression!r}")
        self.path = Path(path)
        self.layout = layout
        self.block = block
        self.flush_seconds = flush_seconds
        if not self.path.parent.is_dir():
            raise RunFileError(
                f"cannot create run file {self.path}: folder {self.path.parent} does not exist"
            )
        check_replaceable(self.path, overwrite)
        self._error: BaseException | None = None
        self._closed = False
        self._file: h5py.File | None = None
        self._ds: dict[str, h5py.Dataset] = {}
        self._lock_fd: int | None = None
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.gradscope-tmp")
        if hasattr(os, "statvfs"):
            st = os.statvfs(self.path.parent)
            free = st.f_bavail * st.f_frsize
            need = len(S.to_json(dict(metadata or {}))) + 2 * _SPACE_MARGIN
            if free < need:
                raise RunFileError(
                    f"cannot create run file {self.path}: {os.strerror(errno.ENOSPC)} "
                    f"({free >> 10} KiB free)"
                )
        try:
            self._file = h5py.File(tmp, "w", libver=("v110", "v110") if live else None)
            _create_datasets(self._file, layout, dict(metadata or {}), block, compression, live)
            self._file.flush()
            self._ds = _handles(self._file)
            self._lock(tmp)
            check_replaceable(self.path, overwrite)  # again: someone may have started since
            with _OPEN_LOCK:
                os.replace(tmp, self.path)
                _OPEN_PATHS.add(str(self.path.resolve()))
            if live:
                self._file.swmr_mode = True
                self._file.flush()
        except BaseException as exc:
            self._close_file()
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(exc, RunFileError):
                raise
            if isinstance(exc, (OSError, ValueError, TypeError)):
                raise RunFileError(f"cannot create run file {self.path}: {_why(exc)}") from exc
            raise
        self._n = {"summary": 0, "samples": 0, "full": 0, "examplewise": 0}
        # rows handed to the writer but not yet published, per kind: the training side
        # waits while a kind has a whole block outstanding, so a kill loses <= block rows
        self._unpublished = {"summary": 0, "samples": 0, "examplewise": 0}
        self._published = threading.Condition()
        self._buf: dict[str, list[Any]] = {"summary": [], "samples": [], "examplewise": []}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="gradscope-writer", daemon=True)
        self._thread.start()
        self._atexit = _register_atexit(self)

    # ------------------------------------------------------------------ training side
    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the writer thread, if any."""
        return self._error

    def write_summary(self, row: S.SummaryRow) -> None:
        """Queue one summary row.

        Blocks while the queue is full, or while a whole block of earlier rows is not on disk
        yet.
        """
        self._put_row("summary", row)

    def write_samples(self, step: int, values: Mapping[str, np.ndarray]) -> None:
        """Queue one row of subsampled coordinates: per quantity a ``(C,)`` array."""
        self._put_row("samples", (int(step), dict(values)))

    def write_full(self, step: int, values: Mapping[str, Sequence[np.ndarray]]) -> None:
        """Queue one full dump: per quantity one array per layer."""
        self._put(("full", (int(step), dict(values))))

    def write_examplewise(self, step: int, batch_size: int, loss: float, stats: np.ndarray) -> None:
        """Queue one row of per-example statistics: ``(L + 1, len(EXAMPLEWISE_STATS))``."""
        self._put_row("examplewise", (int(step), int(batch_size), float(loss), np.asarray(stats)))

    def flush(self, timeout: float | None = None) -> None:
        """Write and flush everything queued so far; returns when it is on disk."""
        done = threading.Event()
        self._put(("flush", done))
        if not done.wait(timeout):
            raise RunFileError(f"flushing {self.path} timed out")
        self._raise_if_failed()

    def close(self) -> None:
        """Write what is queued, flush and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_CLOSE)
        self._thread.join()
        atexit.unregister(self._atexit)
        self._raise_if_failed()

    def _put_row(self, kind: str, payload: Any) -> None:
        with self._published:
            while self._unpublished[kind] >= self.block and self._error is None:
                if not self._thread.is_alive():
                    break
                self._published.wait(0.5)
            self._unpublished[kind] += 1
        self._put((kind, payload))

    def _put(self, item: Any) -> None:
        self._raise_if_failed()
        if self._closed:
            raise RunFileError(f"run file {self.path} is closed")
        self._queue.put(item)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RunFileError(
                f"writing {self.path} failed ({_why(self._error)}); the file keeps the rows "
                "written before"
            ) from self._error

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        last_flush = time.monotonic()
        dirty = False
        while True:
            wait = max(0.0, self.flush_seconds - (time.monotonic() - last_flush))
            try:
                item = self._queue.get(timeout=wait if dirty else None)
            except queue.Empty:
                item = None
            if self._error is not None:  # failed: drain until closed, keep producers moving
                if item is _CLOSE:
                    return
                if isinstance(item, tuple) and item[0] == "flush":
                    item[1].set()
                continue
            try:
                if item is _CLOSE:
                    self._write_pending()
                    self._close_file()
                    return
                if item is not None:
                    kind, payload = item
                    if kind == "flush":
                        self._write_pending()
                        self._open_file().flush()
                        last_flush, dirty = time.monotonic(), False
                        payload.set()
                        continue
                    if kind == "full":
                        self._write_full(*payload)
                        self._open_file().flush()
                        last_flush = time.monotonic()
                        continue
                    self._buf[kind].append(payload)
                    dirty = True
                    if len(self._buf[kind]) >= self.block:
                        self._write_block(kind)  # data, flush, step, flush
                        last_flush = time.monotonic()
                        dirty = any(self._buf.values())
                if dirty and time.monotonic() - last_flush >= self.flush_seconds:
                    self._write_pending()
                    last_flush, dirty = time.monotonic(), False
            except BaseException as exc:  # noqa: BLE001 - kept and re-raised on the caller side
                # the kept exception's frames hold dataset handles: free them now, while
                # HDF5 is alive (freed at interpreter exit they crashed the process)
                traceback.clear_frames(exc.__traceback__)
                with self._published:
                    self._error = exc
                    self._published.notify_all()
                self._close_file()
                if isinstance(item, tuple) and item[0] == "flush":
                    item[1].set()
                if item is _CLOSE:
                    return

    def _open_file(self) -> h5py.File:
        """The file being written (open from ``__init__`` until the thread closes it)."""
        assert self._file is not None, "the run file is already closed"
        return self._file

    def _write_pending(self) -> None:
        for kind in self._buf:
            if self._buf[kind]:
                self._write_block(kind)

    def _write_block(self, kind: str) -> None:
        rows = self._buf[kind]
        self._buf[kind] = []
        self._ensure_space(kind, len(rows))
        if kind == "summary":
            self._write_summary_block(rows)
        elif kind == "samples":
            self._write_samples_block(rows)
        else:
            self._write_examplewise_block(rows)
        self._open_file().flush()
        with self._published:
            self._unpublished[kind] -= len(rows)
            self._published.notify_all()

    def _publish(self, step_path: str, t0: int, steps: np.ndarray) -> None:
        """Make the rows ``t0..`` visible: flush their data, then grow the step dataset."""
        self._open_file().flush()
        _append(self._ds[step_path], t0, steps)

    def _write_summary_block(self, rows: list[S.SummaryRow]) -> None:
        d, lay = self._ds, self.layout
        t0 = self._n["summary"]
        t1 = t0 + len(rows)
        n_layers = len(lay.layers)
        _append(d[S.WALL_TIME], t0, np.array([r.wall_time for r in rows], dtype=np.float64))
        _append(d[S.LOSS], t0, np.array([r.loss for r in rows], dtype=np.float64))
        _append(d[S.LR], t0, np.stack([np.asarray(r.lr, dtype=np.float64) for r in rows]))
        _append(d[S.RECORDER_STEP], t0, np.array([r.recorder_step for r in rows], np.int64))
        nan_l = np.full(n_layers, np.nan)
        no_step = np.full(n_layers, -1, dtype=np.int64)
        layer_step = [no_step if r.layer_step is None else r.layer_step for r in rows]
        _append(d[S.LAYER_STEP], t0, np.stack(layer_step).astype(np.int64))
        _append(
            d[S.EPS_DOMINATED],
            t0,
            np.stack([nan_l if r.eps_dominated is None else r.eps_dominated for r in rows]),
        )
        nan_g = np.full(lay.n_groups, np.nan)
        for name in lay.hparam_names:
            _append(
                d[f"{S.HPARAMS_GROUP}/{name}"],
                t0,
                np.stack([np.asarray(r.hparams.get(name, nan_g), np.float64) for r in rows]),
            )
        for q in lay.quantities:
            _append(d[f"{S.STATS_GROUP}/{q}"], t0, np.stack([r.stats[q] for r in rows]))
        for q in S.COSINE_QUANTITIES:
            if q in lay.quantities:
                _append(d[f"{S.COSINE_GROUP}/{q}"], t0, np.stack([r.cosine[q] for r in rows]))
        recorded = np.array([r.hist is not None for r in rows], dtype=np.uint8)
        _append(d[S.HIST_RECORDED], t0, recorded)
        for q in lay.quantities:
            spec = lay.hist_specs[q]
            block = np.zeros((len(rows), n_layers, spec.n_bins), dtype=np.int64)
            for i, r in enumerate(rows):
                if r.hist is not None:
                    block[i] = r.hist[q]
            _append(d[f"{S.HIST_GROUP}/{q}"], t0, block)
        self._publish(S.STEP, t0, np.array([r.step for r in rows], dtype=np.int64))
        self._n["summary"] = t1

    def _write_samples_block(self, rows: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        d = self._ds
        t0 = self._n["samples"]
        for q in self.layout.sample_quantities:
            name = f"{S.SAMPLES_GROUP}/{q}"
            if name in d:
                _append(d[name], t0, np.stack([v[q] for _, v in rows]))
        self._publish(S.SAMPLES_STEP, t0, np.array([s for s, _ in rows], dtype=np.int64))
        self._n["samples"] = t0 + len(rows)

    def _write_examplewise_block(self, rows: list[tuple[int, int, float, np.ndarray]]) -> None:
        d = self._ds
        t0 = self._n["examplewise"]
        g = S.EXAMPLEWISE_GROUP
        _append(d[f"{g}/batch_size"], t0, np.array([r[1] for r in rows], dtype=np.int64))
        _append(d[f"{g}/loss"], t0, np.array([r[2] for r in rows], dtype=np.float64))
        _append(d[f"{g}/stats"], t0, np.stack([r[3] for r in rows]).astype(np.float64))
        self._publish(S.EXAMPLEWISE_STEP, t0, np.array([r[0] for r in rows], dtype=np.int64))
        self._n["examplewise"] = t0 + len(rows)

    def _write_full(self, step: int, values: dict[str, Sequence[np.ndarray]]) -> None:
        self._ensure_space("full", 1)
        d = self._ds
        t0 = self._n["full"]
        for q in self.layout.full_quantities:
            for i, arr in enumerate(values[q]):
                _append(d[_full_path(q, i)], t0, np.asarray(arr).reshape(1, -1))
        self._publish(S.FULL_STEP, t0, np.array([step], dtype=np.int64))
        self._n["full"] = t0 + 1

    def _ensure_space(self, kind: str, n_rows: int) -> None:
        """Stop (ENOSPC) before a block that may not fit on the disk.

        HDF5 cannot close a file whose flush failed: its handles then fail on release and
        the library crashed at interpreter exit. Checking the free space first (the block's
        uncompressed size plus a margin) stops while the file can still close cleanly.
        """
        if not hasattr(os, "statvfs"):
            return
        prefix = {"summary": "", "samples": S.SAMPLES_GROUP, "full": S.FULL_GROUP,
                  "examplewise": S.EXAMPLEWISE_GROUP}[kind]  # fmt: skip
        per_row = 0
        for name, d in self._ds.items():
            top = name.split("/", 1)[0] if "/" in name else ""
            if kind == "summary":
                if top in (S.SAMPLES_GROUP, S.FULL_GROUP, S.EXAMPLEWISE_GROUP, S.LAYERS):
                    continue
            elif top != prefix:
                continue
            if d.maxshape and d.maxshape[0] is None:
                per_row += int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
        need = n_rows * per_row + _SPACE_MARGIN
        st = os.statvfs(self.path.parent)
        free = st.f_bavail * st.f_frsize
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"{os.strerror(errno.ENOSPC)} ({free >> 10} KiB free, the next "
                f"{n_rows} rows need up to {need >> 10} KiB)",
            )

    def _lock(self, path: Path) -> None:
        """Hold a POSIX record lock on the file while writing it (see check_replaceable)."""
        if fcntl is None:
            return
        self._lock_fd = os.open(path, os.O_RDWR)
        fcntl.lockf(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _close_file(self) -> None:
        """Close the dataset handles and the file (flushing it), then drop the lock."""
        handles, self._ds = self._ds, {}
        f, self._file = self._file, None
        # After a failed write each handle's release flushes (and fails) again inside
        # h5py's __dealloc__, which reports every failure as "Exception ignored": the first
        # error is already kept, so those reports are dropped while the handles go.
        with _quiet_h5py_dealloc(self._error is not None):
            handles.clear()  # first: HDF5 crashed releasing them after a failed close
            if f is not None:
                try:
                    f.close()
                except Exception as exc:  # noqa: BLE001 - kept: the close's flush failed
                    if self._error is None:
                        self._error = exc
                del f
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        with _OPEN_LOCK:
            _OPEN_PATHS.discard(str(self.path.resolve()))


_HOOK_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_h5py_dealloc(active: bool) -> Any:
    """Drop h5py's ``ObjectID.__dealloc__`` reports (others go to the previous hook)."""
    if not active:
        yield
        return
    with _HOOK_LOCK:
        previous = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            where = f"{unraisable.err_msg or ''} {unraisable.object!r}"
            if "dealloc" in where.lower() and "h5py" in where:
                return
            previous(unraisable)

        sys.unraisablehook = hook
        try:
            yield
        finally:
            sys.unraisablehook = previous


def _why(exc: BaseException) -> str:
    """An OS error in words (``No space left on device``), else the exception's text."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno is not None:
            return os.strerror(e.errno)
    text = str(exc)
    for code in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.EACCES):
        if os.strerror(code).lower() in text.lower() or f"errno = {code}," in text:
            return os.strerror(code)
    return text


def _dataset(f: h5py.File, path: str) -> h5py.Dataset:
    """The dataset at ``path``: h5py types ``f[path]`` as group, dataset or datatype."""
    return cast(h5py.Dataset, f[path])  # the writer made ``path`` a dataset


def _handles(f: h5py.File) -> dict[str, h5py.Dataset]:
    """One open handle per dataset, kept for the file's life (see the module docstring)."""
    out: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj

    f.visititems(visit)
    return out


def _full_path(quantity: str, layer: int) -> str:
    return names.full_dataset(quantity, layer)


def _append(dset: h5py.Dataset, t0: int, data: np.ndarray) -> None:
    t1 = t0 + data.shape[0]
    if dset.shape[0] < t1:
        dset.resize(t1, axis=0)
    dset[t0:t1] = data


def _create_datasets(
    f: h5py.File,
    lay: S.Layout,
    metadata: dict[str, Any],
    block: int,
    compression: str | None,
    live: bool,
) -> None:
    n_layers = len(lay.layers)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["format"] = S.FORMAT
    f.attrs["format_version"] = S.FORMAT_VERSION
    f.attrs["created_utc"] = now
    f.attrs["live"] = bool(live)
    f.attrs["block"] = int(block)
    f.attrs["metadata_json"] = S.to_json(metadata)
    f.attrs["writer_json"] = S.to_json(
        {
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
            "numpy": np.__version__,
            "python": platform.python_version(),
        }
    )
    f.attrs["stats"] = list(S.STATS)
    f.attrs["quantile_levels"] = np.asarray(S.QUANTILE_LEVELS)
    f.attrs["quantities"] = list(lay.quantities)

    g = f.create_group(S.LAYERS)
    str_t = h5py.string_dtype()
    g.create_dataset("name", data=np.array([x.name for x in lay.layers], dtype=object), dtype=str_t)
    g.create_dataset(
        "shape",
        data=np.array([S.to_json(list(x.shape)) for x in lay.layers], dtype=object),
        dtype=str_t,
    )
    g.create_dataset("numel", data=np.array([x.numel for x in lay.layers], dtype=np.int64))
    g.create_dataset("group", data=np.array([x.group for x in lay.layers], dtype=np.int64))
    g.create_dataset(
        "param_index", data=np.array([x.param_index for x in lay.layers], dtype=np.int64)
    )
    g.create_dataset(
        "forward_rank", data=np.array([x.forward_rank for x in lay.layers], dtype=np.int64)
    )
    g.create_dataset("optimizer", data=np.array([x.optimizer for x in lay.layers], np.int64))
    g.create_dataset("sample_offset", data=lay.sample_offsets)
    g.create_dataset("sample_count", data=lay.sample_counts)
    if lay.sample_quantities:
        idx = np.concatenate([np.asarray(ix, dtype=np.int64) for ix in lay.sample_index])
    else:
        idx = np.zeros(0, dtype=np.int64)
    f.create_dataset(S.SAMPLE_INDEX, data=idx)

    def series(name: str, tail: tuple[int, ...], dtype: Any, **kw: Any) -> h5py.Dataset:
        return f.create_dataset(
            name,
            shape=(0, *tail),
            maxshape=(None, *tail),
            chunks=(block, *tail) if "chunks" not in kw else kw.pop("chunks"),
            dtype=dtype,
            **kw,
        )

    step = series(S.STEP, (), np.int64)
    series(S.WALL_TIME, (), np.float64)
    series(S.LOSS, (), np.float64, fillvalue=np.nan)
    series(S.LR, (lay.n_groups,), np.float64, fillvalue=np.nan)
    series(S.HIST_RECORDED, (), np.uint8)
    series(S.RECORDER_STEP, (), np.int64)
    series(S.LAYER_STEP, (n_layers,), np.int64, fillvalue=-1)
    series(S.EPS_DOMINATED, (n_layers,), np.float64, fillvalue=np.nan)
    hp = f.require_group(S.HPARAMS_GROUP)
    hp.attrs["names"] = list(lay.hparam_names)
    for name in lay.hparam_names:
        series(f"{S.HPARAMS_GROUP}/{name}", (lay.n_groups,), np.float64, fillvalue=np.nan)
    for q in lay.quantities:
        # gzip-1 with shuffle: a row without histograms holds NaN quantile columns, and the
        # statistics of neighbouring rows share their exponent bytes (~45% smaller, measured)
        d = series(
            f"{S.STATS_GROUP}/{q}",
            (n_layers, len(S.STATS)),
            np.float64,
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        d.attrs["stats"] = list(S.STATS)
        spec = lay.hist_specs[q]
        h = series(
            f"{S.HIST_GROUP}/{q}",
            (n_layers, spec.n_bins),
            np.int64,
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        for k, v in spec.to_json().items():
            h.attrs[k] = v
        f.create_dataset(f"{S.HIST_GROUP}/{q}_edges", data=spec.edges())
        if q in S.COSINE_QUANTITIES:
            series(f"{S.COSINE_GROUP}/{q}", (n_layers,), np.float64)
    summary = [S.WALL_TIME, S.LOSS, S.LR, S.HIST_RECORDED, S.RECORDER_STEP, S.LAYER_STEP]
    summary += [S.EPS_DOMINATED] + [f"{S.HPARAMS_GROUP}/{n}" for n in lay.hparam_names]
    summary += [f"{S.STATS_GROUP}/{q}" for q in lay.quantities]
    summary += [f"{S.HIST_GROUP}/{q}" for q in lay.quantities]
    summary += [f"{S.COSINE_GROUP}/{q}" for q in lay.quantities if q in S.COSINE_QUANTITIES]
    step.make_scale("step")
    for name in summary:
        _dataset(f, name).dims[0].attach_scale(step)

    n_cols = int(lay.sample_counts.sum())
    s_step = series(S.SAMPLES_STEP, (), np.int64)
    for q in lay.sample_quantities:
        if n_cols == 0:
            break
        series(
            f"{S.SAMPLES_GROUP}/{q}",
            (n_cols,),
            np.float32,
            chunks=(block, min(n_cols, 1 << 16)),
            compression=compression,
        )
    s_step.make_scale("sample_step")
    f.require_group(S.SAMPLES_GROUP).attrs["quantities"] = list(lay.sample_quantities)

    e_step = series(S.EXAMPLEWISE_STEP, (), np.int64)
    series(f"{S.EXAMPLEWISE_GROUP}/batch_size", (), np.int64)
    series(f"{S.EXAMPLEWISE_GROUP}/loss", (), np.float64)
    e = series(f"{S.EXAMPLEWISE_GROUP}/stats", (n_layers + 1, len(S.EXAMPLEWISE_STATS)), np.float64)
    e.attrs["stats"] = list(S.EXAMPLEWISE_STATS)
    e_step.make_scale("examplewise_step")

    series(S.FULL_STEP, (), np.int64, chunks=(block,))
    fg = f.require_group(S.FULL_GROUP)
    fg.attrs["quantities"] = list(lay.full_quantities)
    for q in lay.full_quantities:
        for i, layer in enumerate(lay.layers):
            n = max(layer.numel, 1)
            series(
                _full_path(q, i),
                (layer.numel,),
                np.float32,
                chunks=(1, min(n, 1 << 20)),
                compression=compression,
            )
    _label_dimensions(f, lay)


#: netCDF-4's marker for a dimension that has no coordinate values (h5netcdf and netCDF-C
#: read a dimension scale whose NAME starts with it as a bare dimension).
_BARE_DIM = "This is a netCDF dimension but not a netCDF variable."


def _label_dimensions(f: h5py.File, lay: S.Layout) -> None:
    """Attach an HDF5 dimension scale to every axis of every dataset (netCDF-4 layout).

    xarray (``engine="h5netcdf"``) then opens each group. The row axes use the existing
    step datasets (``step``, ``samples/step``, ``examplewise/step``, ``full/step``); the
    other axes get bare dimensions at the root (``layer``, ``param_group``, ``stat``, ...),
    datasets with a shape and no data (HDF5 allocates no storage for them).
    """
    n_layers = len(lay.layers)
    made: dict[str, h5py.Dataset] = {}

    def dim(name: str, n: int) -> h5py.Dataset:
        if name not in made:
            d = f.create_dataset(name, shape=(n,), dtype=np.int32)
            d.make_scale(_BARE_DIM)
            made[name] = d
        return made[name]

    def label(path: str, *dims: h5py.Dataset) -> None:
        ds = _dataset(f, path)
        for i, scale in enumerate(dims):
            if scale is not None and len(ds.dims[i]) == 0:
                ds.dims[i].attach_scale(scale)

    step, s_step, e_step, f_step = (
        _dataset(f, S.STEP),
        _dataset(f, S.SAMPLES_STEP),
        _dataset(f, S.EXAMPLEWISE_STEP),
        _dataset(f, S.FULL_STEP),
    )
    f_step.make_scale("full_step")
    layer = dim("layer", n_layers)
    group = dim("param_group", lay.n_groups)
    for name in cast(h5py.Group, f[S.LAYERS]):
        label(f"{S.LAYERS}/{name}", layer)
    label(S.SAMPLE_INDEX, dim("sample_column", len(_dataset(f, S.SAMPLE_INDEX))))
    label(S.LR, step, group)
    label(S.LAYER_STEP, step, layer)
    label(S.EPS_DOMINATED, step, layer)
    for name in lay.hparam_names:
        label(f"{S.HPARAMS_GROUP}/{name}", step, group)
    stat = dim("stat", len(S.STATS))
    for q in lay.quantities:
        label(f"{S.STATS_GROUP}/{q}", step, layer, stat)
        n_bins = _dataset(f, f"{S.HIST_GROUP}/{q}").shape[2]
        label(f"{S.HIST_GROUP}/{q}", step, layer, dim(f"hist_bin_{q}", n_bins))
        label(f"{S.HIST_GROUP}/{q}_edges", dim(f"hist_edge_{q}", n_bins + 1))
        if q in S.COSINE_QUANTITIES:
            label(f"{S.COSINE_GROUP}/{q}", step, layer)
    n_cols = int(lay.sample_counts.sum())
    for q in lay.sample_quantities:
        if n_cols:
            label(f"{S.SAMPLES_GROUP}/{q}", s_step, dim("sample_column", n_cols))
    label(f"{S.EXAMPLEWISE_GROUP}/batch_size", e_step)
    label(f"{S.EXAMPLEWISE_GROUP}/loss", e_step)
    label(
        f"{S.EXAMPLEWISE_GROUP}/stats",
        e_step,
        dim("examplewise_row", n_layers + 1),
        dim("examplewise_stat", len(S.EXAMPLEWISE_STATS)),
    )
    for q in lay.full_quantities:
        for i, layer_info in enumerate(lay.layers):
            label(_full_path(q, i), f_step, dim(f"full_coord_{i}", layer_info.numel))


def _register_atexit(writer: RunWriter) -> Any:
    ref = weakref.ref(writer)

    def _close() -> None:
        w = ref()
        if w is not None and not w._closed:
            try:
                w.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to tell
                pass

    atexit.register(_close)
    return _close
