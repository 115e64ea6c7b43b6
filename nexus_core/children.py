"""The one door for processes: every child Nexus starts (the engine, the decoding child, torchrun, the
engine's `--check`, a command from the launch form) is started here, and only here.

Each start names its working directory and its environment on purpose (keyword arguments without
defaults), so a child never inherits a folder or variables by accident. Nexus's own modules run in an
isolated interpreter (`nexus_argv`): `-I` keeps the working directory, PYTHONPATH and the user site
off sys.path, and a boot line adds only the folder of the package this process imported, so a
planted `engine/`, `numpy/` or `nexus_tui/` beside the runs is never imported. A user's own command
(the form's `python train.py`) is theirs: it runs as they typed it, with no shell.
The lint test (tests/unit/test_doors.py) fails on any `subprocess`, `os.exec*` or `sys.executable`
outside this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

PYTHON = sys.executable
"""The interpreter running Nexus: its children use the same one (and so the same installed packages)."""

DEVNULL = subprocess.DEVNULL
PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
Popen = subprocess.Popen
TimeoutExpired = subprocess.TimeoutExpired

_BOOT = (
    "import sys; home, name = sys.argv[1:3]; del sys.argv[1:3]; sys.path.insert(0, home); "
    "import runpy; runpy.run_module(name, run_name='__main__', alter_sys=True)"
)
"""Run the module found in `home`, with nothing else added to sys.path (see nexus_argv)."""


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


def nexus_argv(module: str, *args: str, python: str = PYTHON) -> list[str]:
    """`python -I ... -m MODULE ARGS` for one of Nexus's own modules (see engine_argv)."""
    return engine_argv(python, *args, module=module)


def child_env(extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict[str, str]:
    """An environment for a child: this process's (the user's shell: CUDA, PATH, HF_HOME ... must
    reach their runs), with `drop` removed and `extra` set on top."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env


def _cwd(cwd: str | Path) -> str:
    path = os.fspath(cwd)
    if not os.path.isdir(path):
        raise NotADirectoryError(20, "the working directory chosen for a child is not a folder", path)
    return path


def start(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str],
    stdin: Any = DEVNULL,
    stdout: Any = None,
    stderr: Any = None,
    pass_fds: Sequence[int] = (),
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `argv` (no shell) in `cwd` with exactly `env`. `new_session`: its own session, so it
    outlives the dashboard's terminal and a Ctrl-C there is not its. OSError if it cannot start."""
    return subprocess.Popen(
        list(argv),
        cwd=_cwd(cwd),
        env=dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        pass_fds=tuple(pass_fds),
        start_new_session=new_session,
        close_fds=True,
    )


def run(
    argv: Sequence[str], *, cwd: str | Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end (stdin closed, output captured as text) within `timeout` seconds;
    OSError or TimeoutExpired."""
    return subprocess.run(
        list(argv),
        cwd=_cwd(cwd),
        env=dict(env),
        stdin=DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def become(argv: Sequence[str], *, env: Mapping[str, str], search_path: bool = False) -> NoReturn:
    """Replace this process with `argv` (the `nexus train` console script becoming the isolated
    engine; the engine becoming torchrun; `nexus run CMD` becoming the person's command, found on
    PATH with `search_path`). The working directory is the person's own, on purpose: they typed the
    command there and relative paths in it mean that folder. OSError if it cannot be run."""
    if search_path:
        os.execvpe(argv[0], list(argv), dict(env))
    os.execve(argv[0], list(argv), dict(env))
