"""What the analyses need from a run file, on every schema version.

Run files of schema 2 record the optimizer's own step ``t`` per row and layer, every numeric
param-group entry per row (``hparams``) and the eps-dominated counts. Schema-1 files lack
them: their rows carry the recorder's count (the true t when the recorder was attached at
the first step) and the group settings come from the metadata written at the start (constant
over the run). These helpers give both through one interface, so every analysis uses the
layer's own t and group settings at each row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradscope.runfile.reader import RunFile

__all__ = ["LayerSettings", "RunMeta", "beta1_key", "eps_dominated", "layer_steps"]


@dataclass(frozen=True)
class RunMeta:
    """The run's metadata parsed once: the optimizer and its settings at the start.

    Missing or malformed entries read as absent (``"unknown"``, None, 0, empty): a run file
    written by another tool still gets a report.
    """

    #: optimizer class name without its module (``"Adam"``)
    optimizer: str = "unknown"
    #: ``betas[0]`` (Adam family) or ``momentum`` (SGD), None when neither is set
    beta1: float | None = None
    beta2: float | None = None
    weight_decay: float = 0.0
    amsgrad: bool = False
    #: the optimizer's defaults and each param group's own entries, merged
    groups: tuple[dict[str, Any], ...] = ()
    #: the metadata as written
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, metadata: Any) -> RunMeta:
        """Read a run file's metadata dict (anything else: an empty record)."""
        meta = metadata if isinstance(metadata, dict) else {}
        opt = meta.get("optimizer", {})
        opt = opt if isinstance(opt, dict) else {}
        name = str(opt.get("class", "unknown")).rsplit(".", 1)[-1]
        d = opt.get("defaults", {})
        d = d if isinstance(d, dict) else {}
        betas = d.get("betas")
        b1 = b2 = None
        if isinstance(betas, (list, tuple)) and len(betas) == 2:
            b1, b2 = float(betas[0]), float(betas[1])
        elif "momentum" in d:
            b1 = float(d["momentum"])
        try:
            wd = float(d.get("weight_decay", 0.0) or 0.0)
        except (TypeError, ValueError):
            wd = 0.0
        return cls(name, b1, b2, wd, bool(d.get("amsgrad")), tuple(_groups_meta(meta)), meta)

    def group_lr(self, group: int) -> float | None:
        """The learning rate the metadata gives group ``group`` (None when absent)."""
        if 0 <= group < len(self.groups) and "lr" in self.groups[group]:
            try:
                return float(self.groups[group]["lr"])
            except (TypeError, ValueError):
                return None
        return None


def _groups_meta(metadata: Any) -> list[dict[str, Any]]:
    meta = metadata if isinstance(metadata, dict) else {}
    opt = meta.get("optimizer", {})
    opt = opt if isinstance(opt, dict) else {}
    groups = opt.get("param_groups")
    defaults = opt.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    if isinstance(groups, list) and groups and all(isinstance(g, dict) for g in groups):
        return [{**defaults, **g} for g in groups]
    return [dict(defaults)] if defaults else []


def _meta_value(group: dict[str, Any], key: str) -> float:
    """``betas.0`` -> ``group["betas"][0]``; bools as 0/1; NaN when absent or not numeric."""
    name, _, idx = key.partition(".")
    v = group.get(name)
    if idx:
        if not isinstance(v, (list, tuple)) or not idx.isdigit() or int(idx) >= len(v):
            return float("nan")
        v = v[int(idx)]
    if isinstance(v, bool):
        return float(v)
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


class LayerSettings:
    """Each layer's own group hyperparameters per summary row (v2) or from metadata (v1)."""

    def __init__(self, run: RunFile) -> None:
        self.run = run
        self._v2 = hasattr(run, "layer_hparam")
        self._groups = np.asarray(run.groups, dtype=np.int64)
        self._meta = _groups_meta(run.metadata)

    def has(self, key: str) -> bool:
        """Whether any group has a finite value of ``key``."""
        if self._v2:
            try:
                return bool(np.isfinite(self.run.layer_hparam(key, rows=slice(0, 1))).any())
            except (KeyError, ValueError, IndexError):
                pass
        return any(np.isfinite(_meta_value(g, key)) for g in self._meta)

    def rows(self, key: str, rows: slice = slice(None)) -> np.ndarray:
        """``(rows, L)`` values of ``key`` per summary row and layer (NaN: the group lacks it)."""
        n = len(range(*rows.indices(self.run.n_rows)))
        if self._v2:
            try:
                out = np.asarray(self.run.layer_hparam(key, rows=rows), dtype=float)
                if out.shape == (n, len(self._groups)):
                    return out
            except (KeyError, ValueError, IndexError):
                pass
        per_group = np.array([_meta_value(g, key) for g in self._meta] or [np.nan])
        g = np.clip(self._groups, 0, len(per_group) - 1)
        vals = np.where(self._groups < len(per_group), per_group[g], np.nan)
        return np.broadcast_to(vals, (n, len(self._groups))).copy()

    def at_step(self, key: str, step: int) -> np.ndarray:
        """``(L,)`` values in force at optimizer step ``step`` (the row at or before it)."""
        st = self.run.steps
        i = int(np.searchsorted(st, step, side="right")) - 1
        i = min(max(i, 0), max(len(st) - 1, 0))
        if len(st) == 0:
            return np.full(len(self._groups), np.nan)
        return self.rows(key, slice(i, i + 1))[0]

    def path(self, key: str, t: int, col: int) -> np.ndarray:
        """Values of ``key`` for layer ``col`` at every step 1..t.

        Held between rows; the first row's value before it.
        """
        st = self.run.steps
        last = int(np.searchsorted(st, t, side="right"))
        vals = self.rows(key, slice(0, max(last, 1)))[:, col]
        st = st[: max(last, 1)]
        idx = np.searchsorted(st, np.arange(1, t + 1), side="right") - 1
        return vals[np.clip(idx, 0, len(vals) - 1)]


def beta1_key(settings: LayerSettings) -> str | None:
    """The group key of the first-moment factor: ``betas.0`` (Adam family) or ``momentum``."""
    for key in ("betas.0", "momentum"):
        if settings.has(key):
            return key
    return None


def layer_steps(run: RunFile, rows: slice = slice(None)) -> np.ndarray:
    """``(rows, L)`` each layer's own optimizer step t (-1: none); v1: the row's step."""
    if hasattr(run, "layer_steps"):
        try:
            return np.asarray(run.layer_steps(rows), dtype=np.int64)
        except (KeyError, ValueError):
            pass
    st = run.steps[rows]
    return np.broadcast_to(st[:, None], (st.size, len(run.layers))).copy()


def eps_dominated(run: RunFile, rows: slice = slice(None)) -> np.ndarray | None:
    """``(rows, L)`` recorded eps-dominated counts, or None when the file has none (v1)."""
    if not hasattr(run, "eps_dominated"):
        return None
    try:
        out = np.asarray(run.eps_dominated(rows), dtype=float)
    except (KeyError, ValueError):
        return None
    return out
