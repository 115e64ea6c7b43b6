"""The training loop: build everything from a Config, then step, report, and obey commands.

Read `Trainer.run` top to bottom: it is the whole life of a run. Everything else is one job each:
`_train_step` (engine/stepping.py: grad accumulation, clip, LR, update, the metric record),
`evaluate`, `_sample`, `save` (engine/sidework.py), and here the steering methods the control socket
calls between steps (pause, ramp, generate, stop). Records go through `engine/report.py` to the
reporter's writer thread (nexus/writer.py), the same writer every reported run uses.

How a run ends, in its last state record: `finished` (its total), `stopped` (a stop command,
--stop-at, a signal before the first step), `killed` (SIGTERM/SIGINT while training: the step is
finished and checkpointed first, then the process exits 0), `failed` (an exception in the loop, with its one-line message; out of memory says what to
change); `crashed` is for readers to conclude when a process ends without a word (SIGKILL).
"""

from __future__ import annotations

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
from engine.data import eval_batches, load_corpus
from engine.device import autocast_dtype, describe, use_deterministic_kernels
from engine.guard import check_causality
from engine.health import HealthWatch, SkipTally, is_oom
from engine.models import build_model
from engine.optim import build_optimizer
from engine.sidework import SideWork, held_out_ce
from engine.stepping import MAX_ROLLBACKS, Stepping
from nexus.ending import one_line
from nexus_core import protocol as P
from nexus_core.config import Config
from nexus_core.errors import ConfigError
from nexus_core.schedule import Schedule
from nexus_core.units import as_num

__all__ = ["MAX_ROLLBACKS", "ResumeSpec", "Trainer", "held_out_ce"]


@dataclass
class ResumeSpec:
    """How `resume` continues: from which checkpoint, to which total, with which LR ramp."""

    checkpoint: Path
    total_steps: int | None = None
    target_lr: float | None = None
    ramp_steps: int = 0


