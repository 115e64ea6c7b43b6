"""A ramp sent over the real control socket to a real HF Trainer and a real Lightning fit (in this
process, tiny models): the LR every step really used (read inside optimizer.step(), after Nexus's hook)
is the LR the optimizer reported before the step, the one HF logs as `learning_rate` and Lightning's LearningRateMonitor logs, and the one saved optimizer state
holds; the framework's scheduler keeps stepping (its shape continues, scaled from the target). Each
folder then passes `nexus check`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from support.reporter import command

import nexus
from nexus_core import protocol as P
from nexus_core.check import check

TARGET = 0.02
RAMP_AT, RAMP_STEPS, STEPS = 6, 3, 24


class Probe:
    """Per optimizer step: the LR the group reported before it, the one it used, the raw schedule's."""

    def __init__(self) -> None:
        self.reported: list[float] = []
        self.used: list[float] = []
        self.raw: list[float] = []

    def hook(self, run: nexus.Run, optimizer: torch.optim.Optimizer) -> None:
        def pre(
            opt: Any, args: Any, kwargs: Any
        ) -> None:  # registered after Nexus's: sees what the step uses
            self.used.append(opt.param_groups[0]["lr"])
            assert run._lr is not None
            self.raw.append(run._lr.raw_lrs()[0])

        optimizer.register_step_pre_hook(pre)

    def before(self, optimizer: torch.optim.Optimizer) -> None:
        self.reported.append(optimizer.param_groups[0]["lr"])

    def check(self) -> None:
        used, raw, reported = self.used, self.raw, self.reported
        assert len(used) == STEPS and reported == pytest.approx(used, rel=1e-9)
        k = RAMP_AT  # the first step after the command (sent at the end of step RAMP_AT)
        assert used[:k] == pytest.approx(raw[:k])
        start = used[k - 1]
        ramp = [start + (TARGET - start) * i / RAMP_STEPS for i in range(1, RAMP_STEPS + 1)]
        assert used[k : k + RAMP_STEPS] == pytest.approx(ramp)
        factor = TARGET / raw[k + RAMP_STEPS - 1]
        after = [r * factor for r in raw[k + RAMP_STEPS :]]
        assert used[k + RAMP_STEPS :] == pytest.approx(after) and len(set(after)) > 3  # the schedule moved on


def _ramp(run: nexus.Run) -> None:
    reply = command(run.dir, "ramp", target_lr=TARGET, ramp_steps=RAMP_STEPS)
    assert reply["ok"], reply


def test_hugging_face_trainer_logs_and_saves_the_ramped_lr(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from hf_trainer import TEXT, Chunks, char_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from nexus.integrations.huggingface import NexusCallback

    torch.manual_seed(0)
    probe = Probe()
    run = nexus.init(root=tmp_path, name="hf")

    class Steer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not probe.reported:  # NexusCallback watched the optimizer at train begin, after this one
                probe.hook(run, run._lr.optimizer)
            probe.before(run._lr.optimizer)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == RAMP_AT:
                _ramp(run)

    tokenizer = char_tokenizer(TEXT)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=STEPS,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        warmup_steps=4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Chunks(tokenizer(TEXT)["input_ids"]),
        callbacks=[Steer(), NexusCallback(run=run)],
    )
    trainer.train()
    probe.check()
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert logged == pytest.approx(probe.used)  # HF logs the LR of the step it logs
    saved = trainer.optimizer.state_dict()["param_groups"][0]["lr"]
    assert saved == pytest.approx(trainer.lr_scheduler.get_last_lr()[0])
    assert saved == pytest.approx(TARGET / probe.raw[RAMP_AT + RAMP_STEPS - 1] * run._lr.raw_lrs()[0])
    run.finish()
    hellos = [r for r in P.read_records(run.dir / P.METRICS_FILE).records if r.type == P.HELLO]
    assert hellos[-1].lr_schedule and hellos[-1].lr_schedule["source"] == "LambdaLR"
    assert (report := check(run.dir)).ok, report.summary()  # the folder keeps the protocol


def test_lightning_fit_reports_the_ramped_lr(tmp_path: Path) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import LearningRateMonitor

    from nexus.integrations.lightning import NexusCallback, NexusLogger

    torch.manual_seed(0)
    probe = Probe()
    run = nexus.init(root=tmp_path, name="pl")

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.01)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + 0.1 * s))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    class Steer(pl.Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            if not probe.reported:  # NexusCallback watched the optimizer at train start, after this one
                probe.hook(run, run._lr.optimizer)
            probe.before(run._lr.optimizer)

        def on_train_batch_end(
            self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            if trainer.global_step == RAMP_AT:
                _ramp(run)

    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=NexusLogger(run=run),
        callbacks=[Steer(), NexusCallback(run=run), LearningRateMonitor("step")],
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=2))
    probe.check()
    run.finish()
    metrics = [r.to_dict() for r in P.read_records(run.dir / P.METRICS_FILE).records if r.type == P.METRIC]
    monitor = {m["step"]: m["lr-SGD"] for m in metrics if "lr-SGD" in m}
    assert len(monitor) >= STEPS - 2
    for step, lr in monitor.items():  # LearningRateMonitor reads the group before the step: its LR
        assert lr == pytest.approx(probe.used[step - 1])
    assert (report := check(run.dir)).ok, report.summary()  # the folder keeps the protocol
