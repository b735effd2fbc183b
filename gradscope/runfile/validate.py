"""Check a run file's layout before reading it, in bounded time and memory.

:func:`check_layout` compares every dataset :class:`~gradscope.runfile.RunFile` reads with
the schema (present, a dataset, dtype kind, rank, trailing shape agreeing with the layers,
groups and bins) and bounds every declared length by what the file can hold (the number of
allocated chunks, or the bytes stored), so a damaged header that declares 10^12 rows is
refused instead of read. Attributes are read only when of a sane size; the JSON metadata
must be an object whose fields the reader and the report use have the right types.

:func:`describe_hdf5_error` turns an HDF5 error into words (truncated, a damaged block, a
file locked by its writer) and :func:`probe` runs the whole check in a forked child with a
time limit, for callers (the command line) that must survive files which make the HDF5
library itself loop or crash.

Everything raises :class:`~gradscope.errors.RunFileError` with one line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gradscope.errors import RunFileError
from gradscope.runfile import schema as S

__all__ = ["LIMITS", "check_layout", "describe_hdf5_error", "load_metadata", "probe"]

#: Bounds on what a run file may declare (far above any real run, far below what breaks).
LIMITS: Mapping[str, int] = {
    "metadata_bytes": 8 << 20,  # metadata_json
    "attr_bytes": 1 << 20,  # any other string attribute
    "attr_items": 4096,  # elements of an array attribute
    "layers": 1 << 20,  # recorded parameter tensors
    "groups": 1 << 16,  # optimizer parameter groups
    "bins": 1 << 16,  # histogram bins per layer
    "numel": 1 << 48,  # coordinates of one layer
    "json_depth": 64,  # nesting of metadata_json
}

#: Errors h5py raises for damaged files (by kind: HDF5 failures surface as OSError,
#: RuntimeError, KeyError for unreadable links, ValueError/TypeError for nonsense types).
H5_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    OverflowError,
    UnicodeDecodeError,
    MemoryError,
)

_INT, _FLOAT, _STR = "iu", "f", "str"

_WORDS = (
    (("truncated file", "end of file", "eof", "addr overflow", "address overflow"),
     "the file is truncated or a block points past its end"),
    (("unable to lock file", "file locking", "resource temporarily unavailable"),
     "locked by a process still writing it without SWMR; read it after the run, or record "
     "with live=True"),
    (("filter", "inflate", "deflate", "decompress", "checksum"),
     "a compressed or checksummed data block is damaged"),
    (("superblock", "file signature", "file image"), "its HDF5 superblock is damaged"),
    (("b-tree", "btree", "symbol table", "heap", "object header", "signature", "node"),
     "its internal HDF5 structure is damaged"),
)  # fmt: skip


def describe_hdf5_error(exc: BaseException) -> str:
    """The problem an HDF5/h5py error stands for, in words (never the library's text)."""
    if isinstance(exc, MemoryError):
        return "it declares more data than memory can hold"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply to read"
    text = str(exc).lower()
    for needles, words in _WORDS:
        if any(n in text for n in needles):
            return words
    return "its HDF5 data is damaged or unreadable"


def _fail(path: Path, what: str) -> RunFileError:
    return RunFileError(f"{path}: {what}")


# ---------------------------------------------------------------------------- attributes
def read_attr(path: Path, obj: h5py.HLObject, key: str, limit: int | None = None) -> Any:
    """One attribute, read only if its size is sane; ``None`` when absent."""
    where = obj.name if obj.name != "/" else "the file"
    try:
        if key not in obj.attrs:
            return None
        aid = obj.attrs.get_id(key)
        n = int(np.prod(aid.shape, dtype=np.int64)) if aid.shape else 1
        if n > LIMITS["attr_items"]:
            raise _fail(path, f"attribute {key!r} of {where} holds {n} values (damaged)")
        value = obj.attrs[key]
    except RunFileError:
        raise
    except H5_ERRORS as exc:
        raise _fail(path, f"cannot read attribute {key!r} of {where}: "
                    f"{describe_hdf5_error(exc)}") from exc  # fmt: skip
    if isinstance(value, (bytes, str)):
        value = _text(path, f"attribute {key!r} of {where}", value)
    cap = LIMITS["attr_bytes"] if limit is None else limit
    if isinstance(value, str) and len(value) > cap:
        raise _fail(
            path,
            f"attribute {key!r} of {where} is {len(value) / 2**20:.1f} MB "
            f"(at most {cap / 2**20:.0f} MB is accepted; damaged or not a gradscope file)",
        )
    return value


def _text(path: Path, what: str, value: bytes | str) -> str:
    """``value`` as valid UTF-8 text; a damaged byte is a clear error, not a surrogate.

    h5py decodes stored strings with ``surrogateescape``: a flipped byte in a name comes
    back as a lone surrogate, which no terminal or JSON encoder can print.
    """
    try:
        return value.decode() if isinstance(value, bytes) else value.encode().decode()
    except UnicodeError:
        raise _fail(path, f"{what} is not valid text (damaged)") from None


def _str_list(path: Path, obj: h5py.HLObject, key: str, required: bool = True) -> list[str]:
    value = read_attr(path, obj, key)
    if value is None:
        if required:
            raise _fail(path, f"attribute {key!r} is missing (damaged run file)")
        return []
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    out = []
    for x in arr.ravel():
        if isinstance(x, (bytes, str)):
            x = _text(path, f"attribute {key!r}", x)
        if not isinstance(x, str):
            raise _fail(path, f"attribute {key!r} is not a list of names (damaged)")
        out.append(x)
    return out


def _int_attr(path: Path, obj: h5py.HLObject, key: str, lo: int, hi: int) -> int:
    value = read_attr(path, obj, key)
    where = obj.name if obj.name != "/" else "the file"
    if value is None:
        raise _fail(path, f"attribute {key!r} of {where} is missing (damaged run file)")
    v = np.asarray(value)
    if v.shape != () or v.dtype.kind not in "iub":
        raise _fail(path, f"attribute {key!r} of {where} is not an integer (damaged)")
    if not lo <= int(v) <= hi:
        raise _fail(path, f"attribute {key!r} of {where} is {int(v)}, outside [{lo}, {hi}]")
    return int(v)


# ---------------------------------------------------------------------------- metadata
def _depth_ok(text: str) -> bool:
    """Whether JSON text nests at most ``json_depth`` levels (counted outside strings)."""
    depth = 0
    in_str = esc = False
    limit = LIMITS["json_depth"]
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_fields(meta: dict[str, Any]) -> str | None:
    """The first field the reader or the report uses that has the wrong type, in words."""
    opt = meta.get("optimizer")
    if opt is not None:
        if not isinstance(opt, dict):
            return "metadata field 'optimizer' is not an object"
        if "class" in opt and not isinstance(opt["class"], str):
            return "metadata field 'optimizer.class' is not a string"
        groups = opt.get("param_groups")
        if groups is not None and not (
            isinstance(groups, list) and all(isinstance(g, dict) for g in groups)
        ):
            return "metadata field 'optimizer.param_groups' is not a list of objects"
        defaults = opt.get("defaults")
        if defaults is not None and not isinstance(defaults, dict):
            return "metadata field 'optimizer.defaults' is not an object"
        where = [("optimizer.defaults", defaults or {})]
        where += [(f"optimizer.param_groups[{i}]", g) for i, g in enumerate(groups or [])]
        for name, d in where:
            for key in ("lr", "eps", "weight_decay", "momentum"):
                v = d.get(key)
                # a number, or numbers (Adafactor's eps is the pair (eps1, eps2), eps1 None)
                ok = (
                    isinstance(v, list)
                    and 0 < len(v) <= 16
                    and all(x is None or _number(x) for x in v)
                )
                if v is not None and not _number(v) and not ok:
                    return f"metadata field '{name}.{key}' is not a number"
            if "betas" in d:
                b = d["betas"]
                if not (isinstance(b, list) and b and all(_number(x) for x in b)):
                    return f"metadata field '{name}.betas' is not a list of numbers"
    for key in ("model", "recorder"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            return f"metadata field {key!r} is not an object"
    for key in ("rank", "world_size", "seed"):
        v = meta.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            return f"metadata field {key!r} is not an integer"
    merged = meta.get("merged")
    if merged is not None:
        if not isinstance(merged, dict):
            return "metadata field 'merged' is not an object"
        files = merged.get("files")
        if not (isinstance(files, list) and all(isinstance(f, str) and f for f in files)):
            return "metadata field 'merged.files' is not a list of file names"
    return None


def load_metadata(path: Path, f: h5py.File) -> dict[str, Any]:
    """``metadata_json`` as a dict.

    Refused when too large, too deep, not an object or of the wrong types.
    """
    text = read_attr(path, f, "metadata_json", limit=LIMITS["metadata_bytes"])
    if text is None:
        raise _fail(path, "attribute 'metadata_json' is missing (damaged run file)")
    if not isinstance(text, str):
        raise _fail(path, "attribute 'metadata_json' is not text (damaged)")
    if not _depth_ok(text):
        raise _fail(path, f"metadata_json nests deeper than {LIMITS['json_depth']} levels")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise _fail(path, "metadata_json is not valid JSON (damaged)") from None
    if not isinstance(meta, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(meta), "a number"
        )
        raise _fail(path, f"metadata_json is {kind}, not a JSON object (damaged)")
    problem = _check_fields(meta)
    if problem:
        raise _fail(path, f"{problem} (damaged)")
    return meta


# ---------------------------------------------------------------------------- datasets
def _capacity(d: h5py.Dataset) -> int | None:
    """Rows along axis 0 the file can actually hold for ``d`` (None: not bounded here)."""
    if d.is_virtual:
        return None
    rows = d.shape[0]
    row_items = int(np.prod(d.shape[1:], dtype=np.int64)) if d.ndim > 1 else 1
    if rows == 0 or row_items == 0:
        return rows
    if d.chunks is None:  # contiguous (or compact): stored bytes bound the rows
        stored = d.id.get_storage_size()
        return stored // max(1, row_items * d.dtype.itemsize)
    n_chunks = d.id.get_num_chunks()  # allocated chunks (walks the chunk index once)
    per_chunk_rows = d.chunks[0]
    other = int(np.prod([math.ceil(s / c) for s, c in zip(d.shape[1:], d.chunks[1:])]))
    # with the fill value unwritten chunks read as fill: allow one partial chunk row
    return (math.ceil(n_chunks / max(1, other)) + 1) * per_chunk_rows


class Layout:
    """What :func:`check_layout` established: sizes a reader relies on."""

    def __init__(self) -> None:
        self.n_layers = 0
        self.n_groups = 0
        self.n_rows = 0
        self.n_samples = 0
        self.n_sample_rows = 0
        self.n_full_rows = 0
        self.n_examplewise_rows = 0


def check_layout(path: Path, f: h5py.File, meta: dict[str, Any] | None = None) -> Layout:
    """Check every dataset a reader uses against the schema.

    Raise RunFileError naming the first problem. Optional datasets (the v2 additions) are
    checked when present.
    """
    out = Layout()

    def need(name: str) -> h5py.Dataset:
        try:
            obj = f.get(name)
        except H5_ERRORS as exc:
            raise _fail(path, f"cannot read /{name}: {describe_hdf5_error(exc)}") from exc
        if obj is None:
            raise _fail(path, f"/{name} is missing (damaged or incomplete run file)")
        if not isinstance(obj, h5py.Dataset):
            raise _fail(path, f"/{name} is not a dataset (damaged run file)")
        return obj

    def optional(name: str) -> h5py.Dataset | None:
        try:
            present = name in f
        except H5_ERRORS as exc:
            raise _fail(path, f"cannot read /{name}: {describe_hdf5_error(exc)}") from exc
        return need(name) if present else None

    def shaped(d: h5py.Dataset, kind: str, tail: tuple[int, ...], what: str) -> None:
        name = d.name
        ok_kind = (
            h5py.check_string_dtype(d.dtype) is not None
            if kind == _STR
            else d.dtype.kind in kind and d.dtype.names is None
        )
        if not ok_kind:
            want = {_INT: "integers", _FLOAT: "floats", _STR: "text"}.get(kind, kind)
            raise _fail(path, f"{name} holds {d.dtype} values, not {want} (damaged)")
        if d.ndim != 1 + len(tail) or tuple(d.shape[1:]) != tail:
            want = "(" + ", ".join(["rows", *map(str, tail)]) + ("," if not tail else "") + ")"
            raise _fail(path, f"{name} has shape {tuple(d.shape)}; {what} needs {want} (damaged)")

    def rows(d: h5py.Dataset, at_least: int, what: str) -> int:
        n = int(d.shape[0])
        cap = _capacity(d)
        if cap is not None and n > cap:
            raise _fail(
                path,
                f"{d.name} declares {n} rows but the file holds at most {cap} (damaged)",
            )
        if n < at_least:
            raise _fail(path, f"{d.name} has {n} rows, fewer than the {at_least} {what}")
        return n

    def small(d: h5py.Dataset, n: int) -> np.ndarray:
        if d.shape[0] != n:
            raise _fail(path, f"{d.name} has {d.shape[0]} entries, not one per layer ({n})")
        try:
            return d[()]
        except H5_ERRORS as exc:
            raise _fail(path, f"cannot read {d.name}: {describe_hdf5_error(exc)}") from exc

    try:
        # ---- layers
        names = need(f"{S.LAYERS}/name")
        if names.ndim != 1 or names.shape[0] > LIMITS["layers"]:
            raise _fail(path, f"/{S.LAYERS}/name has shape {names.shape} (damaged)")
        n_layers = int(names.shape[0])
        shaped(names, _STR, (), "the layer names")
        rows(names, n_layers, "")
        out.n_layers = n_layers
        layer_cols = {}
        for key in ("numel", "group", "forward_rank", "sample_offset", "sample_count"):
            d = need(f"{S.LAYERS}/{key}")
            shaped(d, _INT, (), f"/layers/{key}")
            rows(d, 0, "")
            layer_cols[key] = small(d, n_layers).astype(np.int64)
        shapes = need(f"{S.LAYERS}/shape")
        shaped(shapes, _STR, (), "/layers/shape")
        rows(shapes, 0, "")
        small(shapes, n_layers)
        # lr fixes the number of parameter groups
        lr = need(S.LR)
        if lr.ndim != 2 or not 0 < lr.shape[1] <= LIMITS["groups"]:
            raise _fail(path, f"/{S.LR} has shape {lr.shape}; needs (rows, groups) (damaged)")
        out.n_groups = n_groups = int(lr.shape[1])
        numel, group = layer_cols["numel"], layer_cols["group"]
        if np.any(numel < 0) or np.any(numel > LIMITS["numel"]):
            raise _fail(path, "/layers/numel holds a negative or impossible layer size")
        if np.any(group < 0) or np.any(group >= n_groups):
            bad = int(group[(group < 0) | (group >= n_groups)][0])
            raise _fail(
                path,
                f"/layers/group names parameter group {bad}, but the run has {n_groups} (damaged)",
            )
        # ---- summary rows: /step fixes their number
        step = need(S.STEP)
        shaped(step, _INT, (), "/step")
        out.n_rows = n = rows(step, 0, "")
        shaped(lr, _FLOAT, (n_groups,), "the learning rates")
        rows(lr, n, "summary rows")
        for name in (S.WALL_TIME, S.LOSS):
            d = need(name)
            shaped(d, _FLOAT, (), f"/{name}")
            rows(d, n, "summary rows")
        d = need(S.HIST_RECORDED)
        shaped(d, _INT, (), "/hist/recorded")
        rows(d, n, "summary rows")
        stats = _str_list(path, f, "stats", required=False) or list(S.STATS)
        if not set(stats) <= set(S.STATS) | {"zeros"}:
            raise _fail(path, "attribute 'stats' names unknown statistics (damaged)")
        quantities = _str_list(path, f, "quantities")
        bad = []
        for q in quantities:  # quantities are open-ended: any name that can name datasets
            try:
                S.check_quantity_name(q)
            except ValueError:
                bad.append(q)
        if bad or len(set(quantities)) != len(quantities) or len(quantities) > 1024:
            raise _fail(path, "attribute 'quantities' is not a list of distinct quantity "
                        "names (damaged)")  # fmt: skip
        for q in quantities:
            d = need(f"{S.STATS_GROUP}/{q}")
            shaped(d, _FLOAT, (n_layers, len(stats)), f"the statistics of {q}")
            rows(d, n, "summary rows")
            h = need(f"{S.HIST_GROUP}/{q}")
            e_lo = _int_attr(path, h, "e_lo", -1100, 1100)
            e_hi = _int_attr(path, h, "e_hi", e_lo + 1, 1100)
            sub = _int_attr(path, h, "sub", 0, 8)
            signed = _int_attr(path, h, "signed", 0, 1)
            spec = S.HistSpec(bool(signed), e_lo, e_hi, sub)
            if spec.n_bins > LIMITS["bins"]:
                raise _fail(path, f"{h.name} declares {spec.n_bins} bins (damaged)")
            shaped(h, _INT, (n_layers, spec.n_bins), f"the histogram of {q}")
            rows(h, n, "summary rows")
            edges = need(f"{S.HIST_GROUP}/{q}_edges")
            shaped(edges, _FLOAT, (), "the bin edges")
            if edges.shape[0] != spec.n_bins:
                raise _fail(path, f"{edges.name} has {edges.shape[0]} edges, the bins need "
                            f"{spec.n_bins} (damaged)")  # fmt: skip
        for q in S.COSINE_QUANTITIES:
            d = optional(f"{S.COSINE_GROUP}/{q}")
            if d is not None:
                shaped(d, _FLOAT, (n_layers,), f"the cosines of {q}")
                rows(d, n, "summary rows")
        # ---- v2 additions, checked when present
        for name, kind, tail in (
            ("recorder_step", _INT, ()),
            ("layer_step", _INT, (n_layers,)),
            ("eps_dominated", _FLOAT, (n_layers,)),
        ):
            d = optional(name)
            if d is not None:
                shaped(d, kind, tail, f"/{name}")
                rows(d, n, "summary rows")
        hp = f.get("hparams")
        if hp is not None:
            if not isinstance(hp, h5py.Group) or len(hp) > LIMITS["attr_items"]:
                raise _fail(path, "/hparams is not a group of parameter series (damaged)")
            _str_list(path, hp, "names", required=False)
            for key in hp:
                d = need(f"hparams/{key}")
                shaped(d, _FLOAT, (n_groups,), f"the hyperparameter {key}")
                rows(d, n, "summary rows")
        # ---- subsample
        index = need(S.SAMPLE_INDEX)
        shaped(index, _INT, (), "/sample_index")
        n_cols = rows(index, 0, "")
        off, cnt = layer_cols["sample_offset"], layer_cols["sample_count"]
        if np.any(cnt < 0) or np.any(off < 0) or np.any(off + cnt > n_cols):
            raise _fail(path, f"/layers/sample_offset and sample_count point outside "
                        f"/sample_index ({n_cols} entries) (damaged)")  # fmt: skip
        if np.any(cnt > np.maximum(numel, 0)):
            raise _fail(path, "/layers/sample_count exceeds a layer's size (damaged)")
        out.n_samples = n_cols
        s_step = need(S.SAMPLES_STEP)
        shaped(s_step, _INT, (), "/samples/step")
        out.n_sample_rows = ns = rows(s_step, 0, "")
        for q in S.QUANTITIES:
            d = optional(f"{S.SAMPLES_GROUP}/{q}")
            if d is not None:
                shaped(d, _FLOAT, (n_cols,), f"the subsample of {q}")
                rows(d, ns, "subsample rows")
        # ---- full tensors
        full_step = need(S.FULL_STEP)
        shaped(full_step, _INT, (), "/full/step")
        out.n_full_rows = nf = rows(full_step, 0, "")
        fg = f.get(S.FULL_GROUP)
        if isinstance(fg, h5py.Group):
            for q in _str_list(path, fg, "quantities", required=False):
                for i in range(n_layers):
                    d = optional(f"{S.FULL_GROUP}/{q}/{i:05d}")
                    if d is not None:
                        shaped(d, _FLOAT, (int(numel[i]),), f"the full tensor of layer {i}")
                        rows(d, nf, "full dumps")
        # ---- per-example statistics
        e_step = need(S.EXAMPLEWISE_STEP)
        shaped(e_step, _INT, (), "/examplewise/step")
        out.n_examplewise_rows = ne = rows(e_step, 0, "")
        for name, kind, tail in (
            ("batch_size", _INT, ()),
            ("loss", _FLOAT, ()),
            ("stats", _FLOAT, (n_layers + 1, len(S.EXAMPLEWISE_STATS))),
        ):
            d = need(f"{S.EXAMPLEWISE_GROUP}/{name}")
            shaped(d, kind, tail, f"/examplewise/{name}")
            rows(d, ne, "per-example rows")
    except RunFileError:
        raise
    except H5_ERRORS as exc:
        raise _fail(path, f"cannot read its layout: {describe_hdf5_error(exc)}") from exc
    return out


def check_layer_table(path: Path, names: list[Any], shapes: list[Any], numel: np.ndarray) -> \
        tuple[list[str], list[tuple[int, ...]]]:  # fmt: skip
    """Layer names (unique text) and shapes (JSON lists of sizes agreeing with numel)."""
    out_names = []
    for x in names:
        if isinstance(x, str):  # lone surrogates (a damaged byte, via h5py) become "?"
            x = x.encode(errors="replace")
        x = x.decode(errors="replace") if isinstance(x, bytes) else x
        if not isinstance(x, str):
            raise _fail(path, "/layers/name holds a value that is not text (damaged)")
        out_names.append(x)
    if len(set(out_names)) != len(out_names):
        raise _fail(path, "/layers/name holds the same layer twice (damaged)")
    out_shapes = []
    for i, x in enumerate(shapes):
        x = x.decode(errors="replace") if isinstance(x, bytes) else x
        try:
            shape = json.loads(x) if isinstance(x, str) and len(x) < 4096 else None
        except ValueError:
            shape = None
        if not (
            isinstance(shape, list)
            and len(shape) <= 64
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        ):
            raise _fail(path, f"/layers/shape of layer {i} is not a list of sizes (damaged)")
        if math.prod(shape) != int(numel[i]):
            raise _fail(path, f"/layers/shape of layer {i} does not match /layers/numel "
                        "(damaged)")  # fmt: skip
        out_shapes.append(tuple(shape))
    return out_names, out_shapes


# ---------------------------------------------------------------------------- probe
def probe(
    path: str | os.PathLike[str],
    check: Callable[[Path], None],
    timeout: float | None = None,
) -> None:
    """Run ``check(path)`` in a forked child.

    A file that makes HDF5 loop or crash becomes a RunFileError here instead of a hung or
    dead process.

    ``timeout`` defaults to the ``GRADSCOPE_PROBE_TIMEOUT`` environment variable, else
    60 s. Where ``os.fork`` does not exist (Windows) ``check`` runs in this process.
    A RunFileError raised by ``check`` in the child is raised here with the same message.
    """
    path = Path(path)
    if not hasattr(os, "fork"):
        check(path)
        return
    if timeout is None:
        timeout = float(os.environ.get("GRADSCOPE_PROBE_TIMEOUT", "60"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, report one line, never return into the caller
        code = 0
        try:
            # the default SIGALRM action ends this child even inside a looping C call, so
            # it cannot outlive the limit (for instance when the parent itself was killed)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(max(1, math.ceil(timeout)) + 1)
            os.close(r)
            try:
                check(path)
            except RunFileError as exc:
                os.write(w, str(exc).encode(errors="replace")[:4096])
                code = 3
        except BaseException:  # noqa: BLE001 - a bug: the parent checks in-process
            code = 4
        finally:
            os._exit(code)
    os.close(w)
    message = b""
    deadline = time.monotonic() + timeout
    status: int | None = None
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([r], [], [], max(0.0, min(left, 0.05)))
            if ready:
                chunk = os.read(r, 4096)
                message += chunk
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
        while True:
            ready, _, _ = select.select([r], [], [], 0)
            chunk = os.read(r, 4096) if ready else b""
            if not chunk:
                break
            message += chunk
    finally:
        os.close(r)
    if status is None:
        raise RunFileError(
            f"{path}: reading its HDF5 structure did not finish in {timeout:g} s "
            "(damaged: the HDF5 library loops on it)"
        )
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise RunFileError(f"{path}: damaged: the HDF5 library crashed reading it ({name})")
    code = os.WEXITSTATUS(status)
    if code == 3:
        raise RunFileError(message.decode(errors="replace"))
    if code == 4:  # not a file problem: let the caller meet it in-process
        check(path)
