"""One live engine per run folder, enforced by the OS.

Two engines in one folder interleave their records, flip `latest` and orphan each other's control
socket. A check of the status file or of "already has metrics" races (both engines pass it before
either writes), so the engine takes an exclusive `flock` on `runs/NAME/engine.lock` before it writes
anything and holds it for its whole life (under torchrun, rank 0 holds it). The kernel drops the lock
when the process dies however it dies, so a SIGKILLed engine never leaves a stale lock behind, and
the file's content (the holder's pid) is only what the refusal says, never what decides.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from nexus_core.errors import ConfigError
from nexus_core.safefile import open_lock

LOCK_FILE = "engine.lock"
_held: list[int] = []
"""Descriptors of the locks this process holds: kept open (and so locked) until it exits."""


def hold_run_folder(run_dir: str | Path) -> None:
    """Lock `run_dir` for this process's life, or raise ConfigError naming the engine that holds it.
    The folder must exist. Taking a lock this process already holds is a no-op."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = open_lock(path, create=True)
    except OSError as e:
        raise ConfigError(f"cannot lock the run folder {run_dir}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ConfigError(_in_use(run_dir, holder)) from None
    except OSError as e:
        os.close(fd)
        raise ConfigError(f"cannot lock the run folder {run_dir}: {e.strerror or e}") from None
    with contextlib.suppress(OSError):  # the holder's pid, for the next engine's refusal
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held.append(fd)


def refuse_if_in_use(run_dir: str | Path) -> None:
    """The same refusal as hold_run_folder, without creating or writing anything: for the checks a
    command makes before it may write (so a refused command leaves the folder byte for byte)."""
    try:
        fd = open_lock(Path(run_dir) / LOCK_FILE, create=False)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(_in_use(run_dir, _holder(fd))) from None
    except OSError:
        return
    finally:
        os.close(fd)


def _in_use(run_dir: str | Path, holder: int | None) -> str:
    who = f"engine pid {holder}" if holder else "another engine"
    return (
        f"run folder {run_dir} is in use by {who} (one engine per folder): stop it first "
        f"(`kill {holder or 'PID'}` checkpoints and exits), or give another --run-dir"
    )


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    return None


def folder_is_locked(run_dir: str | Path) -> bool:
    """Whether a live engine holds the run folder (a torch-free check for `nexus runs`)."""
    try:
        fd = open_lock(Path(run_dir) / LOCK_FILE, create=False)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False
