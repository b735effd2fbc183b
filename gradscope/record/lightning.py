"""A PyTorch Lightning callback that records a run with :class:`gradscope.record.Recorder`.

    trainer = lightning.Trainer(callbacks=[GradscopeCallback("run.h5", every=10)])

The callback creates the Recorder when fitting starts (model = the LightningModule,
optimizers = every one the module configured, their param groups numbered globally) and
closes it when fitting ends or fails. The loss reaches the run file through the closure
Lightning passes to ``optimizer.step`` (automatic optimization); with manual optimization
call ``callback.recorder.log_loss(loss)`` in ``training_step``.
Importing this module needs ``lightning`` (or the older ``pytorch_lightning``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from gradscope.record.recorder import Recorder

if TYPE_CHECKING:  # one base class for the checker: the two packages' Callback are alike
    from lightning.pytorch import Callback
else:
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
        """Attach the recorder to the module and every optimizer it configured."""
        optimizers = list(trainer.optimizers)
        self.recorder = Recorder(pl_module, optimizers, self.path, **self.recorder_kwargs)

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
