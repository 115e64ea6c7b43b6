"""One run over several processes (torchrun): the process group, rank helpers, and the two
collectives a step needs.

`torchrun --nproc-per-node N -m engine train ...` starts N copies of the engine. Each copy trains on
its own rows of every global batch; after backward the gradients are averaged with all-reduce, so every
rank applies the same update and the weights never drift apart. Rank 0 alone speaks for the run: it
writes the records, the status file and checkpoints, and owns the control socket. Between steps it
shares what it decided (pause, stop, a new schedule from a ramp) with one small collective, so every
rank acts at the same step; a stop signal that reaches any rank travels the same way.

Why not DistributedDataParallel: the optimizers here (Muon's Newton-Schulz per matrix, the nested
LSTM's held gradients) want the plain averaged `.grad` at one known point after backward, and a
family may leave parameters unused (MTP off, held levels), which DDP only tolerates with
`find_unused_parameters`. A bucketed all-reduce after the micro-batches is the same arithmetic with
none of the hooks; it does not overlap communication with backward (fine for the small models here).

With no torchrun in the environment everything here is a no-op and the run is the single-process one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from engine.commands import Controller
from engine.device import resolve_device
from engine.report import Reporter
from nexus_core.errors import ConfigError

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""torchrun sets all three in every worker; their presence is how the engine knows it was launched so."""

BUCKET_BYTES = 32 << 20
"""Gradients are averaged in flat buckets of about this size: one collective per bucket, no full copy."""

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in a collective (rank 0 writing a big checkpoint, a long sample)."""


def launched() -> bool:
    """True in a worker torchrun started (torch-free: the CLI asks before importing torch)."""
    return all(k in os.environ for k in LAUNCH_ENV)


def launch_rank() -> int:
    """This worker's global rank (0 when not under torchrun): who may write the run folder."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


