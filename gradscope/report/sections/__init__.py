"""One report section per analysis, in a registry that ``analyze`` and ``compare`` share.

A section says what it needs from the run (recorded quantities), how it analyses (a call of
a pure analyzer in :mod:`gradscope.analysis`), how it draws (a :mod:`gradscope.plot`
function), what it exports (CSV/JSON) and its headline numbers and verdict. Adding an
analysis to the reports is one section module (a :class:`Section` subclass registered with
:func:`register`), one pure analyzer and one plot function.

The analyses of the built-in sections share one streaming pass over the run file (in
:func:`gradscope.report.build.analyze_run`, which reads each block of rows once for all of
them); their records are the fields of :class:`~gradscope.report.build.RunAnalysis`. A
section that defines :meth:`Section.analyze` is run after that pass on a
:class:`RunSlice` (the open file, the step window, the layers, the parsed metadata), its
record kept in ``RunAnalysis.extra``; when the run lacks one of the section's
:attr:`Section.needs`, the section is listed under the skipped analyses with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradscope import analysis as A
from gradscope.report.runview import RunMeta
from gradscope.runfile.reader import RunFile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gradscope.report.build import RunAnalysis

__all__ = [
    "Context",
    "RunSlice",
    "Section",
    "context",
    "register",
    "sections",
    "unregister",
]


@dataclass(frozen=True)
class Context:
    """What every caption and figure of one report (or comparison) shares."""

    #: the layers the line plots name, and the rule that chose them
    named: A.NamedLayers
    #: the caption sentence stating that rule
    rule: str
    #: a comparison's runs, in order (their colours are ``palette(len(runs))``)
    runs: tuple[str, ...] = ()


def context(an: RunAnalysis) -> Context:
    """The named layers of a report: chosen from the last-step mean of u when recorded."""
    last = an.stepsizes.mean[-1] if an.stepsizes is not None and len(an.stepsizes.steps) else None
    nl = A.named_layers(an.layers, last, what="last-step mean of u")
    return Context(nl, f"Line plots name {len(nl.index)} layers ({nl.rule}).")


@dataclass(frozen=True)
class RunSlice:
    """The part of a run a section analyses: the open file, rows ``rows``, columns ``cols``."""

    run: RunFile
    rows: slice
    cols: np.ndarray
    layers: tuple[str, ...]
    meta: RunMeta

    @property
    def steps(self) -> np.ndarray:
        """The optimizer steps of the rows."""
        return self.run.steps[self.rows]


class Section:
    """A report section. Subclasses set the class attributes and override what they draw.

    Attributes:
        key: the record's name (a :class:`RunAnalysis` field for the built-in sections, the
            key in ``RunAnalysis.extra`` for others), also the verdict's key.
        stem: the figure's file name without suffix (default ``key``).
        title: the figure's heading.
        needs: summary quantities (``stepsize``, ``grad``, ...) the run must have recorded
            for :meth:`analyze`; a run without them gets the section skipped with a reason.
        figure: whether the section draws a figure (its verdict then stands beside it;
            otherwise among the conclusions above the figures).
    """

    key: str = ""
    stem: str = ""
    title: str = ""
    needs: tuple[str, ...] = ()
    figure: bool = True

    @property
    def file_stem(self) -> str:
        """The figure's file name without suffix."""
        return self.stem or self.key

    # -- analysis --------------------------------------------------------------------------

    def missing(self, recorded: set[str]) -> str | None:
        """Why a run with ``recorded`` quantities cannot have this section, or None."""
        lack = [q for q in self.needs if q not in recorded]
        if lack:
            return "the run recorded no " + ", ".join(repr(q) for q in lack) + " statistics"
        return None

    def analyze(self, view: RunSlice) -> Any | None:
        """The section's record from the run (sections outside the shared pass).

        The built-in sections return None here: their records come from the shared pass.
        """
        return None

    def record(self, an: RunAnalysis) -> Any | None:
        """The section's record in an analysis (None: the run has none)."""
        if self.key in an.extra:
            return an.extra[self.key]
        return getattr(an, self.key, None)

    # -- words -----------------------------------------------------------------------------

    def verdict(self, record: Any, an: RunAnalysis) -> str:
        """The sentence that ends the section ("" for none)."""
        return ""

    def headline(self, record: Any, an: RunAnalysis) -> dict[str, Any]:
        """Numbers for the headline table (sections outside the shared pass)."""
        return {}

    def caption(self, record: Any, ctx: Context) -> str:
        """What the figure's panels show and how to read them."""
        return ""

    # -- drawing and files -----------------------------------------------------------------

    def draw(self, record: Any, ctx: Context) -> Figure | None:
        """The section's figure of one run (None: no figure)."""
        return None

    def export(self, record: Any, out: Path) -> list[Path]:
        """Write the numbers behind the section into the folder ``out``; returns the files."""
        return []

    # -- comparisons -----------------------------------------------------------------------

    def compare_records(
        self, analyses: Sequence[RunAnalysis], labels: Sequence[str]
    ) -> tuple[list[Any], list[str]]:
        """The records a comparison draws side by side and the run of each."""
        recs, labs = [], []
        for an, lab in zip(analyses, labels):
            rec = self.record(an)
            if rec is not None:
                recs.append(rec)
                labs.append(lab)
        return recs, labs

    def compare_caption(self, ctx: Context) -> str:
        """Caption of the comparison figure ("" when the section has none)."""
        return ""

    def draw_compare(self, records: Sequence[Any], labels: Sequence[str], ctx: Context) -> Any:
        """The comparison figure of several runs' records (None: not compared)."""
        return None


_REGISTRY: dict[str, Section] = {}
_LOADED = False


def register(section: Section, *, before: str | None = None) -> Section:
    """Add ``section`` to the reports (after the others, or before the section ``before``).

    A section of the same key is replaced. Returns the section.
    """
    _builtins()
    if not section.key:
        raise ValueError("a section needs a key")
    items = [(k, s) for k, s in _REGISTRY.items() if k != section.key]
    at = next((i for i, (k, _) in enumerate(items) if k == before), len(items))
    items.insert(at, (section.key, section))
    _REGISTRY.clear()
    _REGISTRY.update(items)
    return section


def unregister(key: str) -> None:
    """Remove the section ``key`` (no error when absent)."""
    _REGISTRY.pop(key, None)


def sections() -> tuple[Section, ...]:
    """The registered sections, in report order."""
    _builtins()
    return tuple(_REGISTRY.values())


def _builtins() -> None:
    """Register the built-in sections once, in report order."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from gradscope.report.sections import (
        epsilon,
        examplewise,
        nonfinite,
        randomness,
        step_length,
        stepsizes,
        updates,
    )

    for s in (
        nonfinite.SECTION,
        stepsizes.STEPSIZES,
        stepsizes.RANGES,
        epsilon.SECTION,
        randomness.GRAD,
        randomness.UPDATE,
        updates.FITS,
        updates.MISFIT,
        updates.MOMENTS,
        step_length.SECTION,
        examplewise.SECTION,
    ):
        register(s)
