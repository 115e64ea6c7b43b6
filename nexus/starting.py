"""`nexus.init()` (wandb.init): which folder, which mode, what a resume keeps, what happens to a live run.

- mode "disabled" (argument, Settings or $WANDB_MODE): a DisabledRun, nothing written.
- reinit: "create_new" keeps the live runs and starts another beside them (each keeps logging into
  its own folder); "return_previous" / False returns the live run; "finish_previous" / True / the
  default finishes it first, as wandb does in a script.
- resume "allow"/"must"/True/"auto" on a folder with records: the config of config.toml and the
  summary of summary.json are kept (the new config on top), and steps go on after the last one.
- `id=` names the folder when `name=` does not (wandb resumes by id); `sweep_id=` is kept in meta.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nexus.compat import mode_of, skipped
from nexus.config import Config
from nexus.disabled import DisabledRun
from nexus.folder import NexusError, choose_run_dir, last_step, metrics_fd
from nexus.reporter import Run
from nexus_core import protocol as P
from nexus_core.config import ConfigError, read_toml

WANDB_IGNORED = frozenset(
    {
        "entity",
        "job_type",
        "id",
        "mode",
        "reinit",
        "settings",
        "save_code",
        "anonymous",
        "sync_tensorboard",
        "monitor_gym",
        "config_exclude_keys",
        "config_include_keys",
        "allow_val_change",
        "force",
        "magic",
        "tensorboard",
        "fork_from",
        "resume_from",
        "sweep_id",
    }
)
"""wandb.init keywords accepted (some read below), so `import nexus as wandb` runs unchanged scripts."""
RESUMING = (True, "allow", "must", "auto")
ROOT_ENV = "NEXUS_ROOT"
"""Set by `nexus run`: the runs folder a script's init() writes into when it names no root."""


def start(
    name: str | None = None,
    config: Any = None,
    dir: Any = None,
    root: Any = None,  # noqa: A002
    total_steps: int | None = None,
    resume: Any = None,
    run_dir: Any = None,
    model: str | None = None,
    project: str | None = None,
    tags: Any = None,
    notes: str | None = None,
    group: str | None = None,
    **wandb_kwargs: Any,
) -> Run | DisabledRun:
    import nexus

    unknown = set(wandb_kwargs) - WANDB_IGNORED
    if unknown:
        raise TypeError(f"nexus.init() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    settings = wandb_kwargs.get("settings")
    if name is None and settings is not None:
        name = getattr(settings, "run_name", None) or None
    config = _filtered(config, wandb_kwargs)
    if mode_of(wandb_kwargs.get("mode"), settings) == "disabled":
        return _publish(DisabledRun(config, name))
    if total_steps is not None and (isinstance(total_steps, bool) or int(total_steps) < 0):
        raise NexusError(f"total_steps must be a positive integer, got {total_steps!r}")
    reinit = wandb_kwargs.get("reinit", "default")
    live = nexus.run
    if live is not None and not live._ended:
        if reinit in (False, "return_previous"):
            return live
        if reinit != "create_new":
            live.finish()
    if name is None and wandb_kwargs.get("id"):
        name = str(wandb_kwargs["id"])
    if root is None:  # `nexus run --root` beats wandb's dir= (where W&B keeps its own files, not the runs)
        root = os.environ.get(ROOT_ENV) or dir
    path = choose_run_dir(name, root, run_dir, resume)
    resumed = resume in RESUMING and (path / P.METRICS_FILE).exists()
    begin = last_step(path) if resumed else None
    old_config, old_summary = _previous(path) if resumed else ({}, {})
    meta = {
        "project": project,
        "tags": list(tags) if tags else None,
        "notes": notes,
        "group": group,
        "entity": wandb_kwargs.get("entity"),
        "job_type": wandb_kwargs.get("job_type"),
        "sweep_id": wandb_kwargs.get("sweep_id"),
    }
    if meta["sweep_id"]:
        skipped("init(sweep_id=...)", "sweeps need W&B's server; the id is kept in the run's meta")
    new = Run(
        path,
        config={**old_config, **Config(config).as_dict()},
        total_steps=int(total_steps) if total_steps else None,
        start_step=1 if begin is None else begin + 1,
        resumed=resumed and begin is not None,
        model=model or "",
        meta=meta,
        pipe_fd=metrics_fd(),
        previous_summary=old_summary,
        resumable=resume in RESUMING,
    )  # it continues what it finds: with a checkpoint handler, parkable
    return _publish(new)


def _publish(new: Run | DisabledRun) -> Run | DisabledRun:
    import nexus

    nexus.run = new  # type: ignore[assignment]
    nexus.config = new.config
    nexus.summary = new.summary  # type: ignore[assignment]
    return new


def _filtered(config: Any, kwargs: dict[str, Any]) -> Any:
    """wandb's config_include_keys / config_exclude_keys applied."""
    include, exclude = kwargs.get("config_include_keys"), kwargs.get("config_exclude_keys")
    if not (include or exclude) or config is None:
        return config
    data = Config(config).as_dict()
    if include:
        data = {k: v for k, v in data.items() if k in set(include)}
    return {k: v for k, v in data.items() if k not in set(exclude or ())}


def _previous(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A resumed folder's config.toml and summary.json (either may be missing or damaged: then {})."""
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    if (path / P.CONFIG_FILE).exists():
        try:
            config = read_toml(path / P.CONFIG_FILE)
        except ConfigError as e:
            skipped("the resumed run's config.toml", str(e))
    try:
        got = P.read_json(path / "summary.json")
        summary = got if isinstance(got, dict) else {}
    except (OSError, ValueError):
        pass
    return config, summary
