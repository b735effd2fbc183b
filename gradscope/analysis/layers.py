"""Layer names as a figure axis: module groups and the few layers a line plot can show.

A network of 60-300 parameter tensors cannot be drawn as one line per layer, nor labelled
one name per tick. These pure functions decide *which* layers a report names: the module
groups of the layer axis (``layer1.0.conv1.weight`` belongs to ``layer1``) and a small set
of representative layers, chosen by a rule a caption can state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LayerGroups", "NamedLayers", "layer_groups", "named_layers"]


@dataclass(frozen=True)
class LayerGroups:
    """Consecutive layers sharing a module prefix.

    ``groups`` are ``(prefix, start, stop)`` with ``names[start:stop]`` in the group, in
    input -> output order, covering every layer once; ``short`` is each name without its
    group's prefix (the whole name when the group is the layer itself).
    """

    names: tuple[str, ...]
    groups: tuple[tuple[str, int, int], ...]
    short: tuple[str, ...]
    depth: int


def _prefix(name: str, depth: int) -> str:
    return ".".join(name.split(".")[:depth])


def _runs(keys: Sequence[str]) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for i, k in enumerate(keys):
        if out and out[-1][0] == k:
            out[-1] = (k, out[-1][1], i + 1)
        else:
            out.append((k, i, i + 1))
    return out


def layer_groups(names: Sequence[str], max_groups: int = 24) -> LayerGroups:
    """Group consecutive layers by their leading dotted name components.

    The prefix is the shallowest one (fewest leading components) that splits the layers
    into more than one group: ``layer1.0.conv1.weight`` groups under ``layer1`` in a
    ResNet, ``0.weight`` and ``0.bias`` under ``0`` in an ``nn.Sequential``,
    ``blocks.3.attn.qkv.weight`` under ``blocks`` when the embedding and head stand apart.
    When a prefix gives more than ``max_groups`` groups and the next deeper one does not
    split further, the axis shows them thinned.

    Args:
        names: layer names, input -> output.
        max_groups: kept for callers that want to know when an axis must thin its groups.
    """
    names = tuple(str(n) for n in names)
    if not names:
        return LayerGroups((), (), (), 0)
    deepest = max(len(n.split(".")) for n in names)
    best = 1
    for depth in range(1, max(deepest, 2)):
        if len(_runs([_prefix(n, depth) for n in names])) > 1:
            best = depth
            break
    groups = tuple(_runs([_prefix(n, best) for n in names]))
    short = []
    for prefix, a, b in groups:
        for n in names[a:b]:
            rest = n[len(prefix) + 1 :] if n != prefix and n.startswith(prefix + ".") else n
            short.append(rest or n)
    return LayerGroups(names, groups, tuple(short), best)


@dataclass(frozen=True)
class NamedLayers:
    """The layers a line plot draws, in depth order, and the rule that chose them."""

    index: tuple[int, ...]
    names: tuple[str, ...]
    rule: str


def named_layers(
    names: Sequence[str], values: npt.ArrayLike | None = None, k: int = 6, what: str = "value"
) -> NamedLayers:
    """At most ``k`` representative layers.

    Every layer when ``len(names) <= k`` (a small network, e.g. an MLP with 3 weights and 3
    biases); else the first, the middle and the last layer by depth, and the layers with the
    largest and the smallest finite ``values`` (e.g. the last step's mean stepsize), without
    repeats.

    Args:
        names: layer names, input -> output.
        values: one number per layer that ranks them (optional).
        k: most layers to name (>= 3 for the depth rule).
        what: what ``values`` is, for the stated rule.
    """
    n = len(names)
    if n <= k:
        idx = list(range(n))
        rule = "every layer"
    else:
        idx = [0, n // 2, n - 1]
        rule = "the first, middle and last layer by depth"
        if values is not None:
            v = np.asarray(values, dtype=float)
            fin = np.flatnonzero(np.isfinite(v))
            if fin.size:
                hi = int(fin[np.argmax(v[fin])])
                lo = int(fin[np.argmin(v[fin])])
                idx += [i for i in (hi, lo) if i not in idx]
                rule += f", and the layers with the largest and smallest {what}"
        idx = sorted(set(idx))[:k]
    return NamedLayers(tuple(idx), tuple(names[i] for i in idx), rule)
