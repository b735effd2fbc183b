"""Damaged copies of a good run file: truncations, byte flips, zeroed blocks, structural edits.

Every case is a deterministic function of the base file and a seed, so a failing case can
be rebuilt by name. Used by the fuzz test (``test_fuzz.py``) and its worker.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

Edit = Callable[[h5py.File], None]


def _set_meta(text: str) -> Edit:
    def edit(f: h5py.File) -> None:
        f.attrs["metadata_json"] = text

    return edit


def _meta_patch(patch: Callable[[dict], None]) -> Edit:
    def edit(f: h5py.File) -> None:
        meta = json.loads(f.attrs["metadata_json"])
        patch(meta)
        f.attrs["metadata_json"] = json.dumps(meta)

    return edit


def _delete(name: str) -> Edit:
    def edit(f: h5py.File) -> None:
        del f[name]

    return edit


def _replace(name: str, data: Callable[[np.ndarray], np.ndarray], **kw) -> Edit:
    """Replace a dataset by ``data(old)`` (new shape or dtype)."""

    def edit(f: h5py.File) -> None:
        old = f[name][()]
        del f[name]
        f.create_dataset(name, data=data(old), **kw)

    return edit


def _resize(name: str, n: int) -> Edit:
    """Declare ``n`` rows without writing them (a chunked dataset reads fill values)."""

    def edit(f: h5py.File) -> None:
        f[name].resize(n, axis=0)

    return edit


def _set_attr(name: str, key: str, value) -> Edit:
    def edit(f: h5py.File) -> None:
        f[name].attrs[key] = value

    return edit


def _del_attr(name: str, key: str) -> Edit:
    def edit(f: h5py.File) -> None:
        del f[name].attrs[key]

    return edit


def _set_betas_null(meta: dict) -> None:
    meta["optimizer"]["defaults"]["betas"] = None
    for g in meta["optimizer"]["param_groups"]:
        g["betas"] = None


STRUCTURAL: dict[str, Edit] = {
    # missing pieces
    "no_step": _delete("step"),
    "no_layers": _delete("layers"),
    "no_layer_names": _delete("layers/name"),
    "no_layer_group": _delete("layers/group"),
    "no_stats": _delete("stats"),
    "no_stats_grad": _delete("stats/grad"),
    "no_stats_stepsize": _delete("stats/stepsize"),
    "no_hist": _delete("hist"),
    "no_hist_edges": _delete("hist/grad_edges"),
    "no_hist_attr": _del_attr("hist/grad", "signed"),
    "no_cosine": _delete("cosine"),
    "no_lr": _delete("lr"),
    "no_loss": _delete("loss"),
    "no_samples_step": _delete("samples/step"),
    "no_sample_index": _delete("sample_index"),
    "no_examplewise": _delete("examplewise"),
    "no_full": _delete("full"),
    "no_format_version": lambda f: f.attrs.__delitem__("format_version"),
    "no_quantities_attr": lambda f: f.attrs.__delitem__("quantities"),
    "no_metadata": lambda f: f.attrs.__delitem__("metadata_json"),
    # metadata that is valid JSON but not an object, or not of the right types
    "meta_list": _set_meta("[1, 2, 3]"),
    "meta_null": _set_meta("null"),
    "meta_string": _set_meta('"a run"'),
    "meta_number": _set_meta("42"),
    "meta_not_json": _set_meta("{not json"),
    "meta_deep": _set_meta("[" * 100_000 + "]" * 100_000),
    "meta_deep_object": _set_meta('{"a":' * 50_000 + "1" + "}" * 50_000),
    "meta_betas_null": _meta_patch(_set_betas_null),
    "meta_betas_str": _meta_patch(lambda m: m["optimizer"]["defaults"].__setitem__("betas", "x")),
    "meta_optimizer_str": _meta_patch(lambda m: m.__setitem__("optimizer", "Adam")),
    "meta_groups_not_list": _meta_patch(lambda m: m["optimizer"].__setitem__("param_groups", 3)),
    "meta_groups_items_null": _meta_patch(
        lambda m: m["optimizer"].__setitem__("param_groups", [None, 1])
    ),
    "meta_lr_str": _meta_patch(lambda m: m["optimizer"]["param_groups"][0].__setitem__("lr", "x")),
    "meta_model_num": _meta_patch(lambda m: m.__setitem__("model", 3)),
    "meta_merged_true": _meta_patch(lambda m: m.__setitem__("merged", True)),
    "meta_merged_files_num": _meta_patch(lambda m: m.__setitem__("merged", {"files": 3})),
    "meta_merged_files_abs": _meta_patch(lambda m: m.__setitem__("merged", {"files": [None]})),
    "meta_10mb": _set_meta(json.dumps({"tags": {"x": "a" * 10_000_000}})),
    "attr_10mb": lambda f: f.attrs.__setitem__("writer_json", "b" * 10_000_000),
    "quantities_huge": lambda f: f.attrs.__setitem__("quantities", ["grad"] * 3000),
    "format_version_text": lambda f: f.attrs.__setitem__("format_version", "one"),
    "format_version_array": lambda f: f.attrs.__setitem__("format_version", np.arange(3)),
    "format_version_999": lambda f: f.attrs.__setitem__("format_version", 999),
    "format_other": lambda f: f.attrs.__setitem__("format", "something-else"),
    "quantities_unknown": lambda f: f.attrs.__setitem__("quantities", ["grad", "bogus"]),
    # wrong shapes and dtypes
    "step_2d": _replace("step", lambda a: a.reshape(-1, 1)),
    "step_float": _replace("step", lambda a: a.astype(np.float64) + 0.5),
    "step_text": _replace(
        "step", lambda a: np.array([str(x) for x in a], dtype=object), dtype=h5py.string_dtype()
    ),
    "step_scalar": _replace("step", lambda a: np.int64(3)),
    "stats_1d": _replace("stats/grad", lambda a: a.ravel()),
    "stats_few_columns": _replace("stats/grad", lambda a: a[..., :5]),
    "stats_extra_layer": _replace("stats/stepsize", lambda a: np.concatenate([a, a[:, :1]], 1)),
    "stats_fewer_layers": _replace("stats/stepsize", lambda a: a[:, :1]),
    "stats_short_rows": _replace("stats/grad", lambda a: a[:3]),
    "stats_text": _replace(
        "stats/grad",
        lambda a: np.array(["x"] * a.shape[0], dtype=object),
        dtype=h5py.string_dtype(),
    ),
    "cosine_wrong": _replace("cosine/grad", lambda a: a[:, :1]),
    "lr_1d": _replace("lr", lambda a: a[:, 0]),
    "lr_short": _replace("lr", lambda a: a[:2]),
    "hist_bins_wrong": _replace("hist/grad", lambda a: a[..., :10]),
    "hist_edges_wrong": _replace("hist/grad_edges", lambda a: a[:5]),
    "hist_recorded_short": _replace("hist/recorded", lambda a: a[:1]),
    "layer_names_short": _replace("layers/name", lambda a: a[:1], dtype=h5py.string_dtype()),
    "layer_names_dup": _replace(
        "layers/name", lambda a: np.array([a[0]] * len(a), dtype=object), dtype=h5py.string_dtype()
    ),
    "layer_names_int": _replace("layers/name", lambda a: np.arange(len(a))),
    "layer_shape_bad_json": _replace(
        "layers/shape",
        lambda a: np.array(["[3,"] * len(a), dtype=object),
        dtype=h5py.string_dtype(),
    ),
    "layer_shape_obj_json": _replace(
        "layers/shape",
        lambda a: np.array(['{"a": 1}'] * len(a), dtype=object),
        dtype=h5py.string_dtype(),
    ),
    "layer_shape_mismatch": _replace(
        "layers/shape",
        lambda a: np.array(["[2, 2]"] * len(a), dtype=object),
        dtype=h5py.string_dtype(),
    ),
    "layer_group_out_of_range": _replace("layers/group", lambda a: a + 99),
    "layer_group_negative": _replace("layers/group", lambda a: a - 5),
    "layer_numel_negative": _replace("layers/numel", lambda a: -a),
    "layer_numel_huge": _replace("layers/numel", lambda a: a * 0 + 10**15),
    "layer_group_float": _replace("layers/group", lambda a: a + 0.5),
    "sample_offset_out": _replace("layers/sample_offset", lambda a: a + 10**6),
    "sample_count_negative": _replace("layers/sample_count", lambda a: -a - 1),
    "sample_count_huge": _replace("layers/sample_count", lambda a: a * 0 + 10**9),
    "samples_wrong_cols": _replace("samples/grad", lambda a: a[:, :3]),
    "samples_rows_short": _replace("samples/update", lambda a: a[:1]),
    "examplewise_stats_wrong": _replace("examplewise/stats", lambda a: a[..., :2]),
    "full_step_long": _replace("full/step", lambda a: np.arange(50)),
    # huge declared lengths
    "step_rows_1e12": _resize("step", 10**12),
    "step_rows_2e8": _resize("step", 2 * 10**8),
    "stats_rows_1e9": _resize("stats/grad", 10**9),
    "samples_step_1e10": _resize("samples/step", 10**10),
    "examplewise_step_1e11": _resize("examplewise/step", 10**11),
    "full_step_1e9": _resize("full/step", 10**9),
    "hist_attr_huge": _set_attr("hist/grad", "e_hi", 10**9),
    "hist_attr_text": _set_attr("hist/grad", "sub", "two"),
}


def structural_cases(base: Path, out: Path) -> list[tuple[str, Path]]:
    """One damaged copy of ``base`` per structural edit in :data:`STRUCTURAL`."""
    cases = []
    for name, edit in STRUCTURAL.items():
        p = out / f"struct_{name}.h5"
        shutil.copyfile(base, p)
        with h5py.File(p, "r+") as f:
            edit(f)
        cases.append((name, p))
    return cases


def byte_cases(
    base: Path, out: Path, seed: int, n_trunc: int, n_flip: int, n_zero: int
) -> list[tuple[str, Path]]:
    """Truncations at random lengths, random byte flips and zeroed blocks of ``base``."""
    rng = np.random.default_rng(seed)
    data = base.read_bytes()
    size = len(data)
    cases = []
    for i in range(n_trunc):
        # half inside the first 8 KiB (superblock, root group, metadata), half anywhere
        cut = int(rng.integers(0, min(size, 8192))) if i % 2 else int(rng.integers(0, size))
        p = out / f"trunc_{i:03d}_{cut}.h5"
        p.write_bytes(data[:cut])
        cases.append((p.stem, p))
    for i in range(n_flip):
        buf = bytearray(data)
        k = int(rng.integers(1, 9))
        hi = size if i % 2 else min(size, 8192)
        for at in rng.integers(0, hi, k):
            buf[int(at)] ^= int(rng.integers(1, 256))
        p = out / f"flip_{i:03d}.h5"
        p.write_bytes(bytes(buf))
        cases.append((p.stem, p))
    for i in range(n_zero):
        buf = bytearray(data)
        length = int(rng.choice([64, 512, 4096]))
        hi = size if i % 2 else min(size, 8192)
        at = int(rng.integers(0, max(1, hi - length)))
        buf[at : at + length] = bytes(min(length, size - at))
        p = out / f"zero_{i:03d}_{at}.h5"
        p.write_bytes(bytes(buf))
        cases.append((p.stem, p))
    return cases
