"""Where a run's events go: records (file + pipe) and the status file through the reporter's writer
(nexus/writer.py, the one writer of every run folder), and human lines in engine.log.

Like torchtitan's metric loggers, the trainer calls one method per event and never cares who listens.
Each method queues one record for the writer thread (`Writer.put`, the reporter's entry point too,
with `keep`: never dropped; training never waits on the disk) and now and then prints a readable line to stdout (engine.log, never the data channel). The
writer files the records (a full disk holds them in memory until there is room: nexus/filing.py),
streams them to the dashboard's pipe, and keeps the status file fresh. What is the engine's own
here: its hello (the engine writes config.toml itself), the lines for people, and the disk errors the
trainer pauses on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from nexus.filing import MAX_BACKLOG, ROOM_PROBE_S
from nexus.writer import Writer
from nexus_core import protocol as P

__all__ = ["MAX_BACKLOG", "ROOM_PROBE_S", "Reporter", "SafeStream", "protect_output"]

PRINT_EVERY_S = 2.0


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
    """The engine's events as records for the writer thread. `status` seeds the status file: run,
    device, device_name, model, total_steps, socket, best_val_loss, step, tokens (the writer keeps
    state, step, tokens, total and best up to date from the records themselves)."""

    def __init__(self, run_dir: str | Path, pipe_fd: int | None = None, **status: Any) -> None:
        self.run_dir = Path(run_dir)
        self.writer = Writer(self.run_dir, status, pipe_fd)
        self.writer.describe = None  # the engine files its own hello, and cli.py writes config.toml
        self.writer.start()
        self.checkpoint_error: str | None = None
        """Why the last checkpoint could not be written for lack of room (the trainer pauses on it)."""
        self._printed_at = 0.0

    # -- records ---------------------------------------------------------------------------------

    def emit(self, record_type: str, /, **fields: Any) -> dict[str, Any]:
        """Queue one record, stamped with the time it happened (not the time there was room to file
        it). Never dropped: the engine's records are one a step, and a full disk holds them in memory."""
        record = {"type": record_type, **fields}
        record.setdefault("time", time.time())
        self.writer.put(record, keep=True)  # the writer's one entry point, as the reporter's log()
        return record

    def sync(self) -> None:
        """Everything emitted so far is filed (or held for room) before this returns: called before a
        checkpoint is written, so the metrics file always covers the steps a checkpoint does."""
        self.writer.sync()

    def hello(self, **fields: Any) -> None:
        self.emit(P.HELLO, protocol=P.PROTOCOL_VERSION, pid=os.getpid(), **fields)
        self._print(
            f"hello: run {fields.get('run')} on {fields.get('device')}, {fields.get('params'):,} params, "
            f"steps {fields.get('start_step')}..{fields.get('total_steps')}"
        )

    def metric(self, **fields: Any) -> None:
        """A step's numbers; extra keys (tensors welcome: the writer reads them off this thread) are
        series of their own (`mtp/head1_ce`, `gnorm/adamw_decay`)."""
        self.emit(P.METRIC, **fields)
        now = time.monotonic()
        if now - self._printed_at >= PRINT_EVERY_S:
            self._printed_at = now
            self._print(
                f"step {fields['step']}: loss {fields['loss']:.4f} ce {fields['ce']:.4f} "
                f"lr {fields['lr']:.3g} gnorm {fields['gnorm']:.3g} {fields['tok_s']:.0f} tok/s"
            )

    def eval(self, **fields: Any) -> None:
        self.emit(P.EVAL, **fields)
        self._print(
            f"eval step {fields['step']}: val_loss {fields['val_loss']:.4f} "
            f"ppl {fields['val_ppl']:.2f}{' (best)' if fields.get('best') else ''}"
        )

    def sample(self, **fields: Any) -> None:
        self.emit(P.SAMPLE, **fields)
        self._print(f"sample step {fields['step']}: {fields['prompt']!r} -> {fields['text'][:200]!r}")

    def ckpt(self, **fields: Any) -> None:
        self.emit(P.CKPT, **fields)
        self._print(
            f"checkpoint step {fields['step']}: {fields['path']}{' (best)' if fields.get('best') else ''}"
        )

    def state(
        self,
        state: str,
        step: int,
        reason: str = "",
        exit_code: int | None = None,
        total_steps: int | None = None,
    ) -> None:
        fields: dict[str, Any] = {"state": state, "step": step, "reason": reason}
        if exit_code is not None:
            fields["exit_code"] = exit_code
        if total_steps is not None:
            fields["total_steps"] = total_steps
        self.emit(P.STATE, **fields)
        self._print(f"state {state} at step {step}{': ' + reason if reason else ''}")

    def log(self, text: str, level: str = "info") -> None:
        self.emit(P.LOG, level=level, text=text)
        self._print(f"{level}: {text}")

    def alert(self, kind: str, step: int, text: str) -> None:
        self.emit(P.ALERT, kind=kind, step=step, text=text)
        self._print(f"ALERT {kind} at step {step}: {text}")

    # -- a full disk -----------------------------------------------------------------------------

    @property
    def disk_error(self) -> str | None:
        """Why something could not be written for lack of room: a checkpoint, or the records."""
        return self.checkpoint_error or self.writer.disk_error

    @property
    def records_blocked(self) -> bool:
        """The disk error came from the records: the writer probes for room and the run goes on by itself."""
        return self.writer.disk_error is not None

    def room_again(self) -> bool:
        """For a run paused on unwritable records: True once the writer has filed every held record."""
        return not self.writer.blocked

    def clear_disk_error(self) -> None:
        """A person says there is room again; a new failure pauses again."""
        self.checkpoint_error = None
        self.writer.clear_disk_error()

    # -- the end ---------------------------------------------------------------------------------

    @staticmethod
    def _print(line: str) -> None:
        # One line each, cleaned: text from a config (a corpus path holding a newline and a key) must
        # never start a line of its own in engine.log.
        print(time.strftime("%H:%M:%S ") + P.clean_text(line), flush=True)

    def close(self) -> None:
        """File everything queued (and, room allowing, everything held), then close the files."""
        if not self.writer.close():
            print("the disk did not take the last records in time", file=sys.stderr, flush=True)
