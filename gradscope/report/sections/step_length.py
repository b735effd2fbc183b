"""Step length ||x_t - x_(t-1)||: network and layers, windowed coefficient of variation."""

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

__all__ = ["SECTION", "StepLengthSection"]


class StepLengthSection(Section):
    """The recorded update norms over time and their steadiness."""

    key = "step_length"
    title = "Step length"

    def verdict(self, record: A.StepLength, an: RunAnalysis) -> str:
        """How steady the network's step length is."""
        return A.step_length_verdict(record)

    def caption(self, record: A.StepLength, ctx: Context) -> str:
        """Every layer's step length, the network's and named layers', windowed CV."""
        return (
            "||x_t - x_(t-1)|| (the recorded update norms). Top: every layer's per step "
            "(rows: layers, input on top, grouped by module; log colour). Bottom: the "
            "network's (root sum of squares over layers) and the named layers' over time, "
            "and the coefficient "
            f"of variation std/mean within windows of {record.window} recorded "
            f"rows. {ctx.rule}"
        )

    def draw(self, record: A.StepLength, ctx: Context) -> Figure:
        """The layer heatmap above three panels: network, layers, CV."""
        from gradscope.plot import steplength as psl

        return psl.draw_step_length(record, named=ctx.named)

    def export(self, record: A.StepLength, out: Path) -> list[Path]:
        """``step_length.csv`` and ``step_length_windows.csv``."""
        return export.write_step_length(record, out)

    def compare_caption(self, ctx: Context) -> str:
        """Runs overlaid, line style per layer."""
        return (
            "One colour per run (legend of runs above the panels). The network's step length "
            "||x_t - x_(t-1)||, the named layers' "
            "(line style per layer) and the windowed coefficient of variation. "
            + ctx.rule
            + " Each panel is one layer; each colour one run."
        )

    def draw_compare(
        self, records: Sequence[A.StepLength], labels: Sequence[str], ctx: Context
    ) -> Figure:
        """The runs overlaid."""
        from gradscope.plot import steplength as psl

        return psl.draw_step_length(list(records), labels, named=ctx.named)


SECTION = StepLengthSection()
