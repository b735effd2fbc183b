"""Run files: one HDF5 file per training run (schema in ``docs/run-format.md``).

* :mod:`~gradscope.runfile.schema`: names, statistics, histogram bins, schema version;
* :mod:`~gradscope.runfile.writer`: :class:`RunWriter`, append-only, off the training thread;
* :mod:`~gradscope.runfile.reader`: :class:`RunFile`, lazy reads returning NumPy arrays;
* :mod:`~gradscope.runfile.merge`: :func:`merge_ranks`, the per-rank files of one run as one
  file of HDF5 virtual datasets.

No torch here: run files are read without importing it.
"""

from __future__ import annotations

from gradscope.runfile.merge import merge_ranks
from gradscope.runfile.reader import RunFile
from gradscope.runfile.schema import FORMAT, FORMAT_VERSION, QUANTITIES, STATS
from gradscope.runfile.writer import RunWriter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "QUANTITIES",
    "STATS",
    "RunFile",
    "RunWriter",
    "merge_ranks",
]
