"""Update laws: histograms against the exact law, the misfit by layer and step, moments."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from gradscope import analysis as A
from gradscope.analysis.fit import MIN_FIT_SIZE
from gradscope.report import export
from gradscope.report.sections import Context, Section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gradscope.report.build import RunAnalysis

__all__ = ["FITS", "MISFIT", "MOMENTS", "Fits", "Misfit", "Moments", "compare_fits"]


class FitRecords(NamedTuple):
    """The update fits (t >= 2) and the t = 1 two-point checks of a run."""

    fits: tuple[A.UpdateFit, ...]
    two_point: tuple[A.TwoPointCheck, ...]


def compare_fits(
    analyses: Sequence[RunAnalysis], labels: Sequence[str], layers: int = 2
) -> tuple[list[A.UpdateFit], list[str]]:
    """The update fits to set side by side.

    For up to ``layers`` layers fitted in every run, each run's fit at the largest optimizer
    step t fitted in all of them (run order).
    """
    if not analyses or any(not a.fits for a in analyses):
        return [], []
    keys = [{(f.layer, f.t) for f in a.fits} for a in analyses]
    common = set.intersection(*keys)
    if not common:
        return [], []
    t = max(k[1] for k in common)
    order = [f.layer for f in analyses[0].fits if (f.layer, t) in common]
    chosen = list(dict.fromkeys(order))[:layers]
    fits, labs = [], []
    for layer in chosen:
        for a, lab in zip(analyses, labels):
            f = next(f for f in a.fits if f.layer == layer and f.t == t)
            fits.append(f)
            labs.append(lab)
    return fits, labs


class Fits(Section):
    """Histograms of z = -update/lr against the exact law at the fit steps."""

    key = "update_fits"
    title = "Update distribution vs exact law"

    def record(self, an: RunAnalysis) -> FitRecords | None:
        """The fits and two-point checks (None when the run has neither)."""
        if not an.fits and not an.two_point:
            return None
        return FitRecords(an.fits, an.two_point)

    def verdict(self, record: FitRecords, an: RunAnalysis) -> str:
        """How well the exact law fits, and the t = 1 checks."""
        return A.fit_verdict(record.fits, record.two_point)

    def caption(self, record: FitRecords, ctx: Context) -> str:
        """What the histograms and curves are."""
        return (
            "Histogram of the normalised update z = -update/lr (= u m_hat for Adam) of "
            "the live sampled coordinates (dead ones, at the eps cap or with a gradient "
            "zero at every sampled row so far, left out) at the optimizer's own step t, "
            "with the exact zero-mean EMA-m/uniform-v law for the layer's own beta1 "
            "(within about 1e-4 in CDF of real Adam for t >= 3, docs/theory.md) and, "
            "where that law is rejected, the non-central law at each coordinate's "
            "gradient SNR (dashed). The x range follows the data."
        )

    def draw(self, record: FitRecords, ctx: Context) -> Figure | None:
        """One panel per (layer, t); none when only t = 1 was checked."""
        if not record.fits:
            return None
        from gradscope.plot import updates as pu

        return pu.draw_update_fits(record.fits)

    def export(self, record: FitRecords, out: Path) -> list[Path]:
        """``two_point.csv`` and ``update_fits.json``."""
        files = []
        if record.two_point:
            files.append(export.write_two_point(record.two_point, out / "two_point.csv"))
        if record.fits:
            files += export.write_fits(record.fits, out / "update_fits.json")
        return files

    def compare_records(
        self, analyses: Sequence[RunAnalysis], labels: Sequence[str]
    ) -> tuple[list[A.UpdateFit], list[str]]:
        """The same layers at the same t in every run (:func:`compare_fits`)."""
        return compare_fits(analyses, labels)

    def compare_caption(self, ctx: Context) -> str:
        """Panel titles name the run."""
        return (
            "Histogram of the normalised update z = -update/lr at the same layer and "
            "optimizer step t in each run (panel titles name the run), with the exact "
            "zero-mean law (solid) and, where rejected, the non-central law (dashed). "
            "The x range follows the data."
        )

    def draw_compare(
        self, records: Sequence[A.UpdateFit], labels: Sequence[str], ctx: Context
    ) -> Figure:
        """One panel per (run, layer)."""
        from gradscope.plot import updates as pu

        return pu.draw_update_fits(list(records), run_labels=list(labels))


class Misfit(Section):
    """KS distance of every fitted layer and step, when there are more than 4 fits."""

    key = "update_misfit"
    title = "Update-law misfit by layer and step"

    def record(self, an: RunAnalysis) -> A.FitMisfit | None:
        """The layer x t table of KS distances (:func:`gradscope.analysis.fit_misfit`)."""
        return A.fit_misfit(an.fits, an.layers) if len(an.fits) > 4 else None

    def caption(self, record: A.FitMisfit, ctx: Context) -> str:
        """How to read the heatmap."""
        return (
            "KS distance between the recorded z = -update/lr and the exact law for "
            "every fitted layer (rows, grouped by module) and fit step t (columns), "
            "log colour; a cross marks a rejected zero-mean law. Blank rows were not "
            f"fitted (layers under {MIN_FIT_SIZE} coordinates are fitted only "
            "when named)."
        )

    def draw(self, record: A.FitMisfit, ctx: Context) -> Figure:
        """The heatmap."""
        from gradscope.plot import updates as pu

        return pu.draw_fit_misfit(record)


class Moments(Section):
    """Var(z) t_eff and Var|z| t_eff against Corollaries 1 and 2."""

    key = "moments"
    stem = "update_moments"
    title = "Update variance vs Corollaries 1 and 2"

    def caption(self, record: A.UpdateMoments, ctx: Context) -> str:
        """The named layers against the corollaries."""
        return (
            "Var(z)·t_eff and Var|z|·t_eff of the normalised update z = -update/lr of "
            "the named layers against the optimizer step t (log axis), beside the exact "
            "values of Corollary 1 (1) and Corollary 2 (dashed): a layer on the dashed "
            f"line has updates as spread as pure gradient noise predicts. {ctx.rule}"
        )

    def draw(self, record: A.UpdateMoments, ctx: Context) -> Figure:
        """Two panels."""
        from gradscope.plot import updates as pu

        return pu.draw_update_moments(record, named=ctx.named.names)

    def export(self, record: A.UpdateMoments, out: Path) -> list[Path]:
        """``update_moments.csv``."""
        return export.write_series(record, out / "update_moments.csv")

    def compare_caption(self, ctx: Context) -> str:
        """Every named layer of a run in its colour."""
        return (
            "One colour per run, the one it has in the other figures (legend of runs above "
            "the panels); runs without these moments (no subsampled updates, or an optimizer "
            "the corollaries do not describe) are left out. Var(z)·t_eff and Var|z|·t_eff of "
            "the normalised update z = -update/lr, every named layer of a run in its colour, "
            "beside Corollaries 1 and 2 (dashed). " + ctx.rule
        )

    def draw_compare(
        self, records: Sequence[A.UpdateMoments], labels: Sequence[str], ctx: Context
    ) -> Figure:
        """The runs overlaid."""
        from gradscope.plot import updates as pu
        from gradscope.plot.style import palette

        every = list(ctx.runs) or list(labels)
        colors = [palette(len(every))[every.index(lab)] for lab in labels]
        return pu.draw_update_moments(list(records), labels, named=ctx.named.names, colors=colors)


FITS = Fits()
MISFIT = Misfit()
MOMENTS = Moments()
