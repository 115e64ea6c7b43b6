"""The training loop: build everything from a Config, then step, report, and obey commands.

Read `Trainer.run` top to bottom: it is the whole life of a run. Everything else is one job each:
`_train_step` (grad accumulation, clip, LR, update), `evaluate`, `_sample`, `save`, and the steering
methods the control socket calls between steps (pause, ramp, generate, stop).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from engine import checkpoint as ckpt
from engine import distributed
from engine.data import contiguous_streams, eval_batches, get_batch, load_corpus
from engine.device import (
    autocast,
    autocast_dtype,
    describe,
    memory_bytes,
    preserved_rng,
    use_deterministic_kernels,
)
from engine.guard import check_causality
from engine.models import LanguageModel, build_model
from engine.optim import build_optimizer, set_lr_multiplier
from engine.report import HealthWatch, SkipTally, is_disk_full, is_oom
from engine.sampling import generate
from nexus_core import protocol as P
from nexus_core.config import Config
from nexus_core.errors import CheckpointError, ConfigError
from nexus_core.schedule import Schedule
from nexus_core.units import as_num

MAX_ROLLBACKS = 5
"""nan_policy=rollback halves the LR each time; after this many it pauses for a person instead."""


@dataclass
class ResumeSpec:
    """How `resume` continues: from which checkpoint, to which total, with which LR ramp."""

    checkpoint: Path
    total_steps: int | None = None
    target_lr: float | None = None
    ramp_steps: int = 0


class Trainer:
    """One run in one process. Build with a validated Config; `run()` returns the exit code."""

    def __init__(self, cfg: Config, run_dir: str | Path, pipe_fd: int | None = None,
                 stop_at: int | None = None, resume: ResumeSpec | None = None) -> None:
        self.cfg, self.run_dir, self.pipe_fd, self.stop_at, self.resume = cfg, Path(run_dir), pipe_fd, stop_at, resume
        self.step = 0
        self.tokens = 0
        self.best_val_loss = math.inf
        self.last_eval: tuple[int, float] | None = None
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.paused = False
        self.paused_for_disk = False
        """Paused because records could not be written: it goes on by itself once they can."""
        self.stop_reason = ""
        self.state = P.STARTING
        self.started = time.monotonic()
        self.health = HealthWatch()
        self.skips = SkipTally()
        self._process = psutil.Process()
        # Installed before the slow setup so an early SIGTERM still ends in a clean stop.
        self._old_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        # A file-size limit must fail write() with EFBIG (a disk alert), not kill the run with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            self._setup()
        except Exception as e:
            self._restore_signals()
            if is_oom(e):
                raise ConfigError(self._oom_text(e)) from None
            raise
        except BaseException:
            self._restore_signals()
            raise

    # -- building --------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Device, seeds, corpus, model, optimizer, schedule and (on resume) the checkpoint.

        All before the first record: a user error here exits with one line and leaves no metrics
        behind, so the same command can simply be run again once fixed.
        """
        cfg, t = self.cfg, self.cfg.train
        self.dist = distributed.setup(t.device)  # one process, or this rank of a torchrun run
        self.device = self.dist.device
        if t.threads > 0:
            torch.set_num_threads(t.threads)
        random.seed(t.seed)
        np.random.seed(t.seed % 2**32)
        torch.manual_seed(t.seed)
        self.amp = autocast_dtype(self.device, t.dtype)
        if t.deterministic:
            use_deterministic_kernels()

        with self.dist.main_first():  # rank 0 writes the tokenizer and token cache, the others read them
            self.corpus = load_corpus(cfg.data, self.run_dir, cfg.model.seq_len)
        cfg.model.vocab_size = self.corpus.tokenizer.vocab_size
        self.model = build_model(cfg.model).to(self.device)
        # Before any record: a model that sees the future trains to a beautiful loss and cannot generate.
        check_causality(self.model, cfg.model.vocab_size, cfg.model.seq_len, self.device)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.schedule = Schedule.from_config(cfg.schedule, t.steps)
        self.resumed_from: str | None = None
        self._resume_ramp: ResumeSpec | None = None
        """The resume's LR ramp, said once in the records when the run starts (reports show it)."""
        if self.resume is not None:
            self._load_resume(self.resume)
        self.dist.broadcast_module(self.model)
        if self.stop_at is not None and not self.step < self.stop_at <= self.schedule.total_steps:
            raise ConfigError(f"--stop-at {self.stop_at} must be after step {self.step} "
                              f"and at most the total {self.schedule.total_steps}")
        self.forward = torch.compile(self.model) if t.compile else self.model
        self.tokens_per_step = t.batch_size * t.grad_accum * cfg.model.seq_len * self.dist.world  # global
        self.stateful = bool(getattr(self.model, "wants_streams", False))  # carried state: contiguous streams
        self._eval_data = eval_batches(self.corpus.val, t.batch_size, cfg.model.seq_len, t.eval_batches,
                                       t.seed, self.device)

    def _load_resume(self, spec: ResumeSpec) -> None:
        """Continue exactly where the checkpoint stopped; optionally re-warm the LR or extend the run."""
        meta = ckpt.load_checkpoint(spec.checkpoint, self.model, self.optimizer, config=self.cfg.to_dict())
        self.step, self.tokens = int(meta["step"]), int(meta["tokens"])
        best = meta.get("best_val_loss")
        self.best_val_loss = best if best is not None else math.inf
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self.schedule = Schedule.from_dict(meta["schedule"])
        self.resumed_from = str(spec.checkpoint.relative_to(self.run_dir.resolve())
                                if spec.checkpoint.is_relative_to(self.run_dir.resolve()) else spec.checkpoint)
        total = spec.total_steps or self.schedule.total_steps
        now = self.schedule.multiplier(self.step)
        if spec.target_lr is not None:
            target = spec.target_lr / self.lr_scale / self.cfg.optim.lr
            self.schedule = self.schedule.with_ramp(self.step, now, target, spec.ramp_steps, total)
            self._resume_ramp = spec
        elif total != self.schedule.total_steps:
            self.schedule = self.schedule.with_ramp(self.step, now, now, 0, total)
        if self.step >= self.schedule.total_steps:
            raise ConfigError(f"the run already reached its total of {self.schedule.total_steps} steps; "
                              "give --steps with a larger total to train on")
        self.cfg.train.steps = self.schedule.total_steps

    # -- the life of a run -----------------------------------------------------------------------

    def run(self) -> int:
        """Train until the total (or --stop-at, a stop command, SIGTERM); returns the exit code."""
        self.controller = distributed.controller(self.dist, self.run_dir)
        self.report = distributed.reporter(self.dist, self.run_dir, self.pipe_fd, run=self.cfg.name,
                               device=str(self.device), device_name=describe(self.device),
                               model=self.cfg.model.family, total_steps=self.schedule.total_steps,
                               socket=self.controller.socket_path, best_val_loss=as_num(self.best_val_loss),
                               step=self.step, tokens=self.tokens)
        try:
            self._hello()
            code = self._loop()
            self.dist.finish()  # every rank waits for rank 0's last checkpoint
            return code
        except Exception as e:  # noqa: BLE001 - anything unexpected: say so in the records, exit 1
            if is_oom(e):  # a user-sized problem: one line that says what to change, no traceback
                kind, last = "oom", self._oom_text(e)
                print(f"error: {last}", file=sys.stderr, flush=True)
            else:
                traceback.print_exc()
                kind, last = "crash", traceback.format_exception_only(type(e), e)[-1].strip()
            self.report.log(last, level="error")
            self.report.alert(kind, self.step, last)
            self.report.state(P.CRASHED, self.step, reason=last, exit_code=1)
            return 1
        finally:
            self._restore_signals()
            self.controller.close()
            self.dist.close()
            self.report.close()

    def _hello(self) -> None:
        self.report.hello(run=self.cfg.name, config=self.cfg.to_dict(), device=str(self.device),
                          device_name=describe(self.device),
                          params=self.model.num_params(), total_steps=self.schedule.total_steps,
                          start_step=self.step, model=self.cfg.model.family, resumed_from=self.resumed_from,
                          corpus=self.corpus.description, unigram_entropy=self.corpus.unigram_entropy,
                          tokens_per_step=self.tokens_per_step, world_size=self.dist.world)
        self.report.log(f"{self.model.num_params():,} params on {describe(self.device)}, "
                        f"{self.tokens_per_step} tokens a step; corpus {self.corpus.description}")
        if self.resumed_from:
            self.report.log(f"resumed from {self.resumed_from} at step {self.step}; LR now {self._lr():.4g}")
        if self._resume_ramp is not None and self._resume_ramp.target_lr is not None:
            # The same words as the `ramp` command's log line, so a reader finds both kinds of ramp.
            self.report.log(f"LR ramp from {self._lr():.4g} to {self._resume_ramp.target_lr:.4g} over "
                            f"{self._resume_ramp.ramp_steps} steps, total {self.schedule.total_steps} steps")
        self._set_state(P.RUNNING)

    def _loop(self) -> int:
        t = self.cfg.train
        while self.step < min(self.stop_at or self.schedule.total_steps, self.schedule.total_steps):
            self._pause_if_disk_full()  # before the poll: under torchrun the poll shares rank 0's decisions
            self.controller.poll(self, 0.0)
            while self.paused and not self.stop_reason:
                if self.paused_for_disk and self.dist.is_main and self.report.room_again():  # paused on a full disk: room is back
                    self.unpause("there is room to write again")  # before the poll, which shares it
                self.controller.poll(self, 0.1)
                self.report.status()  # keeps `updated` fresh: a paused run is alive
            if self.stop_reason:
                return self._stop(self.stop_reason)
            if not self._train_step():
                continue
            if t.eval_every and self.step % t.eval_every == 0:  # 0: never, like sample_every
                self.evaluate()
            if t.sample_every and self.step % t.sample_every == 0:
                self._sample(t.sample_prompt, t.sample_tokens, t.sample_temperature, t.sample_top_k, False)
            periodic = bool(t.ckpt_every) and self.step % t.ckpt_every == 0
            new_best = t.save_best and self.last_eval == (self.step, self.best_val_loss)
            if periodic or new_best:
                self._save_quietly("periodic" if periodic else "new best val loss")
        if self.step < self.schedule.total_steps:
            return self._stop(f"reached --stop-at {self.step}")
        if self.last_eval is None or self.last_eval[0] != self.step:
            self.evaluate()
        self._save_if_new("end of run")
        self._set_state(P.FINISHED, f"trained {self.step} steps", exit_code=0)
        return 0

    def _stop(self, reason: str) -> int:
        self._save_if_new(reason)
        self._set_state(P.STOPPED, reason, exit_code=0)
        return 0

    # -- one step --------------------------------------------------------------------------------

    def _train_step(self) -> bool:
        """One optimizer step over grad_accum micro-batches; False when it was not taken (NaN)."""
        t, seq_len = self.cfg.train, self.cfg.model.seq_len
        t0 = time.perf_counter()
        self.model.train()
        lr = self._lr()
        set_lr_multiplier(self.optimizer, self._multiplier())
        loss_sum = torch.zeros((), device=self.device)
        ce_sum = torch.zeros((), device=self.device)
        for i in range(t.grad_accum):
            position = self.step * t.grad_accum + i
            if self.stateful:
                x, y = contiguous_streams(self.corpus.train, t.batch_size, seq_len, position, self.device,
                                          rank=self.dist.rank, world=self.dist.world)
            else:
                x, y = get_batch(self.corpus.train, t.batch_size, seq_len, t.seed, position, self.device,
                                 rank=self.dist.rank, world=self.dist.world)
            with autocast(self.device, self.amp):
                out = self.forward(x, y, t.label_smoothing)
            (out.loss / t.grad_accum).backward()
            loss_sum += out.loss.detach().float()
            ce_sum += out.ce.detach().float()
        params = [p for p in self.model.parameters() if p.grad is not None]
        self.dist.average([p.grad for p in params], loss_sum, ce_sum)  # global means under torchrun
        if self.cfg.optim.grad_clip > 0:
            gnorm_t = torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        else:
            gnorm_t = torch.nn.utils.get_total_norm([p.grad for p in params])
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
        self.report.metric(step=self.step, tokens=self.tokens, loss=loss, ce=ce, lr=lr, gnorm=gnorm,
                           tok_s=self.tokens_per_step / step_s, step_s=step_s,
                           mem=memory_bytes(self.device, self._process))
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
            self.lr_scale = float(meta.get("lr_scale", 1.0)) * 0.5 ** self.rollbacks
            self.report.log(f"rolled back to {path.name}; LR scale now {self.lr_scale:g}", level="warning")
            return False
        self.pause(f"paused on a non-finite loss at step {self.step + 1}: lower the LR (ramp) or resume")
        return False

    # -- side work between steps -----------------------------------------------------------------

    def evaluate(self) -> float:
        """Held-out pure CE (no label smoothing, no MTP) on the same batches every time."""
        if not self.dist.is_main:  # the weights are the same on every rank: rank 0 alone evaluates
            return math.nan
        val_loss = held_out_ce(self.model, self._eval_data, self.device, self.amp)
        best = math.isfinite(val_loss) and val_loss < self.best_val_loss
        if best:
            self.best_val_loss = val_loss
        self.last_eval = (self.step, val_loss)
        self.report.eval(step=self.step, tokens=self.tokens, val_loss=val_loss,
                         val_ppl=math.exp(min(val_loss, 700.0)) if math.isfinite(val_loss) else val_loss, best=best)
        return val_loss

    def _sample(self, prompt: str, tokens: int, temperature: float, top_k: int, requested: bool) -> None:
        if not self.dist.is_main:
            return
        with preserved_rng(self.device):
            text = generate(self.model, self.corpus.tokenizer, prompt, tokens, temperature, top_k,
                            self.device, seed=self.cfg.train.seed + self.step)
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
            "step": self.step, "tokens": self.tokens, "schedule": self.schedule.to_dict(),
            "data_position": self.step * self.cfg.train.grad_accum, "val_loss": as_num(val),
            "best_val_loss": as_num(self.best_val_loss), "lr": self._lr(), "lr_scale": self.lr_scale,
            "config": self.cfg.to_dict(), "tokenizer": self.corpus.tokenizer.kind, "params": self.model.num_params(),
            "wall_time": time.time(), "train_seconds": time.monotonic() - self.started, "reason": reason,
            "torch": torch.__version__, "device": str(self.device), "world_size": self.dist.world,
        }
        try:
            path, best = ckpt.save_checkpoint(self.run_dir, self.model, self.optimizer, meta, best=best,
                                              keep_last=self.cfg.train.keep_last)
        except OSError as e:  # disk full, folder gone: the run itself is fine, keep it going
            self.report.alert("disk", self.step, f"checkpoint at step {self.step} failed: {e}")
            if is_disk_full(e):  # no room: pause (below) rather than train on with nothing saved
                self.report.disk_error = self.report.disk_error or f"checkpoint failed: {e.strerror or e}"
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

    # -- steering (called by the Controller between steps) ---------------------------------------

    def pause(self, reason: str) -> None:
        if not self.paused:
            self.paused = True
            self._set_state(P.PAUSED, reason)

    def unpause(self, reason: str) -> None:
        self.report.disk_error = None  # the person says there is room again; a new failure pauses again
        self.paused_for_disk = False
        if self.paused:
            self.paused = False
            self._set_state(P.RUNNING, reason)

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    def requested_sample(self, prompt: str, tokens: int, temperature: float, top_k: int) -> None:
        self._sample(prompt, tokens, temperature, top_k, True)

    def ramp(self, target_lr: float, ramp_steps: int, total_steps: int | None) -> str:
        """From the LR now, linearly to `target_lr` over `ramp_steps`, then the stretched schedule."""
        now = self.schedule.multiplier(self.step)
        target = target_lr / self.lr_scale / self.cfg.optim.lr
        self.schedule = self.schedule.with_ramp(self.step, now, target, ramp_steps, total_steps)
        self.cfg.train.steps = self.schedule.total_steps
        text = (f"LR ramp from {self._lr():.4g} to {target_lr:.4g} over {ramp_steps} steps, "
                f"total {self.schedule.total_steps} steps")
        self.report.log(text)
        self._set_state(self.state, text)  # the state record carries the new total to every reader
        return text

    def log(self, text: str, level: str = "info") -> None:
        self.report.log(text, level)

    def _pause_if_disk_full(self) -> None:
        """Records or a checkpoint could not be written: alert and hold until a person makes room."""
        if self.report.disk_error and not self.paused:
            self.report.alert("disk", self.step, f"{self.report.disk_error} at step {self.step}")
            self.paused_for_disk = bool(self.report.records_blocked)
            then = ": it resumes by itself once there is room" if self.paused_for_disk else ", then resume"
            self.pause(f"paused: {self.report.disk_error}; free space{then}")

    def _oom_text(self, e: BaseException) -> str:
        """Out of memory, said with the figures a person needs to pick a smaller batch."""
        t, device = self.cfg.train, getattr(self, "device", None)
        if device is not None and device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            held = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated at peak, " \
                   f"{free / 2**20:.0f} of {total / 2**20:.0f} MiB free on {device}"
        else:
            held = f"process holds {self._process.memory_info().rss / 2**20:.0f} MiB, " \
                   f"host has {psutil.virtual_memory().available / 2**20:.0f} MiB available"
        said = str(e).strip().splitlines()[0][:240] if str(e).strip() else type(e).__name__
        return (f"out of memory in run {self.cfg.name!r} at step {self.step + 1}: batch_size {t.batch_size} "
                f"x grad_accum {t.grad_accum} x seq_len {self.cfg.model.seq_len}; {held} ({said}); "
                "lower train.batch_size (raise train.grad_accum to keep the tokens per step)")

    def _restore_signals(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def _set_state(self, state: str, reason: str = "", exit_code: int | None = None) -> None:
        self.state = state
        self.report.state(state, self.step, reason, exit_code, total_steps=self.schedule.total_steps)


def held_out_ce(model: LanguageModel, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                amp: torch.dtype | None) -> float:
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

