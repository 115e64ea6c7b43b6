"""The run folder's status file, and whether the process it names is alive."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from nexus_core.children import engine_argv, engine_home
from nexus_core.safefile import atomic_write, open_regular, read_json, read_proc
from nexus_core.schema import LIVE_STATES, STATUS_FILE
from nexus_core.units import as_int, is_real


def write_status(run_dir: str | Path, status: dict[str, Any]) -> None:
    """Atomically replace runs/NAME/status (JSON) so readers never see half a file."""
    text = json.dumps({**status, "updated": time.time()}, indent=1, sort_keys=True)
    atomic_write(Path(run_dir) / STATUS_FILE, text, within=run_dir, mode=0o600)


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's status, or None if it has none or it cannot be read (not a regular file, over
    4 MiB, not JSON, nested too deep)."""
    try:
        data = read_json(Path(run_dir) / STATUS_FILE)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def status_live(status: dict[str, Any] | None) -> bool:
    """Whether a run's status says it is live and its process is still the run's (`pid_alive` with
    the status's own `updated` time, so a recycled pid does not count)."""
    if not status or status.get("state") not in LIVE_STATES:
        return False
    return pid_alive(status.get("pid"), status.get("updated"))


def pid_alive(pid: Any, updated: Any = None) -> bool:
    """Whether a process with this pid exists, is not a zombie we could reap, and is the run's rather
    than some program that got a recycled pid: it started before the run's status was last `updated`
    (unix time; any language's writer), or, without that time, /proc says it is a Python engine or
    nexus process. The one liveness check: the status file, the supervisor, `nexus runs` and the
    checkpoint writer's lock all ask it."""
    if not _pid_exists(pid):
        return False
    if is_real(updated):
        import psutil  # only here: the rest of the core needs no psutil

        try:
            return psutil.Process(pid).create_time() <= updated + 1.0
        except psutil.Error:
            pass
    try:
        cmdline = read_proc(f"/proc/{pid}/cmdline")
    except OSError:
        return True
    return b"engine" in cmdline or b"nexus" in cmdline or b"python" in cmdline


def tail_bytes(path: str | Path, size: int) -> bytes | None:
    """The last `size` bytes of a file (None if it cannot be read): a run's files can be large.
    Regular files only: a FIFO planted there must not hang the reader."""
    try:
        with open_regular(path) as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read()
    except OSError:
        return None


def _pid_exists(pid: Any) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    if as_int(pid) is None or not 0 < pid < 2**31:
        return False  # a pid no kernel gives out (and os.kill overflows past a C int)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return read_proc(f"/proc/{pid}/stat").split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True


__all__ = [
    "engine_argv",
    "engine_home",
    "pid_alive",
    "read_status",
    "status_live",
    "tail_bytes",
    "write_status",
]
