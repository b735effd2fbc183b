"""gradscope's exception hierarchy.

Every error a user can cause derives from :class:`GradscopeError`; the CLI turns these
into one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations


class GradscopeError(Exception):
    """Base class of every error gradscope raises on purpose."""

    exit_code: int = 2


class UnsupportedOptimizerError(GradscopeError, TypeError):
    """An optimizer whose state gradscope cannot read (no introspection adapter)."""


class UnsupportedLayerError(GradscopeError, ValueError):
    """A parameter or module the recorder or the examplewise machinery cannot cover."""


class RunFileError(GradscopeError, OSError):
    """A run file that is missing, not HDF5, truncated, corrupt or from another schema."""


class MissingDataError(GradscopeError, KeyError):
    """A run file lacks what an analysis needs (e.g. no subsample was recorded)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""
