"""The Trainer's work between steps: evaluate, sample, checkpoint (a mixin of `engine.trainer.Trainer`).

Each leaves training exactly as it was: an eval or a sample keeps the model's mode, carried state and
RNG (`held_out_ce`, `preserved_rng`); a checkpoint that cannot be written is an alert, and on a full
disk a pause, never the end of the run.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch

from engine import checkpoint as ckpt
from engine.device import autocast, preserved_rng
from engine.health import is_disk_full
from engine.models import LanguageModel
from engine.sampling import generate
from engine.trainer_parts import TrainerParts
from nexus_core import protocol as P
from nexus_core.errors import CheckpointError
from nexus_core.units import as_num, is_new_best


class SideWork(TrainerParts):
    """evaluate, _sample, save and the checkpoint helpers; see the module docstring."""

    def evaluate(self) -> float:
        """Held-out pure CE (no label smoothing, no MTP) on the same batches every time."""
        if not self.dist.is_main:  # the weights are the same on every rank: rank 0 alone evaluates
            return math.nan
        val_loss = held_out_ce(self.model, self._eval_data, self.device, self.amp)
        best = is_new_best(val_loss, self.best_val_loss)
        if best:
            self.best_val_loss = val_loss
        self.last_eval = (self.step, val_loss)
        self.report.eval(
            step=self.step,
            tokens=self.tokens,
            val_loss=val_loss,
            val_ppl=math.exp(min(val_loss, 700.0)) if math.isfinite(val_loss) else val_loss,
            best=best,
        )
        return val_loss

    def _sample(self, prompt: str, tokens: int, temperature: float, top_k: int, requested: bool) -> None:
        if not self.dist.is_main:
            return
        with preserved_rng(self.device):
            text = generate(
                self.model,
                self.corpus.tokenizer,
                prompt,
                tokens,
                temperature,
                top_k,
                self.device,
                seed=self.cfg.train.seed + self.step,
            )
        self.report.sample(step=self.step, prompt=prompt, text=text, requested=requested)

    def save(self, reason: str, final: bool = False) -> Path:
        """Checkpoint now; it is `best` when this step's eval set the best val loss. A `final` one
        (stop, end of run) leaves the state at checkpointing for the closing state record."""
        if not self.dist.is_main:  # rank 0 writes the one checkpoint of the run
            return ckpt.checkpoints_root(self.run_dir) / ckpt.step_name(self.step)
        before = self.state
        self._set_state(P.CHECKPOINTING, reason)
        val = self.last_eval[1] if self.last_eval and self.last_eval[0] == self.step else None
        best = val is not None and val == self.best_val_loss
        meta = {
            "step": self.step,
            "tokens": self.tokens,
            "schedule": self.schedule.to_dict(),
            "data_position": self.step * self.cfg.train.grad_accum,
            "val_loss": as_num(val),
            "best_val_loss": as_num(self.best_val_loss),
            "lr": self._lr(),
            "lr_scale": self.lr_scale,
            "config": self.cfg.to_dict(),
            "tokenizer": self.corpus.tokenizer.kind,
            "params": self.model.num_params(),
            "wall_time": time.time(),
            "train_seconds": time.monotonic() - self.started,
            "reason": reason,
            "torch": torch.__version__,
            "device": str(self.device),
            "world_size": self.dist.world,
        }
        self.report.sync()  # the steps this checkpoint covers are on file before it is
        try:
            path, best = ckpt.save_checkpoint(
                self.run_dir, self.model, self.optimizer, meta, best=best, keep_last=self.cfg.train.keep_last
            )
        except OSError as e:  # disk full, folder gone: the run itself is fine, keep it going
            self.report.alert("disk", self.step, f"checkpoint at step {self.step} failed: {e}")
            if is_disk_full(e):  # no room: pause (below) rather than train on with nothing saved
                self.report.checkpoint_error = (
                    self.report.checkpoint_error or f"checkpoint failed: {e.strerror or e}"
                )
            if not final:
                self._set_state(before if before != P.CHECKPOINTING else P.RUNNING)
            raise CheckpointError(f"checkpoint at step {self.step} failed: {e}") from None
        rel = str(path.relative_to(self.run_dir))
        self.report.ckpt(step=self.step, path=rel, best=best, val_loss=as_num(val))
        if not final:
            self._set_state(before if before != P.CHECKPOINTING else P.RUNNING)
        return path

    def _save_if_new(self, reason: str) -> None:
        latest = ckpt.checkpoints_root(self.run_dir) / ckpt.LATEST
        if not (latest.is_symlink() and latest.resolve().name == ckpt.step_name(self.step)):
            self._save_quietly(reason, final=True)

    def _save_quietly(self, reason: str, final: bool = False) -> None:
        """A checkpoint the loop wants but can live without: a failure is an alert, not the end."""
        with contextlib.suppress(CheckpointError):
            self.save(reason, final)


def held_out_ce(
    model: LanguageModel,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    amp: torch.dtype | None,
) -> float:
    """Mean pure next-token CE over `batches`, leaving the model's mode, carried state and the RNG
    exactly as they were (an eval must not change what training does next)."""
    carried = {k: v.clone() for k, v in model.state_tensors().items()}
    was_training = model.training
    model.eval()
    model.reset_state()
    total = 0.0
    try:
        with preserved_rng(device), torch.inference_mode():
            for x, y in batches:
                with autocast(device, amp):
                    total += float(model(x, y).ce.float())
    finally:
        model.reset_state()
        if carried:
            model.load_state_tensors(carried)
        model.train(was_training)
    return total / len(batches)
