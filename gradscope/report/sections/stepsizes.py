"""Layerwise adaptive stepsizes (Aida Figs. 1, 2, 6) and their range (SET-Adam)."""

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

_RUNS = "One colour per run (legend of runs above the panels). "
_PANELS = " Each panel is one layer; each colour one run."


class Stepsizes(Section):
    """Mean and within-layer spread of the stepsize u per layer and step."""

    key = "stepsizes"
    title = "Layerwise adaptive stepsizes"

    def verdict(self, record: A.StepsizeProfile, an: RunAnalysis) -> str:
        """One stepsize per layer or not, and how compact the layers are."""
        return A.stepsize_verdict(record)

    def caption(self, record: A.StepsizeProfile, ctx: Context) -> str:
        """The panels of :func:`gradscope.plot.stepsizes.draw_stepsize_profile`."""
        return (
            "The stepsize u is the optimizer's own (update = -lr u m_hat). Top left: the "
            "mean of u within each layer (rows: layers, input on top, grouped by module; "
            "columns: optimizer steps; log colour). Top right: the within-layer "
            "std/mean of u (0: one stepsize for the whole layer). Bottom: the mean of u "
            "of a few named layers with a geometric ±1 sigma band (mean times or divided by "
            "exp(sigma), sigma^2 = log(1 + (std/mean)^2): it stays above 0 on the log "
            "axis when std > mean); "
            "the compactness across layers (std over layers of log10 of the layer "
            f"means, 0: every layer the same); the depth profile at the last step. {ctx.rule}"
        )

    def draw(self, record: A.StepsizeProfile, ctx: Context) -> Figure:
        """Heatmaps, named-layer lines, compactness and depth profile."""
        from gradscope.plot import stepsizes as ps

        return ps.draw_stepsize_profile(record, named=ctx.named)

    def export(self, record: A.StepsizeProfile, out: Path) -> list[Path]:
        """``stepsizes.csv``: step, layer, mean, std, compactness."""
        return export.write_series(record, out / "stepsizes.csv")

    def compare_caption(self, ctx: Context) -> str:
        """The comparison's panels: one per named layer, one colour per run."""
        return (
            _RUNS + "Top: the mean of the stepsize u (update = -lr u m_hat) of each named "
            "layer with a geometric ±1 sigma band (mean times or divided by exp(sigma), "
            "sigma^2 = log(1 + (std/mean)^2)). "
            "Bottom: the compactness across layers (std over layers of log10 of the layer "
            "means) and the depth profile at the last step. " + ctx.rule + _PANELS
        )

    def draw_compare(
        self, records: Sequence[A.StepsizeProfile], labels: Sequence[str], ctx: Context
    ) -> Figure:
        """The runs overlaid, one colour per run."""
        from gradscope.plot import stepsizes as ps

        return ps.draw_stepsize_profile(list(records), labels, named=ctx.named)


class Ranges(Section):
    """Spread log10(max u / min u) within each layer."""

    key = "ranges"
    stem = "stepsize_range"
    title = "Stepsize range"

    def verdict(self, record: A.StepsizeRange, an: RunAnalysis) -> str:
        """How many decades the coordinates' stepsizes span."""
        return A.range_verdict(record)

    def caption(self, record: A.StepsizeRange, ctx: Context) -> str:
        """The spread heatmap and the named layers' max and min."""
        return (
            "Left: the spread log10(max u / min u) within each layer per step (decades; "
            "SET-Adam's view of how unequal the coordinates' stepsizes are). Right: max "
            f"(solid) and min (dashed) of u of the named layers. {ctx.rule}"
        )

    def draw(self, record: A.StepsizeRange, ctx: Context) -> Figure:
        """Spread heatmap and named-layer lines."""
        from gradscope.plot import stepsizes as ps

        return ps.draw_stepsize_range(record, named=ctx.named)

    def export(self, record: A.StepsizeRange, out: Path) -> list[Path]:
        """``stepsize_range.csv``."""
        return export.write_series(record, out / "stepsize_range.csv")

    def compare_caption(self, ctx: Context) -> str:
        """One panel per named layer."""
        return (
            _RUNS
            + "The spread log10(max u / min u) within each named layer (decades). "
            + ctx.rule
            + _PANELS
        )

    def draw_compare(
        self, records: Sequence[A.StepsizeRange], labels: Sequence[str], ctx: Context
    ) -> Figure:
        """The runs' spreads, one colour per run."""
        from gradscope.plot import stepsizes as ps

        return ps.draw_stepsize_range(list(records), labels, named=ctx.named)


STEPSIZES = Stepsizes()
RANGES = Ranges()
__all__ = ["RANGES", "STEPSIZES", "Ranges", "Stepsizes"]