class Trainer(Stepping, SideWork):
    """One run in one process. Build with a validated Config; `run()` returns the exit code."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        pipe_fd: int | None = None,
        stop_at: int | None = None,
        resume: ResumeSpec | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.pipe_fd, self.stop_at, self.resume = (
            cfg,
            Path(run_dir),
            pipe_fd,
            stop_at,
            resume,
        )
        self.step = 0
        self.tokens = 0
        self.best_val_loss = math.inf
        self.last_eval = None
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.paused = False
        self.paused_for_disk = False
        """Paused because records could not be written: it goes on by itself once they can."""
        self.stop_reason = ""
        self.stop_signal = ""
        """The signal that asked for the stop (SIGTERM, SIGINT; under torchrun, any rank's): the run ends `killed`."""
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
            raise ConfigError(
                f"--stop-at {self.stop_at} must be after step {self.step} "
                f"and at most the total {self.schedule.total_steps}"
            )
        self.forward = torch.compile(self.model) if t.compile else self.model
        self.tokens_per_step = t.batch_size * t.grad_accum * cfg.model.seq_len * self.dist.world  # global
        self.stateful = bool(getattr(self.model, "wants_streams", False))  # carried state: contiguous streams
        self.first_step = self.step
        """Where this process started training (0, or the resumed step)."""
        self._eval_data = eval_batches(
            self.corpus.val, t.batch_size, cfg.model.seq_len, t.eval_batches, t.seed, self.device
        )

    def _load_resume(self, spec: ResumeSpec) -> None:
        """Continue exactly where the checkpoint stopped; optionally re-warm the LR or extend the run."""
        meta = ckpt.load_checkpoint(spec.checkpoint, self.model, self.optimizer, config=self.cfg.to_dict())
        self.step, self.tokens = int(meta["step"]), int(meta["tokens"])
        best = meta.get("best_val_loss")
        self.best_val_loss = best if best is not None else math.inf
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self.schedule = Schedule.from_dict(meta["schedule"])
        self.resumed_from = str(
            spec.checkpoint.relative_to(self.run_dir.resolve())
            if spec.checkpoint.is_relative_to(self.run_dir.resolve())
            else spec.checkpoint
        )
        total = spec.total_steps or self.schedule.total_steps
        now = self.schedule.multiplier(self.step)
        if spec.target_lr is not None:
            target = spec.target_lr / self.lr_scale / self.cfg.optim.lr
            self.schedule = self.schedule.with_ramp(self.step, now, target, spec.ramp_steps, total)
            self._resume_ramp = spec
        elif total != self.schedule.total_steps:
            self.schedule = self.schedule.with_ramp(self.step, now, now, 0, total)
        if self.step >= self.schedule.total_steps:
            raise ConfigError(
                f"the run already reached its total of {self.schedule.total_steps} steps; "
                "give --steps with a larger total to train on"
            )
        self.cfg.train.steps = self.schedule.total_steps

    # -- the life of a run -----------------------------------------------------------------------

    def run(self) -> int:
        """Train until the total (or --stop-at, a stop command, SIGTERM); returns the exit code."""
        self.controller = distributed.controller(self.dist, self.run_dir)
        self.report = distributed.reporter(
            self.dist,
            self.run_dir,
            self.pipe_fd,
            run=self.cfg.name,
            device=str(self.device),
            device_name=describe(self.device),
            model=self.cfg.model.family,
            total_steps=self.schedule.total_steps,
            socket=self.controller.socket_path,
            best_val_loss=as_num(self.best_val_loss),
            step=self.step,
            tokens=self.tokens,
        )
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
                kind, last = "crash", one_line(e)
            self.report.log(last, level="error")
            self.report.alert(kind, self.step, last)
            self.report.state(P.FAILED, self.step, reason=last, exit_code=1)  # as a reported run's exception
            return 1
        finally:
            self._restore_signals()
            self.controller.close()
            self.dist.close()
            self.report.close()

    def _hello(self) -> None:
        self.report.hello(
            run=self.cfg.name,
            config=self.cfg.to_dict(),
            device=str(self.device),
            device_name=describe(self.device),
            params=self.model.num_params(),
            total_steps=self.schedule.total_steps,
            start_step=self.step,
            model=self.cfg.model.family,
            resumed_from=self.resumed_from,
            corpus=self.corpus.description,
            unigram_entropy=self.corpus.unigram_entropy,
            tokens_per_step=self.tokens_per_step,
            world_size=self.dist.world,
        )
        self.report.log(
            f"{self.model.num_params():,} params on {describe(self.device)}, "
            f"{self.tokens_per_step} tokens a step; corpus {self.corpus.description}"
        )
        if self.resumed_from:
            self.report.log(f"resumed from {self.resumed_from} at step {self.step}; LR now {self._lr():.4g}")
        if self._resume_ramp is not None and self._resume_ramp.target_lr is not None:
            # The same words as the `ramp` command's log line, so a reader finds both kinds of ramp.
            self.report.log(
                f"LR ramp from {self._lr():.4g} to {self._resume_ramp.target_lr:.4g} over "
                f"{self._resume_ramp.ramp_steps} steps, total {self.schedule.total_steps} steps"
            )
        self._set_state(P.RUNNING)

    def _loop(self) -> int:
        t = self.cfg.train
        while self.step < min(self.stop_at or self.schedule.total_steps, self.schedule.total_steps):
            self._pause_if_disk_full()  # before the poll: under torchrun the poll shares rank 0's decisions
            self.controller.poll(self, 0.0)
            while self.paused and not self.stop_reason:
                if (
                    self.paused_for_disk and self.dist.is_main and self.report.room_again()
                ):  # paused on a full disk: room is back
                    self.unpause("there is room to write again")  # before the poll, which shares it
                self.controller.poll(self, 0.1)  # the writer keeps the status fresh meanwhile: alive
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
        """End early with a checkpoint: `killed` when a signal ended training (the reporter's word for
        it; the process still exits 0, nothing was lost), else `stopped`. A signal that came before
        the first step (the dashboard's stop for an engine not listening yet is a SIGTERM) stopped a
        run that had not trained: `stopped`, as a reader says of one that died of it then."""
        self._save_if_new(reason)
        if self.stop_signal and self.step == self.first_step:
            reason = f"{reason} before training started"
        killed = self.stop_signal and self.step > self.first_step
        self._set_state(P.KILLED if killed else P.STOPPED, reason, exit_code=0)
        return 0

    # -- steering (called by the Controller between steps) ---------------------------------------

    def pause(self, reason: str) -> None:
        if not self.paused:
            self.paused = True
            self._set_state(P.PAUSED, reason)

    def unpause(self, reason: str) -> None:
        self.report.clear_disk_error()  # the person says there is room again; a new failure pauses again
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
        text = (
            f"LR ramp from {self._lr():.4g} to {target_lr:.4g} over {ramp_steps} steps, "
            f"total {self.schedule.total_steps} steps"
        )
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
            held = (
                f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated at peak, "
                f"{free / 2**20:.0f} of {total / 2**20:.0f} MiB free on {device}"
            )
        else:
            held = (
                f"process holds {self._process.memory_info().rss / 2**20:.0f} MiB, "
                f"host has {psutil.virtual_memory().available / 2**20:.0f} MiB available"
            )
        said = str(e).strip().splitlines()[0][:240] if str(e).strip() else type(e).__name__
        return (
            f"out of memory in run {self.cfg.name!r} at step {self.step + 1}: batch_size {t.batch_size} "
            f"x grad_accum {t.grad_accum} x seq_len {self.cfg.model.seq_len}; {held} ({said}); "
            "lower train.batch_size (raise train.grad_accum to keep the tokens per step)"
        )

    def _restore_signals(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not self.stop_reason:
            self.stop_signal = name
        self.request_stop(name)

    def _set_state(self, state: str, reason: str = "", exit_code: int | None = None) -> None:
        self.state = state
        self.report.state(state, self.step, reason, exit_code, total_steps=self.schedule.total_steps)
