"""wandb's module-level calls (`wandb.log`, `wandb.save`, `wandb.define_metric`...): each acts on the
current run (`nexus.run`). Those that need a run and find none say so in one NexusError, as wandb
raises its own Error; those that mean nothing without a run are accepted."""

from __future__ import annotations

import enum
from typing import Any

from nexus.compat import skipped
from nexus.folder import NexusError


class AlertLevel(enum.Enum):
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def _current(what: str) -> Any:
    import nexus

    if nexus.run is None:
        raise NexusError(f"nexus.{what}() needs a run: call nexus.init() first")
    return nexus.run


def log(
    data: dict[str, Any], step: int | None = None, commit: bool | None = None, sync: bool | None = None
) -> None:
    """`nexus.run.log(...)`."""
    _current("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run, if any (wandb.finish)."""
    import nexus

    if nexus.run is not None:
        nexus.run.finish(exit_code=exit_code)


def alert(title: str, text: str = "", level: Any = AlertLevel.INFO, wait_duration: Any = None) -> None:
    _current("alert").alert(title, text, level)


def watch(
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> None:
    """`nexus.run.watch(model_or_optimizer, log=..., log_freq=...)`."""
    _current("watch").watch(models, criterion, log, log_freq, idx, log_graph)


def unwatch(models: Any = None) -> None:
    import nexus

    if nexus.run is not None:
        nexus.run.unwatch(models)


def define_metric(
    name: str,
    step_metric: Any = None,
    step_sync: bool | None = None,
    hidden: bool | None = None,
    summary: str | None = None,
    goal: str | None = None,
    overwrite: bool | None = None,
) -> Any:
    return _current("define_metric").define_metric(
        name, step_metric, step_sync, hidden, summary, goal, overwrite
    )


def save(glob_str: Any = None, base_path: str | None = None, policy: str = "live") -> Any:
    import nexus

    if nexus.run is None:
        skipped("wandb.save() before init()", "there is no run folder to keep the files in yet")
        return []
    return nexus.run.save(glob_str, base_path, policy)


def log_artifact(
    artifact_or_path: Any,
    name: str | None = None,
    type: str | None = None,  # noqa: A002
    aliases: list[str] | None = None,
    tags: list[str] | None = None,
) -> Any:
    return _current("log_artifact").log_artifact(artifact_or_path, name, type, aliases, tags)


def use_artifact(
    artifact_or_name: Any,
    type: str | None = None,
    aliases: list[str] | None = None,  # noqa: A002
    use_as: str | None = None,
) -> Any:
    return _current("use_artifact").use_artifact(artifact_or_name, type, aliases, use_as)


def log_model(path: Any, name: str | None = None, aliases: list[str] | None = None) -> Any:
    return _current("log_model").log_model(path, name, aliases)


def use_model(name: str) -> Any:
    return _current("use_model").use_model(name)


def link_model(*args: Any, **kwargs: Any) -> None:
    skipped("wandb.link_model()", "the model registry needs W&B's server")


def log_code(root: Any = ".", name: str | None = None, include_fn: Any = None, exclude_fn: Any = None) -> Any:
    return _current("log_code").log_code(root, name, include_fn, exclude_fn)


def mark_preempting() -> None:
    import nexus

    if nexus.run is not None:
        nexus.run.mark_preempting()


def restore(name: str, run_path: str | None = None, replace: bool = False, root: str | None = None) -> Any:
    return _current("restore").restore(name, run_path, replace, root)
