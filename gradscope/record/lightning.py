"""A PyTorch Lightning callback that records a run with :class:`gradscope.record.Recorder`.

    trainer = lightning.Trainer(callbacks=[GradscopeCallback("run.h5", every=10)])

The callback creates the Recorder when fitting starts (model = the LightningModule,
optimizer = the one the module configured) and closes it when fitting ends or fails. The
loss reaches the run file through the closure Lightning passes to ``optimizer.step``.
Importing this module needs ``lightning`` (or the older ``pytorch_lightning``).
"""

from __future__ import annotations

import os
from typing import Any

from gradscope.errors import UnsupportedOptimizerError
from gradscope.record.recorder import Recorder

try:
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - the older package name
    from pytorch_lightning import Callback


class GradscopeCallback(Callback):
    """Record the fit of a LightningModule into a gradscope run file.

    Args:
        path: the run file to write.
        **recorder_kwargs: passed to :class:`~gradscope.record.Recorder` (``every``,
            ``sample``, ``overwrite``, ``strict``, ``tags``, ...).
    """

    def __init__(self, path: str | os.PathLike[str], **recorder_kwargs: Any) -> None:
        super().__init__()
        self.path = path
        self.recorder_kwargs = recorder_kwargs
        self.recorder: Recorder | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Attach the recorder to the module and its (single) optimizer."""
        optimizers = trainer.optimizers
        if len(optimizers) != 1:
            raise UnsupportedOptimizerError(
                f"GradscopeCallback records exactly one optimizer; this module configured "
                f"{len(optimizers)}: use gradscope.Recorder directly for each"
            )
        self.recorder = Recorder(pl_module, optimizers[0], self.path, **self.recorder_kwargs)

    def _close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Flush and close the run file."""
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Close the file so every step written before the failure stays readable."""
        self._close()
