"""The run folder's status file, and whether the process it names is alive."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.protocol.schema import STATUS_FILE

RUN_NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A run's folder name: what the dashboard's launcher, `nexus.init(name=...)` and the docs accept."""


def check_run_name(name: str) -> str:
    """'' for a usable run name, else one line that says what to fix."""
    if RUN_NAME_RULE.match(name):
        return ""
    return f"run name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"


def free_run_name(root: str | Path, base: str, taken: frozenset[str] | set[str] = frozenset()) -> str:
    """base-1, base-2, ...: the first name that is neither a folder under `root` nor in `taken`.
    `base` is cleaned to the name rule first (a preset or script name may hold anything)."""
    root = Path(root)
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip("._-")[:56] or "run"
    for i in range(1, 100_000):
        name = f"{base}-{i}"
        if name not in taken and not (root / name).exists():
            return name
    raise FileExistsError(f"no free run name for {base!r} under {root}")


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
