"""The run folder's status file, and whether the process it names is alive."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from nexus_core.safefile import open_regular, read_json
from nexus_core.schema import LIVE_STATES, STATUS_FILE
from nexus_core.units import as_int, is_real


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
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
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
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


_BOOT = ("import sys; home, name = sys.argv[1:3]; del sys.argv[1:3]; sys.path.insert(0, home); "
         "import runpy; runpy.run_module(name, run_name='__main__', alter_sys=True)")
"""Run the engine package found in `home`, with nothing else added to sys.path (see engine_argv)."""


def engine_home(package: str = "engine") -> str:
    """The folder holding the `package` this process uses (installed, or the checkout)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {package} package is not importable from this Python")
    return str(Path(spec.origin).resolve().parent.parent)


def engine_argv(python: str, *args: str, module: str = "engine") -> list[str]:
    """The command line that runs `python -m engine ARGS` with only Nexus's own engine importable.

    `python -m engine` puts the working directory first on sys.path, so a folder named `engine`
    beside the runs (or in the user's project) would run instead of Nexus. `-I` (isolated: no
    cwd, no PYTHON* variables, no user site; Python 3.4+, unlike 3.11's -P) leaves only the
    interpreter's own site-packages, and the boot line puts the folder of the engine this
    process imported in front. `-u`: -I drops PYTHONUNBUFFERED, and engine.log must stay live.
    The literal module name stays in argv, so `ps` (and pid checks) still see `engine`.
    Any of Nexus's own modules starts the same way (`module="nexus_tui.live.prebuild_child"`)."""
    return [python, "-I", "-u", "-c", _BOOT, engine_home(module.split(".")[0]), module, *args]
