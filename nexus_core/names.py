"""The one run-name rule and free-name generation, shared by the CLI, the launch form and the supervisor.

A run name is one folder name a person can type and a shell never mangles: a letter or digit first
(so never '.', '..' or a hidden folder), then letters, digits, '.', '_' or '-', at most 64 in all.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection
from pathlib import Path

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RUN_NAME_RULE = "letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit"


def run_name_ok(name: object) -> bool:
    """Whether `name` is a valid run name (see the module docstring)."""
    return isinstance(name, str) and RUN_NAME_RE.match(name) is not None


def next_free_name(root: Path, base: str, taken: Collection[str] = ()) -> str:
    """base-1, base-2, ... the first that is neither a folder under `root` nor in `taken` (runs just
    launched whose folders are not made yet)."""
    i = 1
    while (Path(root) / f"{base}-{i}").exists() or f"{base}-{i}" in taken:
        i += 1
    return f"{base}-{i}"


def check_run_name(name: object) -> str:
    """'' for a usable run name, else one line that says what to fix."""
    return "" if run_name_ok(name) else f"run name {name!r}: use {RUN_NAME_RULE}"


def free_run_name(root: str | Path, base: str, taken: Collection[str] = ()) -> str:
    """`next_free_name` for a base that may hold anything (a preset or script name): cleaned to the
    name rule first."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip("._-")[:56] or "run"
    return next_free_name(Path(root), base, taken)


def command_base(command: str) -> str | None:
    """What a run of this command is named after, as `nexus.init()` names a run of a script after the
    script: the first `.py` file (`python train.py`, `torchrun ... train.py` -> train), else the module
    after `-m` (its last part), else the program (`./target/release/trainer` -> trainer). None for
    nothing usable (blank, or quotes left open)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not argv:
        return None
    for i, arg in enumerate(argv):
        if arg.endswith(".py"):
            return Path(arg).stem or None
        if arg == "-m" and i + 1 < len(argv):
            return argv[i + 1].rsplit(".", 1)[-1] or None
    return Path(argv[0]).name or None
