"""Eps-dominated stepsizes: the fraction of each layer's u that eps decides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradscope import analysis as A
from gradscope.report import export
from gradscope.report.sections import Section

if TYPE_CHECKING:
    from gradscope.report.build import RunAnalysis

__all__ = ["SECTION", "Epsilon"]


class Epsilon(Section):
    """A verdict and a CSV (the fractions are in the per-layer table), no figure."""

    key = "epsilon"
    title = "Eps-dominated stepsizes"
    figure = False

    def verdict(self, record: A.EpsilonCheck, an: RunAnalysis) -> str:
        """Which layers eps decides."""
        return A.epsilon_verdict(record)

    def export(self, record: A.EpsilonCheck, out: Path) -> list[Path]:
        """``epsilon.csv``."""
        return [export.write_epsilon(record, out / "epsilon.csv")]


SECTION = Epsilon()
