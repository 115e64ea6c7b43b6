"""The run folder's status file, and whether the process it names is alive."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from nexus_core.schema import STATUS_FILE


def write_status(run_dir: str | Path, status: dict[str, Any]) -> None:
    """Atomically replace runs/NAME/status (JSON) so readers never see half a file."""
    run_dir = Path(run_dir)
    fd, tmp = tempfile.mkstemp(prefix=".status.", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({**status, "updated": time.time()}, f, indent=1, sort_keys=True)
        os.replace(tmp, run_dir / STATUS_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's status, or None if it has none or it cannot be read."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: Any, updated: Any = None) -> bool:
    """Whether a process with this pid exists, is not a zombie we could reap, and is the run's rather
    than some program that got a recycled pid: it started before the run's status was last `updated`
    (unix time; any language's writer), or, without that time, /proc says it is a Python engine or
    nexus process. The one liveness check: the status file, the supervisor, `nexus runs` and the
    checkpoint writer's lock all ask it."""
    if not _pid_exists(pid):
        return False
    if isinstance(updated, (int, float)) and not isinstance(updated, bool):
        import psutil  # only here: the rest of the core needs no psutil

        try:
            return psutil.Process(pid).create_time() <= updated + 1.0
        except psutil.Error:
            pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"engine" in cmdline or b"nexus" in cmdline or b"python" in cmdline


def tail_bytes(path: str | Path, size: int) -> bytes | None:
    """The last `size` bytes of a file (None if it cannot be read): a run's files can be large."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read()
    except OSError:
        return None


def _pid_exists(pid: Any) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False  # a pid no kernel gives out (and os.kill overflows past a C int)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
