"""A foreign run folder is data, never instructions: the one answer to "may Nexus act on this folder's
config without asking?".

Showing a run folder only reads it (through the file door). Resuming, evaluating or sampling it does
more: the engine reads the corpus its config names and writes checkpoints, records and caches. A
folder this user did not make (another owner), or whose config reads data from outside the run
folder and the user's data roots (a planted `data.source = "~/.ssh/id_ed25519"` would be tokenized
into a folder its author can read), is foreign: the dashboard asks first, listing the files the
command will read and write; the command line refuses unless `--trust-foreign` is given.

Data roots: the folder holding the runs folder (a project's `data/` beside its `runs/`), the run
folder itself, and any folders in NEXUS_DATA_ROOTS (separated like PATH) or in the settings file's
`data_roots` list ($XDG_CONFIG_HOME/nexus/settings.json).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nexus_core.safefile import read_json
from nexus_core.schema import CONFIG_FILE, LOG_FILE, METRICS_FILE, STATUS_FILE

DATA_ROOTS_ENV = "NEXUS_DATA_ROOTS"
TRUST_FLAG = "--trust-foreign"
TOUCHES = {
    "resume": (
        (CONFIG_FILE, "checkpoints/", "tokenizer.json", METRICS_FILE, "DATA"),
        (METRICS_FILE, STATUS_FILE, LOG_FILE, "checkpoints/", "tokenizer.json", "tokens_*.npy", CONFIG_FILE),
    ),
    "eval": ((CONFIG_FILE, "checkpoints/", "tokenizer.json", "DATA"), ()),
    "generate": ((CONFIG_FILE, "checkpoints/", "tokenizer.json"), ()),
}
"""command -> (what it reads, what it writes), relative to the run folder; DATA is the corpus."""


@dataclass
class Verdict:
    """Why a folder is foreign (empty: it is not), and what a command would read and write."""

    reasons: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def line(self, command: str) -> str:
        """One line for the command line's refusal."""
        return (
            f"run folder is not yours to trust ({'; '.join(self.reasons)}): `{command}` would read "
            f"{', '.join(self.reads)} and write {', '.join(self.writes) or 'nothing'}; give {TRUST_FLAG} "
            f"to go ahead"
        )


def _config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")) / "nexus"


def data_roots(run_dir: Path) -> list[Path]:
    """The folders a run's corpus may come from without asking (see the module's docstring)."""
    run_dir = Path(os.path.abspath(run_dir))
    roots = [run_dir, run_dir.parent.parent]
    roots += [Path(p).expanduser() for p in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    try:
        saved = read_json(_config_dir() / "settings.json")
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict) and isinstance(saved.get("data_roots"), list):
        roots += [Path(p).expanduser() for p in saved["data_roots"] if isinstance(p, str) and p.strip()]
    return roots


def _inside(path: str, root: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _owner(path: Path) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def _source(run_dir: Path) -> str | None:
    """The corpus the folder's config names (None when it has none or it cannot be read)."""
    from nexus_core.config import read_toml
    from nexus_core.errors import ConfigError

    try:
        table = read_toml(run_dir / CONFIG_FILE)
    except ConfigError:
        return None
    data = table.get("data")
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, str) else None


def check(run_dir: str | Path, command: str) -> Verdict:
    """Whether `command` (resume, eval, generate) on this folder needs the user's yes, and why."""
    run_dir = Path(run_dir)
    me = os.getuid()
    reasons = []
    for path in (run_dir, run_dir / CONFIG_FILE, run_dir / "checkpoints"):
        uid = _owner(path)
        if uid is not None and uid != me:
            reasons.append(f"{path.name} belongs to uid {uid}, not you")
            break
    source = _source(run_dir)
    reads, writes = TOUCHES.get(command, TOUCHES["resume"])
    shown_reads = [str(run_dir / r) if r != "DATA" else f"the corpus {source or '(none)'}" for r in reads]
    if source and source != "stdlib" and "DATA" in reads:
        full = os.path.expanduser(source)
        if not os.path.isabs(full):
            full = os.path.join(os.getcwd(), full)
        if not any(_inside(full, root) for root in data_roots(run_dir)):
            reasons.append(
                f"its config reads data from {os.path.realpath(full)}, outside the run folder and "
                f"your data roots ({DATA_ROOTS_ENV})"
            )
    return Verdict(reasons, shown_reads, [str(run_dir / w) for w in writes])
