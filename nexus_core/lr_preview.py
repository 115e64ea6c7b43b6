"""The LR a ramp would follow, computed in-process by the dashboard and by `lr-preview` alike.

A live run (or one with no checkpoint yet) is ramped by the `ramp` command from the step and LR it
is at NOW, so the preview starts from its last metric record (folded by the core's RunState from the
tail of metrics.msgpack). A stopped run restarts from a checkpoint (latest, or the one named), so the
preview starts from that checkpoint's meta.json.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_core.checkpoints import list_checkpoints, read_meta, resolve_checkpoint
from nexus_core.config import Config, load_toml
from nexus_core.errors import ConfigError, NexusError
from nexus_core.observed_preview import is_foreign, observed_preview
from nexus_core.records import RecordDecoder
from nexus_core.runfolder import read_status, status_live, tail_bytes
from nexus_core.schedule import Schedule, preview
from nexus_core.schema import CONFIG_FILE, METRICS_FILE
from nexus_core.state import RunState
from nexus_core.units import as_int

TAIL_BYTES = 1 << 18
"""How much of the metrics file's end the preview reads: many metric records, and O(1) at any length."""


@dataclass(frozen=True)
class LrPreview:
    start_step: int
    steps: list[int]
    lrs: list[float]
    note: str = ""
    """What the preview assumes, in words (runs Nexus did not write: nexus_core/observed_preview.py)."""


def run_config(run_dir: str | Path) -> Config:
    """The resolved config of a run folder; ConfigError when it is not one."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).exists():
        raise ConfigError(f"{path} is not a run folder (no {CONFIG_FILE}); check --run-dir")
    return load_toml(path / CONFIG_FILE)


def is_live(run_dir: Path) -> bool:
    return status_live(read_status(run_dir))


def live_position(run_dir: Path, cfg: Config) -> tuple[int, float, int, float]:
    """(step, LR, total steps, LR scale) of a run from the tail of its records: what a `ramp`
    command sent now would start from. The LR scale (a NaN rollback halves it) comes from the
    newest checkpoint when there is one, else 1."""
    data = tail_bytes(run_dir / METRICS_FILE, TAIL_BYTES)
    run = RunState()
    for record in RecordDecoder().feed(data) if data else ():
        run.apply(record)
    metric = run.metric
    if metric is None or metric.lr is None or not metric.lr > 0:
        raise ConfigError(
            f"run {run_dir.name} has no checkpoints and no training step yet: "
            "wait for its first step, then preview again"
        )
    # A live ramp that moved the total rewrites the status, not the hello: the status wins.
    status_total = (read_status(run_dir) or {}).get("total_steps")
    candidates = (status_total, run.hello.total_steps if run.hello else None, cfg.train.steps)
    total = next(n for n in map(as_int, candidates) if n is not None and n > 0)
    scale = 1.0
    done = list_checkpoints(run_dir)
    if done:
        with contextlib.suppress(NexusError, KeyError, TypeError, ValueError):
            scale = float(read_meta(done[-1]).get("lr_scale", 1.0))
    return metric.step, float(metric.lr), max(total, metric.step + 1), scale


def lr_preview(
    run_dir: str | Path,
    target_lr: float,
    ramp_steps: int,
    steps: int | None = None,
    ckpt: str | None = None,
    points: int = 200,
    hello: dict[str, Any] | None = None,
) -> LrPreview:
    """The LR schedule after a ramp to `target_lr` over `ramp_steps`, to `steps` (or the run's total).
    A run Nexus did not write is previewed from what it observed and published (`hello`: its newest
    hello, when the caller holds it). Raises a NexusError (one line) for anything a person can fix."""
    run_dir = Path(run_dir)
    if ckpt is None and is_foreign(run_dir):
        xs, ys, note = observed_preview(run_dir, target_lr, ramp_steps, steps, points, hello)
        return LrPreview(xs[0], xs, ys, note)
    cfg = run_config(run_dir)
    if not target_lr > 0:
        raise ConfigError(f"--lr must be positive, got {target_lr}")
    if ckpt is None and (is_live(run_dir) or not list_checkpoints(run_dir)):
        step, lr_last, total_now, scale = live_position(run_dir, cfg)
        sched = Schedule.from_config(cfg.schedule, total_now)
        # The last record's LR is the one step `step` used (multiplier(step - 1)); a ramp starts from
        # multiplier(step). Exact when the run follows its configured schedule; after an earlier ramp
        # (which only its checkpoint would tell) the last LR is the best start we have.
        start_mult = lr_last / (cfg.optim.lr * scale)
        if math.isclose(sched.multiplier(step - 1), start_mult, rel_tol=1e-6):
            start_mult = sched.multiplier(step)
    else:
        meta = read_meta(resolve_checkpoint(run_dir, ckpt))
        step = int(meta["step"])
        scale = float(meta.get("lr_scale", 1.0))
        sched = Schedule.from_dict(meta["schedule"])
        start_mult = sched.multiplier(step)
    total = steps or sched.total_steps
    peak = cfg.optim.lr * scale
    sched = sched.with_ramp(step, start_mult, target_lr / peak, ramp_steps, total)
    pts = preview(sched, step, total, max(2, points))
    return LrPreview(step, [s for s, _ in pts], [m * peak for _, m in pts])
