"""Figures: functions that draw analysis results and compute nothing (docs/design.md, rule 8).

Each takes result records from :mod:`gradscope.analysis` (one, or several runs to overlay)
and returns a matplotlib Figure drawn under :func:`gradscope.plot.style.theme`.
"""
