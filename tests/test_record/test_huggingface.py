"""A real transformers.Trainer run (tiny GPT-2 from a config, tied lm_head, no download) and a
plain accelerate loop are recorded: one row per optimizer step under gradient accumulation,
the gradient after clipping, and the Trainer's own per-step training loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
accelerate = pytest.importorskip("accelerate")

from gradscope.record import Recorder  # noqa: E402
from gradscope.record.huggingface import GradscopeCallback  # noqa: E402
from gradscope.runfile import RunFile  # noqa: E402

STEPS, ACCUM, BATCH, SEQ = 4, 2, 2, 8


def tiny_gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=32, n_positions=SEQ, n_embd=16, n_layer=1, n_head=2, tie_word_embeddings=True
    )
    model = transformers.GPT2LMHeadModel(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    return model


class Tokens(torch.utils.data.Dataset):
    """Fixed-length random token sequences: every micro-batch has the same token count."""

    def __init__(self, n: int) -> None:
        gen = torch.Generator().manual_seed(1)
        self.ids = torch.randint(0, 32, (n, SEQ), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class GradNorms(transformers.TrainerCallback):
    """The Trainer loop's own view of each step: the clipped gradient's norm per parameter."""

    def __init__(self) -> None:
        self.norms: list[dict[str, float]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.norms.append({n: float(p.grad.double().norm()) for n, p in model.named_parameters()})


def test_trainer_with_accumulation_records_one_row_per_optimizer_step(tmp_path):
    model = tiny_gpt2()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=ACCUM,
        learning_rate=1e-3,
        max_grad_norm=0.5,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    norms = GradNorms()
    cb = GradscopeCallback(tmp_path / "run.h5", sample=0)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(STEPS * ACCUM * BATCH), callbacks=[norms, cb]
    )
    with cb:
        trainer.train()
    assert cb.recorder is None  # closed at the end of training
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    with RunFile(tmp_path / "run.h5") as run:
        assert run.n_rows == STEPS  # not STEPS * ACCUM micro-batches
        np.testing.assert_array_equal(run.steps, np.arange(1, STEPS + 1))
        np.testing.assert_allclose(run.loss, logged, rtol=1e-4)
        names = run.layers
        assert "transformer.wte.weight" in names and "lm_head.weight" not in names  # tied
        grad = run.summary("grad", "norm")
        for t, step in enumerate(norms.norms):
            np.testing.assert_allclose(grad[t], [step[n] for n in names], rtol=1e-5)
        # clipping: the recorded gradient is the clipped one
        total = np.sqrt((grad**2).sum(axis=1))
        assert np.all(total <= 0.5 * (1 + 1e-4))
        assert "stepsize" in run.quantities
        assert "AdamW" in run.metadata["optimizer"]["class"]


def test_plain_accelerate_loop(tmp_path):
    from accelerate import Accelerator

    model = tiny_gpt2()
    acc = Accelerator(cpu=True, gradient_accumulation_steps=ACCUM)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(Tokens(STEPS * ACCUM * BATCH), batch_size=BATCH)
    model, opt, loader = acc.prepare(model, opt, loader)
    losses: list[float] = []
    with Recorder(model, opt, tmp_path / "run.h5", sample=0) as rec:
        for batch in loader:
            with acc.accumulate(model):
                loss = model(**batch).loss
                acc.backward(loss)
                rec.log_loss(loss)
                losses.append(float(loss.detach()))
                opt.step()
                opt.zero_grad()
    with RunFile(tmp_path / "run.h5") as run:
        assert run.n_rows == STEPS
        np.testing.assert_array_equal(run.steps, np.arange(1, STEPS + 1))
        want = np.asarray(losses).reshape(STEPS, ACCUM).mean(axis=1)
        np.testing.assert_allclose(run.loss, want, rtol=1e-6)
        assert "square_avg" not in run.quantities and "exp_avg_sq" in run.quantities
        assert run.metadata["quantities"]["aliases"] == {"square_avg": "exp_avg_sq"}


class Boom(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 2:
            raise RuntimeError("boom")


def test_trainer_exception_leaves_a_closed_readable_file(tmp_path):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=STEPS, per_device_train_batch_size=BATCH,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    cb = GradscopeCallback(tmp_path / "run.h5", sample=0)
    trainer = transformers.Trainer(
        model=tiny_gpt2(), args=args, train_dataset=Tokens(STEPS * BATCH), callbacks=[cb, Boom()]
    )
    with pytest.raises(RuntimeError, match="boom"), cb:
        trainer.train()
    assert cb.recorder is None
    with RunFile(tmp_path / "run.h5") as run:  # closed: no writer holds it
        assert run.n_rows == 2
        np.testing.assert_array_equal(run.steps, [1, 2])
        assert np.all(np.isfinite(run.loss))
