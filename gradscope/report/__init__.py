"""Reports: run file -> analyses -> figures -> HTML/CSV/JSON.

Submodules are imported on use so that ``gradscope info`` never loads matplotlib:

* :mod:`~gradscope.report.info`: :func:`run_info`, a fast summary of a run file;
* :mod:`~gradscope.report.build`: :func:`analyze_run` (records only) and :func:`build`
  (records, figures, CSV/JSON and a self-contained HTML page);
* :mod:`~gradscope.report.compare`: several runs overlaid;
* :mod:`~gradscope.report.theory_figures`: exact laws without a run file.
"""
