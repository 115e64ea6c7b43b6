"""Where a run's events go: records (file + pipe), the status file, and human lines in engine.log.

Like torchtitan's metric loggers, the trainer calls one method per event and never cares who listens.
The records file is the truth; the pipe is best effort (RecordWriter never lets a dead dashboard slow
training); the status file is rewritten at most about once a second, and at once on state changes;
stdout (engine.log) gets a readable line now and then, never the data channel.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from nexus_core import protocol as P

STATUS_EVERY_S = 1.0
PRINT_EVERY_S = 2.0
ROOM_PROBE_S = 2.0
MAX_BACKLOG = 100_000
"""Unfiled records held in memory while the disk is full (a paused run writes few)."""
"""How often a run paused because its records could not be written tries again."""


class SafeStream:
    """stdout/stderr for a run: engine.log is for people, so a write that fails (a full disk, a size
    limit, a closed terminal) is dropped, never raised into the training loop. Unbuffered: each
    write goes straight to the fd, so nothing piles up in memory while the disk is full."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0
        """Bytes that could not be written."""
        self.encoding, self.errors = "utf-8", "replace"

    def write(self, text: str) -> int:
        data = text.encode(self.encoding, self.errors)
        try:
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
        except OSError:
            self.dropped += len(data)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> SafeStream:
        return self


def protect_output() -> None:
    """Nothing the engine prints may end a run: route stdout and stderr through SafeStream."""
    import signal

    # A file-size limit must fail write() with EFBIG (then dropped here), not kill the run with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, SafeStream) or stream is None:
            continue
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue  # not a real file (a test's capture): leave it
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        setattr(sys, name, SafeStream(fd))


class Reporter:
    """Fans events out to the sinks. `status` fields: pid, state, step, total_steps, device, model,
    run, best_val_loss, socket, tokens."""

    def __init__(self, run_dir: str | Path, pipe_fd: int | None = None, **status: Any) -> None:
        self.run_dir = Path(run_dir)
        self.writer = P.RecordWriter(self.run_dir / P.METRICS_FILE, pipe_fd)
        self._status: dict[str, Any] = {"pid": os.getpid(), "state": P.STARTING, **status}
        self._status_at = 0.0
        self._printed_at = 0.0
        self.disk_error: str | None = None
        """Why the last record could not be filed (disk full, size limit); the trainer pauses on it."""
        self.records_blocked = False
        """The disk error came from the records themselves: room is probed for and the run goes on."""
        self._probed_at = 0.0
        self._backlog: deque[dict[str, Any]] = deque()
        """Records that could not be filed yet, oldest first."""
        self.dropped = 0
        """Held records given up because the backlog reached MAX_BACKLOG."""

    # -- records ---------------------------------------------------------------------------------

    def emit(self, record_type: str, /, **fields: Any) -> dict[str, Any]:
        """Write one record; a full disk becomes a line on stderr, not a dead run, and not a lost
        record: what cannot be filed waits in order in a backlog (the pipe hears of it at once, as
        seq -1) and is filed first once there is room."""
        record = {"type": record_type, **fields}
        record.setdefault("time", time.time())  # when it happened, not when there was room to file it
        if self._backlog and not self._flush_backlog():
            self._hold(record)
            return record
        try:
            return self.writer.write(record)
        except OSError as e:
            self._hold(record, told=True)
            if self.disk_error is None:
                self.disk_error = f"cannot write {P.METRICS_FILE}: {e.strerror or e}"
                self.records_blocked = True
                print(f"{self.disk_error}; records wait in memory until there is room",
                      file=sys.stderr, flush=True)
            return record

    def _hold(self, record: dict[str, Any], told: bool = False) -> None:
        """Keep an unfiled record for later (the writer already told the pipe when it refused it)."""
        if len(self._backlog) >= MAX_BACKLOG:
            self._backlog.popleft()  # a bound on memory: only a run paused for days could get here
            self.dropped += 1
        self._backlog.append(record)
        if not told:
            self.writer.tell_pipe(record)

    def _flush_backlog(self) -> bool:
        """File the held records in order; True once none is left."""
        while self._backlog:
            try:
                self.writer.write(self._backlog[0])
            except OSError:
                return False
            self._backlog.popleft()
        return True

    def room_again(self) -> bool:
        """For a run paused on unwritable records: at most every ROOM_PROBE_S, try to file the held
        records for real (a failed try is taken back, see RecordWriter); True once all are filed."""
        now = time.monotonic()
        if not self.records_blocked or now - self._probed_at < ROOM_PROBE_S:
            return False
        self._probed_at = now
        if not self._flush_backlog():
            return False
        self.records_blocked = False
        return True

    def hello(self, **fields: Any) -> None:
        self.emit(P.HELLO, protocol=P.PROTOCOL_VERSION, pid=os.getpid(), **fields)
        self._print(f"hello: run {fields.get('run')} on {fields.get('device')}, {fields.get('params'):,} params, "
                    f"steps {fields.get('start_step')}..{fields.get('total_steps')}")

    def metric(self, **fields: Any) -> None:
        self.emit(P.METRIC, **fields)
        self.status(step=fields["step"], tokens=fields["tokens"])
        now = time.monotonic()
        if now - self._printed_at >= PRINT_EVERY_S:
            self._printed_at = now
            self._print(f"step {fields['step']}: loss {fields['loss']:.4f} ce {fields['ce']:.4f} "
                        f"lr {fields['lr']:.3g} gnorm {fields['gnorm']:.3g} {fields['tok_s']:.0f} tok/s")

    def eval(self, **fields: Any) -> None:
        self.emit(P.EVAL, **fields)
        if fields.get("best"):
            self.status(best_val_loss=fields["val_loss"], force=True)
        self._print(f"eval step {fields['step']}: val_loss {fields['val_loss']:.4f} "
                    f"ppl {fields['val_ppl']:.2f}{' (best)' if fields.get('best') else ''}")

    def sample(self, **fields: Any) -> None:
        self.emit(P.SAMPLE, **fields)
        self._print(f"sample step {fields['step']}: {fields['prompt']!r} -> {fields['text'][:200]!r}")

    def ckpt(self, **fields: Any) -> None:
        self.emit(P.CKPT, **fields)
        self._print(f"checkpoint step {fields['step']}: {fields['path']}{' (best)' if fields.get('best') else ''}")

    def state(self, state: str, step: int, reason: str = "", exit_code: int | None = None,
              total_steps: int | None = None) -> None:
        fields: dict[str, Any] = {"state": state, "step": step, "reason": reason}
        if exit_code is not None:
            fields["exit_code"] = exit_code
        if total_steps is not None:
            fields["total_steps"] = total_steps
            self._status["total_steps"] = total_steps
        self.emit(P.STATE, **fields)
        self.status(state=state, step=step, force=True)
        self._print(f"state {state} at step {step}{': ' + reason if reason else ''}")

    def log(self, text: str, level: str = "info") -> None:
        self.emit(P.LOG, level=level, text=text)
        self._print(f"{level}: {text}")

    def alert(self, kind: str, step: int, text: str) -> None:
        self.emit(P.ALERT, kind=kind, step=step, text=text)
        self._print(f"ALERT {kind} at step {step}: {text}")

    # -- status file and log lines ---------------------------------------------------------------

    def status(self, force: bool = False, **changes: Any) -> None:
        """Update the status; rewrite the file if forced or a second has passed."""
        self._status.update(changes)
        now = time.monotonic()
        if force or now - self._status_at >= STATUS_EVERY_S:
            self._status_at = now
            try:
                P.write_status(self.run_dir, self._status)
            except OSError as e:
                if not self._rewrite_status_in_place():
                    print(f"cannot write status: {e}", file=sys.stderr, flush=True)

    def _rewrite_status_in_place(self) -> bool:
        """A full disk cannot take the new file an atomic replace needs, but the old status file's
        block is already there: overwrite it, so the status still says why the run is paused."""
        import json

        data = json.dumps({**self._status, "updated": time.time()}).encode()
        try:
            fd = os.open(self.run_dir / P.STATUS_FILE, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    @staticmethod
    def _print(line: str) -> None:
        print(time.strftime("%H:%M:%S ") + line, flush=True)

    def close(self) -> None:
        self.writer.close()


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})
"""Errors that mean "no room to write": the run pauses for a person instead of losing records."""