@dataclass
class Dist:
    """Where this process stands in the run: `world` processes, this one is `rank`, on `device`."""

    device: torch.device
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    active: bool = False
    """True when a process group is up (launched by torchrun, even with one process)."""
    pending_stop: str = ""
    """A signal this rank received; it stops the run at the next `share_steering`, on every rank."""
    _sent_schedule: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that reports, checkpoints and listens for commands."""
        return self.rank == 0

    # -- collectives -----------------------------------------------------------------------------

    def average(self, grads: list[torch.Tensor], *scalars: torch.Tensor) -> None:
        """Replace each gradient and scalar (loss, ce) in place by its mean over the ranks.

        Every rank holds the same parameters with gradients (same model, same code path), so the
        buckets line up; equal per-rank batches make the mean of means the global mean.
        """
        if not self.active or self.world == 1:
            return
        for bucket in _buckets([*grads, *scalars]):
            flat = torch.cat([t.reshape(-1) for t in bucket])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(self.world)
            offset = 0
            for t in bucket:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def share_steering(self, trainer: Any) -> None:
        """Make every rank agree on paused / stop / schedule after rank 0 handled its commands.

        Rank 0's pause state and any new schedule (a `ramp` command) win; a stop from any rank (SIGTERM
        to one worker) stops them all. Per call: one all-reduce (max) of three integers; the schedule
        itself travels (broadcast_object_list) only on the steps it changed.
        """
        if not self.active:
            return
        schedule = trainer.schedule.to_dict() if self.is_main else None
        changed = self.is_main and schedule != self._sent_schedule
        flags = torch.tensor(
            [self._stop_code(trainer), int(self.is_main and trainer.paused), int(changed)],
            dtype=torch.int64,
            device=self.device,
        )
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, paused, new_schedule = flags.tolist()
        if stop and not trainer.stop_reason:
            rank, signum = divmod(stop, 256)
            name = signal.Signals(signum).name if signum else ""
            trainer.stop_reason = f"{name or 'stop'} on rank {rank - 1}"
            trainer.stop_signal = name  # a signal's stop ends the run `killed` on every rank alike
        if new_schedule:
            box = [schedule]
            dist.broadcast_object_list(box, src=0, device=self.device)
            self._sent_schedule = box[0]
        if not self.is_main:
            trainer.paused = bool(paused)
            if new_schedule:
                from nexus_core.schedule import Schedule

                trainer.schedule = Schedule.from_dict(box[0] or {})
                trainer.cfg.train.steps = trainer.schedule.total_steps

    def _stop_code(self, trainer: Any) -> int:
        """0, or (rank + 1) * 256 + the signal number (0 for a stop command) of a stop this rank wants."""
        if not (trainer.stop_reason or self.pending_stop):
            return 0
        signum = (
            int(signal.Signals[self.pending_stop]) if self.pending_stop and not trainer.stop_reason else 0
        )
        return (self.rank + 1) * 256 + signum

    def catch_signals(self) -> None:
        """SIGTERM/SIGINT only note the stop; `share_steering` acts on it at the same step on every
        rank. (A trainer that stopped at once would leave the others waiting in a collective.)"""

        def note(signum: int, frame: Any) -> None:
            self.pending_stop = self.pending_stop or signal.Signals(signum).name

        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, note)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (as DDP does at start): identical seeds make
        them equal already; this makes it a guarantee."""
        if not self.active or self.world == 1:
            return
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (training a BPE tokenizer, writing a token cache into the run
        folder); the others run it after, and then find the files made."""
        if self.active and not self.is_main:
            dist.barrier()
        try:
            yield
        finally:
            if self.active and self.is_main:
                dist.barrier()

    def finish(self) -> None:
        """A clean end: wait until every rank is done (rank 0's last checkpoint is on disk)."""
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (after `finish`, or after a crash without waiting for anyone)."""
        if self.active and dist.is_initialized():
            dist.destroy_process_group()
        self.active = False


def setup(device_spec: str) -> Dist:
    """The Dist for this process: outside torchrun, `resolve_device(device_spec)` alone; under torchrun,
    join the process group (gloo on the CPU, nccl on CUDA) with cuda:LOCAL_RANK as the device."""
    if not launched():
        return Dist(resolve_device(device_spec))
    rank, world, local = (int(os.environ[k]) for k in LAUNCH_ENV)
    device = _device_for(device_spec, local, world)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(
            backend,
            rank=rank,
            world_size=world,
            timeout=TIMEOUT,
            device_id=device if device.type == "cuda" else None,
        )
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot join the torchrun process group ({backend}): {e}") from None
    world_ = Dist(device, world, rank, local, active=True)
    world_.catch_signals()  # the trainer restores its caller's handlers when the run ends
    return world_


def exit_worker(code: int) -> NoReturn:
    """End a torchrun worker whose run is over (records closed, process group destroyed) without
    the interpreter's teardown: gloo's threads can abort in C++ static destructors ("terminate called
    without an active exception", SIGABRT, about 1 run in 12 on a loaded 2-core machine), and torchrun
    then reports a finished run as failed and kills the other ranks."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _device_for(spec: str, local_rank: int, world: int) -> torch.device:
    """Each torchrun worker takes its own GPU (cuda:LOCAL_RANK); on the CPU they share the host."""
    if spec in ("cuda", "auto") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ConfigError(
                f"torchrun started {local_rank + 1}+ processes on this machine but it has {count} "
                "CUDA device(s); lower --nproc-per-node"
            )
        return torch.device("cuda", local_rank)
    if spec.startswith("cuda:") and world > 1:
        raise ConfigError(
            f"--device {spec} pins every torchrun process to one GPU; give --device cuda "
            "(each process takes cuda:LOCAL_RANK) or cpu"
        )
    device = resolve_device(spec)
    if device.type == "mps":
        raise ConfigError("torchrun has no process-group backend for mps; use --device cpu or cuda")
    return device


def _buckets(tensors: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Consecutive runs of same-dtype, same-device tensors of about BUCKET_BYTES each."""
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size >= BUCKET_BYTES or t.dtype != bucket[0].dtype or t.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel() * t.element_size()
    if bucket:
        yield bucket


# -- what ranks other than 0 use instead of the reporting and control objects ---------------------


class SilentReporter(Reporter):
    """A Reporter that says nothing: only rank 0 writes records, the status file and log lines.

    Every Reporter method ends in `emit` or `_print`, silenced here, and no disk error is ever seen,
    so nothing rank 0 alone may decide starts on this rank.
    """

    def __init__(self) -> None:  # no writer: this rank opens no file and no pipe
        self.checkpoint_error: str | None = None
        self._printed_at = 0.0

    def emit(self, record_type: str, /, **fields: Any) -> dict[str, Any]:
        return {"type": record_type, **fields}

    def sync(self) -> None:
        pass

    @staticmethod
    def _print(line: str) -> None:
        pass

    @property
    def disk_error(self) -> str | None:
        return None

    @property
    def records_blocked(self) -> bool:
        return False

    def room_again(self) -> bool:
        return False

    def clear_disk_error(self) -> None:
        pass

    def close(self) -> None:
        pass


class SharedController:
    """Rank 0 answers the socket's commands as a single run would; then every rank takes on the
    outcome in `share_steering`, so pause, stop and ramps happen at the same step everywhere."""

    def __init__(self, world: Dist, run_dir: str | Path) -> None:
        self.world = world
        self.local = Controller(run_dir) if world.is_main else None

    @property
    def socket_path(self) -> str:
        return self.local.socket_path if self.local else ""

    def poll(self, trainer: Any, timeout: float = 0.0) -> int:
        # Ranks other than 0 do not sleep here: they wait inside the collective for rank 0's poll.
        n = self.local.poll(trainer, timeout) if self.local else 0
        self.world.share_steering(trainer)
        return n

    def close(self) -> None:
        if self.local:
            self.local.close()


def controller(world: Dist, run_dir: str | Path) -> Controller | SharedController:
    """The plain Controller for a one-process run, the shared one under torchrun."""
    return SharedController(world, run_dir) if world.active else Controller(run_dir)


def reporter(world: Dist, *args: Any, **kwargs: Any) -> Reporter:
    """`Reporter(*args, **kwargs)` on rank 0, a SilentReporter elsewhere (no file is opened)."""
    return Reporter(*args, **kwargs) if world.is_main else SilentReporter()
