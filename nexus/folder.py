"""Which run folder a script writes: NEXUS_RUN_DIR, then dir/root + name, then ./runs/<free name>.

The name rule and the free-name helper are the protocol's (the dashboard's launcher uses the same),
so a folder a script picks is one the dashboard would have picked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from nexus_core import protocol as P
from nexus_core.units import as_int

DEFAULT_ROOT = "runs"


class NexusError(ValueError):
    """Something the script asked of nexus that cannot be done; the message says what to change."""


def choose_run_dir(
    name: str | None, root: str | os.PathLike[str] | None, run_dir: str | os.PathLike[str] | None, resume: Any
) -> Path:
    """The folder to write, created. A folder that already holds records is taken only with
    `resume` (True, "allow", "must"); `resume="must"` refuses a folder without records."""
    if run_dir is None and (env := os.environ.get(P.RUN_DIR_ENV)):
        run_dir = env
    if run_dir is not None:
        path = Path(run_dir)
    else:
        base = Path(root) if root is not None else Path(DEFAULT_ROOT)
        if name is not None and (error := P.check_run_name(str(name))):
            raise NexusError(error)
        if name is None:
            script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else "run"
            name = P.free_run_name(base, script or "run")
        path = base / name
    if error := P.check_run_name(path.name):
        raise NexusError(error)
    has_records = (path / P.METRICS_FILE).exists() and (path / P.METRICS_FILE).stat().st_size > 0
    if resume == "must" and not has_records:
        raise NexusError(f"resume='must' but {path} holds no run to resume")
    if has_records and resume not in (True, "allow", "must", "auto"):
        raise NexusError(f"a run already exists in {path}: pass resume=True to continue it, or another name")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NexusError(f"cannot create run folder {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise NexusError(f"run folder {path} is not writable")
    return path


def last_step(path: Path) -> int | None:
    """The step of a resumed run's last metric record (None: it has none)."""
    last = None
    for r in P.iter_records(path / P.METRICS_FILE, frozenset({P.METRIC})):
        step = r.get("step")
        if as_int(step) is not None:
            last = step
    return last


def metrics_fd() -> int | None:
    """The metrics pipe a launcher handed over in NEXUS_METRICS_FD, if it is an open descriptor."""
    text = os.environ.get("NEXUS_METRICS_FD", "")
    if not text.isdigit():
        return None
    fd = int(text)
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd
