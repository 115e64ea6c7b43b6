"""Report any training loop to Nexus: `import nexus` (or `import nexus as wandb`) and two lines.

    run = nexus.init(name="lstm-1", config=vars(args), total_steps=10_000)
    for step in range(...):
        ...
        run.log({"loss": loss, "lr": sched.get_last_lr()[0]})   # tensors welcome: never synced here
        run.step_end()                                            # pause/stop/checkpoint/eval/sample act here
        if run.should_stop:
            break
    run.finish()

The run folder it writes is the one the engine writes (docs/PROTOCOL.md), so the dashboard, `nexus
runs` and `nexus compare` show it live or finished. Torch-free and textual-free: torch is touched only
through tensors or an optimizer the script passes in.
"""

from __future__ import annotations

import enum
import os
from typing import Any

from nexus.config import Config, Summary
from nexus.folder import NexusError, choose_run_dir, last_step, metrics_fd
from nexus.reporter import FINISHED_HOOKS, Run
from nexus.values import WELL_KNOWN

__all__ = ["AlertLevel", "Config", "NexusError", "Run", "Summary", "WELL_KNOWN", "alert", "config", "finish",
           "init", "log", "run", "summary", "watch"]

run: Run | None = None
"""The run of the last init() until it finishes (wandb.run)."""
config: Config | None = None
summary: Summary | None = None


def _forget(finished: Run) -> None:
    """`nexus.run` is None once that run finishes (wandb.run after run.finish())."""
    global run
    if run is finished:
        run = None


FINISHED_HOOKS.append(_forget)

WANDB_IGNORED = frozenset({
    "entity", "job_type", "id", "mode", "reinit", "settings", "save_code", "anonymous", "sync_tensorboard",
    "monitor_gym", "config_exclude_keys", "config_include_keys", "allow_val_change", "force", "magic",
    "tensorboard", "fork_from", "resume_from",
})
"""wandb.init keywords accepted and ignored, so `import nexus as wandb` runs unchanged scripts."""


class AlertLevel(enum.Enum):
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def init(name: str | None = None, config: Any = None, dir: str | os.PathLike[str] | None = None,  # noqa: A002
         root: str | os.PathLike[str] | None = None, total_steps: int | None = None, resume: Any = None,
         run_dir: str | os.PathLike[str] | None = None, model: str | None = None, project: str | None = None,
         tags: Any = None, notes: str | None = None, group: str | None = None, **wandb_kwargs: Any) -> Run:
    """Start reporting; returns the Run (also `nexus.run`).

    The folder: `run_dir`, else $NEXUS_RUN_DIR (set by whoever launched the script), else
    (`root` or `dir`, default ./runs) / (`name`, default <script>-<n>, the first free). A folder that
    already holds a run is continued only with resume=True ("allow"/"must" as in wandb)."""
    global run, summary
    unknown = set(wandb_kwargs) - WANDB_IGNORED
    if unknown:
        raise TypeError(f"nexus.init() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if total_steps is not None and (isinstance(total_steps, bool) or int(total_steps) < 0):
        raise NexusError(f"total_steps must be a positive integer, got {total_steps!r}")
    if run is not None:
        run.finish()
    path = choose_run_dir(name, root if root is not None else dir, run_dir, resume)
    resumed = resume in (True, "allow", "must", "auto") and (path / "metrics.msgpack").exists()
    start = (last_step(path) if resumed else None)
    new = Run(path, config=config, total_steps=int(total_steps) if total_steps else None,
              start_step=1 if start is None else start + 1, resumed=resumed and start is not None, model=model or "",
              meta={"project": project, "tags": list(tags) if tags else None, "notes": notes, "group": group},
              pipe_fd=metrics_fd())
    run = new
    globals()["config"] = new.config
    summary = new.summary
    return new


def _current(what: str) -> Run:
    if run is None:
        raise NexusError(f"nexus.{what}() needs a run: call nexus.init() first")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """`nexus.run.log(...)`."""
    _current("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run, if any (wandb.finish)."""
    if run is not None:
        run.finish(exit_code=exit_code)


def alert(title: str, text: str = "", level: Any = AlertLevel.INFO, wait_duration: Any = None) -> None:
    _current("alert").alert(title, text, level)


def watch(target: Any, *args: Any, **kwargs: Any) -> None:
    """`nexus.run.watch(optimizer_or_model)`."""
    _current("watch").watch(target)
