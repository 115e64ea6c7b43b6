"""The run folder's status file, and whether the process it names is alive."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.protocol.safefile import read_json
from engine.protocol.schema import STATUS_FILE


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
    """The run's status, or None if it has none or it cannot be read (not a regular file, over
    4 MiB, not JSON, nested too deep)."""
    try:
        data = read_json(Path(run_dir) / STATUS_FILE)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
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
