"""Cosine randomness tests of successive gradients and updates (exact nulls, BH-FDR)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gradscope import analysis as A
from gradscope.report import export
from gradscope.report.sections import Context, Section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gradscope.report.build import RunAnalysis

__all__ = ["GRAD", "UPDATE", "Randomness"]


class Randomness(Section):
    """Signed cosines of successive vectors of one quantity against the exact null."""

    def __init__(self, quantity: str, *, compare: bool) -> None:
        self.quantity = quantity
        self.key = f"randomness_{quantity}"
        self.title = f"Cosine randomness test: {quantity}"
        self._compare = compare

    def verdict(self, record: A.RandomnessResult, an: RunAnalysis) -> str:
        """Non-random steps and their trend over the run."""
        return A.randomness_verdict(record, an.trends[self.key])

    def caption(self, record: A.RandomnessResult, ctx: Context) -> str:
        """Heatmap of cos / critical value, non-random fraction and mean cosine by depth."""
        q = record.quantity
        return (
            f"Top: the signed cosine of successive {q}s of every layer "
            "divided by the layer's exact 5% critical value (n = layer size): red "
            "beyond +1 or blue beyond -1 is a step that alone looks non-random; "
            "white is noise-like. Bottom left: the fraction of steps flagged "
            f"non-random per layer, exact p-values with BH-FDR across layers at q < "
            f"{record.alpha:g} (solid) beside the sqrt(log n/n) rule of Zhang et al. "
            "(AAAI student abstract, dashed). Bottom right: the mean signed cosine "
            "per layer (< 0: successive vectors anti-correlated). " + (record.note or "")
        )

    def draw(self, record: A.RandomnessResult, ctx: Context) -> Figure:
        """The test's three panels."""
        from gradscope.plot import randomness as pr

        return pr.draw_randomness(record, named=ctx.named)

    def export(self, record: A.RandomnessResult, out: Path) -> list[Path]:
        """Per-step cosines and per-layer fractions."""
        return export.write_randomness(record, out, self.key)

    def compare_caption(self, ctx: Context) -> str:
        """One panel per named layer with each run's critical values."""
        if not self._compare:
            return ""
        return (
            "One colour per run (legend of runs above the panels). Top: signed cosines of "
            "successive gradients of each named layer "
            "(symlog axis), each run's exact 5% critical values dotted in its colour. "
            "Bottom: fraction of steps flagged non-random per layer (solid: exact test with "
            "BH-FDR; dashed: the sqrt(log n/n) rule of Zhang et al.) and the mean signed "
            "cosine per layer. " + ctx.rule + " Each panel is one layer; each colour one run."
        )

    def draw_compare(
        self, records: Sequence[A.RandomnessResult], labels: Sequence[str], ctx: Context
    ) -> Figure | None:
        """The runs' cosines, one colour per run (gradients only)."""
        if not self._compare:
            return None
        from gradscope.plot import randomness as pr

        return pr.draw_randomness(list(records), labels, named=ctx.named)


GRAD = Randomness("grad", compare=True)
UPDATE = Randomness("update", compare=False)
