"""A Hugging Face ``transformers.Trainer`` callback that records the run with a Recorder.

    trainer = Trainer(model, args, train_dataset=data, callbacks=[GradscopeCallback("run.h5")])
    trainer.train()

When training starts the callback creates a :class:`~gradscope.record.Recorder` on the
Trainer's model and optimizer (accelerate's ``AcceleratedOptimizer`` unwrapped). Rows
come from the optimizer's step hooks, so there is one row per optimizer step, however many
micro-batches gradient accumulation adds up, and the gradient recorded is the one the step
consumed (after clipping). The training loss of each step is read from the model's outputs
(``outputs.loss`` of every training forward pass): the mean over the step's micro-batches,
or their sum when the Trainer passed ``num_items_in_batch`` (then each micro-batch loss is
already its share of the step's token mean), which is the number the Trainer logs. The file
is closed when training ends; use the callback as a context manager around
``trainer.train()`` to close it on an exception too (otherwise it is closed at interpreter
exit, every flushed row readable). Importing this module needs ``transformers``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import TrainerCallback

from gradscope.record.recorder import Recorder


class GradscopeCallback(TrainerCallback):
    """Record a ``transformers.Trainer`` run into a gradscope run file.

    Args:
        path: the run file to write.
        **recorder_kwargs: passed to :class:`~gradscope.record.Recorder` (``every``,
            ``sample``, ``overwrite``, ``strict``, ``tags``, ...).
    """

    def __init__(self, path: str | os.PathLike[str], **recorder_kwargs: Any) -> None:
        self.path = path
        self.recorder_kwargs = recorder_kwargs
        self.recorder: Recorder | None = None
        self._hook: Any = None
        self._loss_sum: torch.Tensor | None = None
        self._n_losses = 0
        self._shares = False

    # ------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Attach the recorder to the Trainer's model and optimizer."""
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if model is None or optimizer is None:
            raise ValueError("GradscopeCallback needs the Trainer's model and optimizer")
        self.recorder = Recorder(model, optimizer, self.path, **self.recorder_kwargs)
        self._hook = model.register_forward_hook(self._forward_hook, with_kwargs=True)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Hand the step's training loss to the recorder, right before ``optimizer.step()``."""
        if self.recorder is None or self._loss_sum is None:
            return
        loss = self._loss_sum if self._shares else self._loss_sum / self._n_losses
        self.recorder.log_loss(loss)
        self._loss_sum, self._n_losses, self._shares = None, 0, False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write what is left and close the run file."""
        self.close()

    # ------------------------------------------------------------------ helpers
    def _forward_hook(self, module: Any, _args: Any, kwargs: dict, output: Any) -> None:
        if not module.training or not torch.is_grad_enabled():
            return  # evaluation or generation, not a training micro-batch
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach().float().mean()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._n_losses += 1
        self._shares = self._shares or kwargs.get("num_items_in_batch") is not None

    def close(self) -> None:
        """Remove the loss hook and close the recorder. Idempotent."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def __enter__(self) -> GradscopeCallback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
