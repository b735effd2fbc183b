"""Per-example gradient statistics: GSNR, variance, batch-size tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradscope import analysis as A
from gradscope.report import export
from gradscope.report.sections import Context, Section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SECTION", "Examplewise"]


class Examplewise(Section):
    """What ``Recorder.record_examplewise`` recorded."""

    key = "examplewise"
    title = "Per-example gradient statistics"

    def caption(self, record: A.ExamplewiseProfile, ctx: Context) -> str:
        """GSNR and variance per layer, the network's batch-size tests."""
        return (
            "Top: the GSNR (mean over coordinates of gbar_i^2 / Var_b g_b,i) of every layer "
            "per step (rows: layers, input on top, grouped by module; log colour). Bottom: "
            "the GSNR and the per-example "
            "gradient variance (trace of the covariance) of the named layers over time; the batch-"
            "size tests of the whole network (smallest constant that passes: norm test, "
            "Byrd et al. 2012; inner-product and orthogonality tests, Bollapragada et al. "
            f"2018). Norm test > {record.theta:g}: the batch is too small. "
            f"{ctx.rule}"
        )

    def draw(self, record: A.ExamplewiseProfile, ctx: Context) -> Figure:
        """The GSNR heatmap above three panels."""
        from gradscope.plot import examplewise as pe

        return pe.draw_examplewise(record, named=ctx.named.names)

    def export(self, record: A.ExamplewiseProfile, out: Path) -> list[Path]:
        """``examplewise.csv``."""
        return export.write_series(record, out / "examplewise.csv")


SECTION = Examplewise()
