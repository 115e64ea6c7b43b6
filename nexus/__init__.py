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

This module only re-exports: the run (reporter.py), how one starts (starting.py), wandb's module-level
calls (session.py), data types (media.py, plot.py), files (artifacts.py), what means nothing offline
(compat.py) and the reading side (api.py).
"""

from __future__ import annotations

from typing import Any

from nexus import plot
from nexus.api import Api
from nexus.artifacts import Artifact
from nexus.compat import (
    Settings,
    agent,
    login,
    logout,
    require,
    setup,
    sweep,
    teardown,
    termerror,
    termlog,
    termwarn,
)
from nexus.config import Config, Summary
from nexus.folder import NexusError
from nexus.media import Audio, Histogram, Html, Image, Molecule, Object3D, Plotly, Table, Video, WBValue
from nexus.reporter import FINISHED_HOOKS, Run
from nexus.session import (
    AlertLevel,
    alert,
    define_metric,
    finish,
    link_model,
    log,
    log_artifact,
    log_code,
    log_model,
    mark_preempting,
    restore,
    save,
    unwatch,
    use_artifact,
    use_model,
    watch,
)
from nexus.starting import WANDB_IGNORED, start
from nexus.values import WELL_KNOWN

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "Audio",
    "Config",
    "Histogram",
    "Html",
    "Image",
    "Molecule",
    "NexusError",
    "Object3D",
    "Plotly",
    "Run",
    "Settings",
    "Summary",
    "Table",
    "Video",
    "WANDB_IGNORED",
    "WBValue",
    "WELL_KNOWN",
    "agent",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "link_model",
    "log",
    "log_artifact",
    "log_code",
    "log_model",
    "login",
    "logout",
    "mark_preempting",
    "plot",
    "require",
    "restore",
    "run",
    "save",
    "setup",
    "summary",
    "sweep",
    "teardown",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "use_model",
    "watch",
]

__version__ = "0.1.0"

run: Run | None = None
"""The run of the last init() until it finishes (wandb.run)."""
config: Config | None = None
summary: Summary | None = None


def _forget(finished: object) -> None:
    """`nexus.run` is None once that run finishes (wandb.run after run.finish())."""
    global run
    if run is finished:
        run = None


FINISHED_HOOKS.append(_forget)


def init(name: str | None = None, config: Any = None, **kwargs: Any) -> Run:
    """Start reporting; returns the Run (also `nexus.run`). See nexus/starting.py for the keywords:
    the folder is `run_dir`, else $NEXUS_RUN_DIR, else (`root` or `dir`, default ./runs) / (`name`,
    default <script>-<n>); a folder that holds a run is continued only with resume=True/"allow"/"must"."""
    return start(name, config, **kwargs)  # type: ignore[return-value]
