"""Loops written on other frameworks, reported through nexus.integrations, for tests/test_integrations.py
(run as a subprocess; the run folder comes from NEXUS_RUN_DIR as a launcher would set it).

argv[1]: hf (a transformers Trainer), lightning (a LightningModule fit), tb (a plain loop written for
TensorBoard's SummaryWriter). Each trains a tiny model until the dashboard's stop command.
"""

import os
import sys
import time
from pathlib import Path

import torch

mode = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(1)
RUN_DIR = Path(os.environ["NEXUS_RUN_DIR"])
STEPS = 100_000


def hf() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))
    from hf_trainer import TEXT, Chunks, char_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from nexus.integrations.huggingface import NexusCallback

    class Slow(TrainerCallback):
        """Keeps the record count modest: the test reads the whole file while it waits."""

        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(0.02)

    tokenizer = char_tokenizer(TEXT)
    ids = tokenizer(TEXT)["input_ids"]
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    )
    args = TrainingArguments(
        output_dir=str(RUN_DIR / "hf"),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Chunks(ids),
        eval_dataset=Chunks(ids[:100]),
        processing_class=tokenizer,
        callbacks=[Slow(), NexusCallback()],
    )
    trainer.train()
    (RUN_DIR / "loop-ended").write_text(str(trainer.state.global_step))


def lightning() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))
    import lightning.pytorch as pl
    from lightning_module import CHARS, CharLSTM, loader, sample

    from nexus.integrations.lightning import NexusCallback, NexusLogger

    class Slow(pl.Callback):
        def on_train_batch_end(self, *args):
            time.sleep(0.02)

    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=2,
        check_val_every_n_epoch=10_000,
        num_sanity_val_steps=0,
        logger=NexusLogger(),
        callbacks=[Slow(), NexusCallback(sample=sample)],
    )
    trainer.fit(CharLSTM(len(CHARS)), loader(), loader())
    (RUN_DIR / "loop-ended").write_text(str(trainer.global_step))


def tb() -> None:
    from nexus.integrations.tensorboard import SummaryWriter

    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with SummaryWriter(tensorboard=True) as writer:  # the run folder: NEXUS_RUN_DIR; event files there too
        writer.watch(opt)
        writer.run.on_checkpoint(
            lambda: torch.save(model.state_dict(), RUN_DIR / "model.pt") or RUN_DIR / "model.pt"
        )
        writer.run.on_eval(lambda: {"loss": 0.5})
        writer.add_hparams({"lr": 0.05, "batch": 16}, {"hparam/final": 0.0})
        for step in range(1, STEPS):
            loss = ((model(torch.randn(16, 8)) - 1.0) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            writer.add_scalar("train/loss", loss.detach(), step)
            writer.add_scalars("opt", {"lr": opt.param_groups[0]["lr"], "batch": 16}, step)
            writer.add_histogram("weights", model.weight.detach(), step)
            if step % 20 == 0:
                writer.add_text("samples/greedy", f"text at {step}", step)
                writer.add_text("notes", f"note at {step}", step)
            if writer.should_stop:
                (RUN_DIR / "loop-ended").write_text(str(step))
                break
            time.sleep(0.01)


{"hf": hf, "lightning": lightning, "tb": tb}[mode]()