def is_disk_full(e: OSError) -> bool:
    return e.errno in DISK_ERRNOS


def is_oom(e: BaseException) -> bool:
    """An allocation failure: Python's MemoryError, torch's CUDA OutOfMemoryError (a RuntimeError
    saying "out of memory") or its CPU allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(e, MemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class HealthWatch:
    """Spots trouble in the loss and grad-norm series: a spike (loss above mean + k·std of a recent
    window) and grad-norm escalation (gnorm above `gnorm_factor` × the window's median).

    One alert per kind per `cooldown` steps, so a rough patch is one line, not a flood.
    """

    def __init__(self, window: int = 50, k: float = 4.0, gnorm_factor: float = 10.0,
                 min_samples: int = 20, cooldown: int = 50) -> None:
        self.losses: deque[float] = deque(maxlen=window)
        self.gnorms: deque[float] = deque(maxlen=window)
        self.k, self.gnorm_factor, self.min_samples, self.cooldown = k, gnorm_factor, min_samples, cooldown
        self._last: dict[str, int] = {}

    def check(self, step: int, loss: float, gnorm: float) -> list[tuple[str, str]]:
        """(kind, text) alerts for this step's finite loss and gnorm, then remember them."""
        out = []
        if len(self.losses) >= self.min_samples:
            mean, std = statistics.fmean(self.losses), statistics.pstdev(self.losses)
            limit = mean + self.k * max(std, 1e-3 * abs(mean))
            if loss > limit and self._ready("spike", step):
                out.append(("spike", f"loss {loss:.4f} above recent mean {mean:.4f} + {self.k:g} std ({limit:.4f})"))
            median = statistics.median(self.gnorms)
            if median > 0 and gnorm > self.gnorm_factor * median and self._ready("gnorm", step):
                out.append(("gnorm", f"grad norm {gnorm:.3g} is {gnorm / median:.0f}x the recent median {median:.3g}"))
        if math.isfinite(loss) and math.isfinite(gnorm):
            self.losses.append(loss)
            self.gnorms.append(gnorm)
        return out

    def _ready(self, kind: str, step: int) -> bool:
        if step - self._last.get(kind, -10**9) < self.cooldown:
            return False
        self._last[kind] = step
        return True


class SkipTally:
    """nan_policy=skip drops bad batches silently otherwise, but one alert per batch would flood the
    pipe and the dashboard on a run that went bad for good. So: alert the first skip at once, then at
    most once per `every` steps, each later alert counting the skips it stands for."""

    def __init__(self, every: int = 100) -> None:
        self.every = every
        self.total = 0
        self._unsaid = 0
        self._last: int | None = None

    def skipped(self, step: int, text: str) -> str | None:
        """Count a skipped batch at `step`; the alert text to send now, or None to stay quiet."""
        self.total += 1
        self._unsaid += 1
        if self._last is not None and step - self._last < self.every:
            return None
        if self._unsaid > 1:
            text += f" ({self._unsaid} bad batches skipped since the alert at step {self._last}, {self.total} in all)"
        self._last, self._unsaid = step, 0
        return text
