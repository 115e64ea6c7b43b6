"""`wandb.init(mode="disabled")` (or WANDB_MODE=disabled): a run that writes nothing and takes every call.

A script switched off this way must still run to its end: `run.log`, `run.config.lr`, `run.summary[...]`,
`run.watch`, `run.log_artifact`... all work and leave no folder, no thread, no socket behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from nexus.config import Config
from nexus.reporter import FINISHED_HOOKS


class DisabledRun:
    """Shaped like Run; every method a no-op, config and summary plain dicts that work."""

    disabled = True
    offline = True
    should_stop = False
    paused = False
    resumed = False
    total_steps = None

    def __init__(self, config: Any = None, name: str | None = None) -> None:
        self.config = Config(config)
        self.summary: dict[str, Any] = {}
        self.name = self.id = name or "dummy"
        self.dir = Path(".")
        self.project, self.entity, self.group, self.job_type, self.notes = "", "", "", "", ""
        self.tags: tuple[str, ...] = ()
        self.url: str | None = None
        self.path = self.sweep_id = None
        self.step = 0
        self._ended = False

    def log(self, data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        self.step = (int(step) if step is not None else self.step) + (0 if commit is False else 1)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        self._ended = True
        for hook in FINISHED_HOOKS:  # nexus.run is None again, as after a real run's finish()
            hook(self)

    def commands(self) -> Any:
        return iter(())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _noop

    def __enter__(self) -> DisabledRun:
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        self.finish()
        return False

    def __bool__(self) -> bool:
        return True


def _noop(*args: Any, **kwargs: Any) -> None:
    return None
