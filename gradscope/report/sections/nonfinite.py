"""Non-finite values (NaN, inf) per quantity and layer: a verdict and a CSV, no figure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradscope import analysis as A
from gradscope.report import export
from gradscope.report.sections import Section

if TYPE_CHECKING:
    from gradscope.report.build import RunAnalysis

__all__ = ["SECTION", "Nonfinite"]


class Nonfinite(Section):
    """Where and from which step values stopped being finite."""

    key = "nonfinite"
    title = "Non-finite values"
    figure = False

    def verdict(self, record: A.NonfiniteSummary, an: RunAnalysis) -> str:
        """Only when something was not finite."""
        return A.nonfinite_verdict(record) if record.any else ""

    def export(self, record: A.NonfiniteSummary, out: Path) -> list[Path]:
        """``nonfinite.csv``."""
        return [export.write_nonfinite(record, out / "nonfinite.csv")]


SECTION = Nonfinite()
