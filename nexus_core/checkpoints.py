"""Finding and reading a run's checkpoints without torch: list, resolve a name, read meta.json.

Layout: runs/NAME/checkpoints/step_000200/ (model.safetensors, optim.safetensors, meta.json written
last) plus `latest` and `best` symlinks. The engine writes and loads them (engine/checkpoint.py); the
dashboard's LR preview and `nexus runs` only need to find them and read their meta.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from nexus_core.errors import CheckpointError
from nexus_core.safefile import read_json
from nexus_core.schema import CHECKPOINTS_DIR

FORMAT_VERSION = 1
META_FILE = "meta.json"
LATEST, BEST = "latest", "best"
PREFIX = "step_"


def step_name(step: int) -> str:
    """The folder name of the checkpoint after `step` steps."""
    return f"{PREFIX}{step:06d}"


def checkpoints_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest step first (temp folders and pointers excluded)."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if (
            p.name.startswith(PREFIX)
            and p.name[len(PREFIX) :].isdigit()
            and not p.is_symlink()
            and (p / META_FILE).is_file()
        ):  # meta.json is written last: without it, no checkpoint
            found.append(p)
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def existing_steps(run_dir: str | Path) -> set[int]:
    """The steps whose checkpoint is still on disk: `ckpt` records outlive the folders `keep_last`
    deletes, so whatever offers a checkpoint to load asks here."""
    return {int(p.name[len(PREFIX) :]) for p in list_checkpoints(run_dir)}


def resolve_checkpoint(run_dir: str | Path, which: str | None = None) -> Path:
    """The one resolver of a checkpoint name, for every command and the dashboard alike.

    `which` may be None or 'latest', 'best', a step ('60'), a folder name ('step_000060'), a path
    relative to the run folder ('checkpoints/step_000060', what `ckpt` records carry), a path relative
    to the working directory, or an absolute path. Anything else is a CheckpointError of one line
    that lists what exists, so the person can copy a name that works."""
    run_dir = Path(run_dir)
    root = checkpoints_root(run_dir)
    which = (which or LATEST).strip()
    if which in (LATEST, BEST):
        pointer = root / which
        if pointer.is_symlink() and pointer.resolve().is_dir():
            return pointer.resolve()
        if which == BEST:
            raise CheckpointError(f"run {run_dir.name} has no best checkpoint yet (no eval has run)")
        done = list_checkpoints(run_dir)
        if not done:
            raise CheckpointError(f"run folder {run_dir} has no checkpoints to load")
        return done[-1]
    candidates = [root / which, run_dir / which, Path(which).expanduser()]
    if which.isdigit():
        candidates.insert(0, root / step_name(int(which)))
    elif which.startswith(PREFIX) and which[len(PREFIX) :].isdigit():
        candidates.insert(0, root / step_name(int(which[len(PREFIX) :])))  # step_60 = step_000060
    for c in candidates:
        with contextlib.suppress(OSError, ValueError):
            if c.is_dir() and ((c / META_FILE).exists() or c.resolve().name.startswith(PREFIX)):
                return c.resolve()
    names = [p.name for p in list_checkpoints(run_dir)]
    shown = ", ".join(names if len(names) <= 6 else [*names[:3], "...", *names[-3:]]) or "none"
    example = int(names[-1][len(PREFIX) :]) if names else 200
    raise CheckpointError(
        f"checkpoint {which!r} not found in run {run_dir.name}; available: {shown} "
        f"(give latest, best, a step like {example}, a folder name or a path)"
    )


def read_meta(ckpt_dir: str | Path) -> dict[str, Any]:
    """A checkpoint's meta.json, checked to be whole; CheckpointError says what is wrong."""
    path = Path(ckpt_dir) / META_FILE
    try:
        meta = read_json(path)  # regular file, at most 4 MiB, no NaN/Infinity, no stack-deep nesting
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {ckpt_dir} is incomplete: {META_FILE} is missing") from None
    except OSError as e:
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt: {META_FILE} {e.strerror}") from None
    except ValueError as e:
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt: {META_FILE} unreadable ({e})") from None
    problem = meta_problem(meta)
    if problem:
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt: {META_FILE} {problem}")
    if meta["format"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {ckpt_dir} has format {meta['format']}; this Nexus reads up to {FORMAT_VERSION}"
        )
    checked: dict[str, Any] = meta
    return checked


_META_TYPES: dict[str, tuple[type, ...]] = {
    "format": (int,),
    "step": (int,),
    "tokens": (int,),
    "schedule": (dict,),
    "optimizer": (dict, list),
    "config": (dict,),
    "lr_scale": (int, float),
    "val_loss": (int, float, type(None)),
    "best_val_loss": (int, float, type(None)),
}
"""meta.json's keys that loading reads, with the types it reads them as (the first six are required)."""


def meta_problem(meta: Any) -> str:
    """'' when a decoded meta.json has every key loading needs, each of the right type and range;
    else what is wrong, in a few words. A hand-edited or planted meta (`step: "abc"`, `config: 5`)
    is refused here, before anything reads it as a number or a mapping."""
    if not isinstance(meta, dict):
        return f"is a JSON {type(meta).__name__}, not an object"
    missing = [k for k in ("format", "step", "tokens", "schedule", "optimizer", "config") if k not in meta]
    if missing:
        return f"lacks {', '.join(missing)}"
    for key, types in _META_TYPES.items():
        value = meta.get(key, types[0]())  # an optional key left out passes
        if isinstance(value, bool) or not isinstance(value, types):
            return f"has {key} = {str(value)[:40]!r} ({type(value).__name__}), not {'/'.join(t.__name__ for t in types)}"
    if meta["step"] < 0 or meta["tokens"] < 0 or meta["format"] < 1:
        return "has a negative step or tokens, or a format below 1"
    if not all(
        isinstance(meta["config"].get(s, {}), dict) for s in ("model", "data", "optim", "schedule", "train")
    ):
        return "has a config whose sections are not tables"
    if "lr_scale" in meta and not (math.isfinite(meta["lr_scale"]) and meta["lr_scale"] > 0):
        return f"has lr_scale = {meta['lr_scale']!r}, not a positive number"
    return ""
