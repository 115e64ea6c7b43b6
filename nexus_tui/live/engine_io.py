"""Reading what an engine process leaves behind: its metrics pipe, the tail of its log, its last state.

Split from supervisor.py (which owns the processes) so each file has one job; also how a launched
command is found and which GPUs it sees. All torch-free and
UI-free; called from the supervisor's reader and poller threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nexus_core import children
from nexus_core.protocol import (
    FINAL_STATES,
    FINISHED,
    LOG_FILE,
    METRICS_FILE,
    STOPPED,
    RecordDecoder,
    State,
    tail_bytes,
)
from nexus_tui.history.columnar.fastdecode import ColumnDecoder, Piece

TAIL_LINES = 40


def read_pipe(
    fd: int,
    exited: Callable[[], bool],
    deliver: Callable[[list[Piece]], None],
    warn: Callable[[str], None],
    stop: threading.Event,
    window: float = 0.05,
) -> None:
    """Decode a metrics pipe until EOF, `exited()` (checked when the pipe is quiet: a grandchild that
    inherited the pipe would otherwise hide the exit), or `stop`. Records are decoded a read at a time
    into pieces (metric columns, other records typed: see fastdecode.py); those arriving within
    `window` s of the first of a burst are delivered together; decode warnings go to `warn`.
    Closes `fd`."""
    decoder = ColumnDecoder()
    batch: list[Piece] = []
    first_at = 0.0

    def flush() -> None:
        nonlocal batch
        if batch:
            deliver(batch)
            batch = []
        for w in decoder.warnings:
            warn(f"metrics pipe: {w.text}")
        decoder.warnings.clear()

    try:
        while not stop.is_set():
            wait = max(0.0, window - (time.monotonic() - first_at)) if batch else 0.25
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                flush()
                if exited():
                    batch += decoder.feed(_drain(fd))
                    break
                continue
            data = os.read(fd, 1 << 20)
            if not data:
                break
            if not batch:
                first_at = time.monotonic()
            batch += decoder.feed(data)
            if time.monotonic() - first_at >= window:
                flush()
    finally:
        if decoder.finish():
            warn(f"metrics pipe ended inside a record ({decoder.pending} bytes lost)")
        flush()
        os.close(fd)


PIPE_BYTES = 1 << 20


def widen_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (Linux; the default is 64 KiB): a fast run's burst fits while the
    dashboard is busy drawing, so the engine's non-blocking writes drop nothing, and the reader gets
    big chunks to decode in bulk. Best effort: other systems keep their default."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def log_tail(run_dir: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a run's engine.log (what a crash said), or '' if there is none."""
    data = tail_bytes(run_dir / LOG_FILE, 16384)
    if data is None:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def last_state(run_dir: Path) -> State | None:
    """The last state record in a run's metrics file, reading only its tail."""
    data = tail_bytes(run_dir / METRICS_FILE, 65536)
    if data is None:
        return None
    states = [r for r in RecordDecoder().feed(data) if isinstance(r, State)]
    return states[-1] if states else None


def exit_code_of(run_dir: Path) -> int | None:
    """A dead run's exit status as its last state record tells it (None: it never said, e.g. killed)."""
    state = last_state(run_dir)
    if not state or state.state not in FINAL_STATES:
        return None
    if state.exit_code is not None:
        return state.exit_code
    return 0 if state.state in (FINISHED, STOPPED) else 1


def _drain(fd: int) -> bytes:
    """Whatever is in the pipe right now, without blocking."""
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


BARE_PYTHONS = ("python", "python3")
"""Command names that mean "Python" rather than one interpreter in particular."""


def command_program(argv: list[str]) -> str:
    """The executable a launched command runs, found on PATH as a shell would (but with no shell).
    A bare `python` or `python3` is the interpreter Nexus runs under (its venv has torch and the
    reporter even when the venv is not activated: `make demo` never activates it); any other name
    or a path (`python3.11`, `.venv/bin/python`) is used as given. Raises ValueError with what to fix."""
    if not argv or not argv[0].strip():
        raise ValueError("give a command to run, e.g. python train.py --lr 3e-4")
    if argv[0] in BARE_PYTHONS and children.PYTHON:
        return children.PYTHON
    found = shutil.which(argv[0])
    if found is None:
        raise ValueError(f"command not found: {argv[0]!r} (not an executable file, nor on PATH)")
    return found


def visible_devices(device: str) -> str | None:
    """CUDA_VISIBLE_DEVICES for a command launched on `device`: cuda:N shows that GPU alone (the
    script sees it as cuda:0), cpu none; anything else (cuda, auto) leaves the variable as it is."""
    if device.startswith("cuda:") and device[5:].isdigit():
        return device[5:]
    return "" if device == "cpu" else None
