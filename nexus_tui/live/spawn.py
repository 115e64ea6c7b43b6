"""Starting a child in its own session with its output in the run's log and, when piped, the write end
of a fresh pipe as its metrics channel: the one place a run's process is created."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nexus_core import children
from nexus_core.protocol import LOG_FILE
from nexus_core.safefile import UnsafeFileError, describe_os_error, open_append
from nexus_core.text import clean_text
from nexus_tui.live.engine_io import widen_pipe
from nexus_tui.live.launch_args import LaunchError

Build = Callable[[int | None], tuple[list[str], dict[str, str]]]
"""Given the pipe's write fd (None when unpiped), the argv and environment to start."""


@dataclass
class ManagedRun:
    """A run this supervisor follows: launched here (proc set) or attached (pid from its status)."""

    name: str
    run_dir: Path
    device: str
    pid: int | None
    proc: children.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    exited: bool = False
    exit_code: int | None = None
    since: float | None = None
    """The status file's `updated` when attached: a process started after it is not this run's."""
    terminated: bool = False
    """This supervisor sent it SIGTERM (a stop before it listened): a silent death is that stop."""
    piping: bool = False
    """Its records are arriving through its metrics pipe now (the reader thread is reading it)."""
    started: float = field(default_factory=time.time)

    @property
    def is_cpu(self) -> bool:
        return not self.device.startswith(("cuda", "mps"))


def start_in_session(
    run_dir: Path, build: Build, cwd: Path, what: str, piped: bool
) -> tuple[children.Popen[bytes], int]:
    """Popen `build(write fd or None)` in its own session (it keeps training when the dashboard
    quits or its terminal closes), stdout and stderr appended to the run's log (a stray print can
    never corrupt the records). Returns the process and the pipe's read end (-1 unpiped).
    LaunchError, with no folder left behind that this call made, if it cannot start."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LaunchError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    read_fd, write_fd = os.pipe() if piped else (-1, None)
    if piped:
        widen_pipe(read_fd)
    argv, env = build(write_fd)
    try:
        with open_append(run_dir / LOG_FILE) as log:  # a planted engine.log link is refused, never followed
            proc = children.start(
                argv,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=children.STDOUT,
                pass_fds=() if write_fd is None else (write_fd,),
                new_session=True,
            )
    except OSError as e:
        if write_fd is not None:
            os.close(read_fd)
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        said = (
            describe_os_error(e) if isinstance(e, UnsafeFileError) else e.strerror or e
        )  # which file, for a refusal
        raise LaunchError(clean_text(f"cannot start {what}: {said}")) from None
    finally:
        if write_fd is not None:
            os.close(write_fd)  # the child has its copy; ours would hide the child's EOF
    return proc, read_fd
