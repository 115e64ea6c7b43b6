"""One optimizer step of the Trainer, and what it reports: grad accumulation, clip, LR, update, the
step's metric record (with the model's own signals and each param group's grad norm), NaN policy.

A mixin of `engine.trainer.Trainer` (the attributes it uses are built there, in `_setup`).

The metric record's standard numbers are read once a step, as before (`loss`, `ce` and `gnorm` decide
whether the update is applied). The extra series ride along as 0-d tensors, never read here: the
model's `aux` signals (`mtp/head1_ce`, `lstm/surprise`, averaged over micro-batches and ranks) and
`gnorm/<param group>`, from the same per-group norms whose root sum of squares is `gnorm`. The
reporter's writer thread reads them in one batch per flush (nexus/values.resolve), so they cost no
device sync of their own. `train.signals_every` says on which steps they ride (0: never).
"""

from __future__ import annotations

import math
import time

import torch

from engine import checkpoint as ckpt
from engine.data import contiguous_streams, get_batch
from engine.device import autocast, memory_bytes
from engine.optim import group_grad_norms, set_lr_multiplier
from engine.trainer_parts import TrainerParts
from nexus_core.schedule import Schedule

MAX_ROLLBACKS = 5
"""nan_policy=rollback halves the LR each time; after this many it pauses for a person instead."""


class Stepping(TrainerParts):
    """`_train_step` and its helpers; see the module docstring."""

    def _train_step(self) -> bool:
        """One optimizer step over grad_accum micro-batches; False when it was not taken (NaN)."""
        t, seq_len = self.cfg.train, self.cfg.model.seq_len
        t0 = time.perf_counter()
        self.model.train()
        lr = self._lr()
        set_lr_multiplier(self.optimizer, self._multiplier())
        loss_sum = torch.zeros((), device=self.device)
        ce_sum = torch.zeros((), device=self.device)
        aux: dict[str, torch.Tensor] = {}
        signals = bool(t.signals_every) and (self.step + 1) % t.signals_every == 0  # this step carries them
        for i in range(t.grad_accum):
            position = self.step * t.grad_accum + i
            if self.stateful:
                x, y = contiguous_streams(
                    self.corpus.train,
                    t.batch_size,
                    seq_len,
                    position,
                    self.device,
                    rank=self.dist.rank,
                    world=self.dist.world,
                )
            else:
                x, y = get_batch(
                    self.corpus.train,
                    t.batch_size,
                    seq_len,
                    t.seed,
                    position,
                    self.device,
                    rank=self.dist.rank,
                    world=self.dist.world,
                )
            with autocast(self.device, self.amp):
                out = self.forward(x, y, t.label_smoothing)
            (out.loss / t.grad_accum).backward()
            loss_sum += out.loss.detach().float()
            ce_sum += out.ce.detach().float()
            for key, value in out.aux.items() if signals else ():
                if key not in aux:
                    aux[key] = torch.zeros((), device=self.device)
                aux[key] += value.detach().float()
        params = [p for p in self.model.parameters() if p.grad is not None]
        # Global means under torchrun (the model's signals too: one bucket with the loss).
        self.dist.average([p.grad for p in params if p.grad is not None], loss_sum, ce_sum, *aux.values())
        groups = group_grad_norms(self.optimizer)
        gnorm_t = torch.nn.utils.get_total_norm(list(groups.values()))
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, self.cfg.optim.grad_clip, gnorm_t)
        loss, ce, gnorm = (loss_sum / t.grad_accum).item(), (ce_sum / t.grad_accum).item(), float(gnorm_t)
        if not (math.isfinite(loss) and math.isfinite(gnorm)):
            self.optimizer.zero_grad(set_to_none=True)
            return self._on_nan(loss, gnorm)
        with self.model.hold_gradients(self.step + 1):  # slow levels of nested models skip this step
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += self.tokens_per_step
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        step_s = time.perf_counter() - t0
        extra = {key: value / t.grad_accum if t.grad_accum > 1 else value for key, value in aux.items()}
        if signals and len(groups) > 1:  # one group: its norm is gnorm
            extra.update((f"gnorm/{name}", norm) for name, norm in groups.items())
        self.report.metric(
            step=self.step,
            tokens=self.tokens,
            loss=loss,
            ce=ce,
            lr=lr,
            gnorm=gnorm,
            tok_s=self.tokens_per_step / step_s,
            step_s=step_s,
            mem=memory_bytes(self.device, self._process),
            **extra,
        )
        for kind, text in self.health.check(self.step, loss, gnorm):
            self.report.alert(kind, self.step, text)
        return True

    def _multiplier(self, step: int | None = None) -> float:
        return self.schedule.multiplier(self.step if step is None else step) * self.lr_scale

    def _lr(self) -> float:
        """The peak-group LR the next step uses (what the records, ramps and checkpoints speak in)."""
        return self.cfg.optim.lr * self._multiplier()

    def _on_nan(self, loss: float, gnorm: float) -> bool:
        """A NaN/inf loss or grad norm: the update was not applied; follow train.nan_policy."""
        policy = self.cfg.train.nan_policy
        text = f"non-finite loss {loss} / grad norm {gnorm} at step {self.step + 1}; nan_policy={policy}"
        if policy == "skip":
            said = self.skips.skipped(self.step + 1, text)
            if said is not None:
                self.report.alert("nan", self.step + 1, said)
            self.step += 1  # move past the batch that broke; the weights are untouched
            self.tokens += self.tokens_per_step
            return False
        self.report.alert("nan", self.step + 1, text)
        if policy == "rollback" and self.rollbacks < MAX_ROLLBACKS and ckpt.list_checkpoints(self.run_dir):
            self.rollbacks += 1
            path = ckpt.resolve_checkpoint(self.run_dir)
            meta = ckpt.load_checkpoint(path, self.model, self.optimizer)
            self.step, self.tokens = int(meta["step"]), int(meta["tokens"])
            self.schedule = Schedule.from_dict(meta["schedule"])
            self.lr_scale = float(meta.get("lr_scale", 1.0)) * 0.5**self.rollbacks
            self.report.log(f"rolled back to {path.name}; LR scale now {self.lr_scale:g}", level="warning")
            return False
        self.pause(f"paused on a non-finite loss at step {self.step + 1}: lower the LR (ramp) or resume")
        return False
