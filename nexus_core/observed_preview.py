"""The ramp preview of a run Nexus did not write (a script with `import nexus`, an HF Trainer, a
Lightning fit, a writer in another language): it has no engine config to rebuild its schedule from.

What is known: the LR its steps used (the `lr` of its metric records) and, when its writer publishes
it, the schedule's future (the hello's `lr_schedule`, docs/PROTOCOL.md; the reporter samples its LR
scheduler on a copy). The preview draws the observed LR up to now, the ramp from the last observed LR
to the target, then the published schedule scaled to start at the target (what a ramp does, see
nexus/lr.py); where the future is unknown it assumes the LR stays at the target, and says so.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from pathlib import Path
from typing import Any

from nexus_core.errors import ConfigError
from nexus_core.records import RecordDecoder
from nexus_core.runfolder import read_status, tail_bytes
from nexus_core.safefile import open_regular
from nexus_core.schema import METRICS_FILE

TAIL_BYTES = 1 << 18
HEAD_BYTES = 1 << 22
"""How much of the file's start is read for a hello with the schedule (it comes in the first steps)."""
OBSERVED_POINTS = 100


def is_foreign(run_dir: Path) -> bool:
    """Whether the run was written by something other than the engine (its status or hello says a
    source, or it has no engine config)."""
    status = read_status(run_dir) or {}
    if status.get("source"):
        return True
    from nexus_core.config import load_toml
    from nexus_core.errors import NexusError

    try:
        load_toml(run_dir / "config.toml")
    except (NexusError, OSError, ValueError):
        return True
    return False


def _records(data: bytes | None) -> list[Any]:
    return list(RecordDecoder().feed(data)) if data else []


def _head(path: Path, size: int) -> bytes | None:
    try:
        with open_regular(path) as f:
            return f.read(size)
    except OSError:
        return None


def published_schedule(run_dir: Path, hello: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The newest `lr_schedule` the run published: from `hello` (the dashboard's), else its records."""
    if hello and isinstance(hello.get("lr_schedule"), dict):
        schedule: dict[str, Any] = hello["lr_schedule"]
        return schedule
    found = None
    path = run_dir / METRICS_FILE
    for data in (_head(path, HEAD_BYTES), tail_bytes(path, TAIL_BYTES)):
        for rec in _records(data):
            if rec.type == "hello" and isinstance(getattr(rec, "lr_schedule", None), dict):
                found = rec.lr_schedule
    return found


def _valid(schedule: dict[str, Any] | None) -> tuple[list[int], list[float], str]:
    """(steps, lrs, source) of a published schedule; empty lists when it says nothing usable."""
    if not schedule:
        return [], [], ""
    source = str(schedule.get("source", ""))[:200]
    steps, lrs = schedule.get("step"), schedule.get("lr")
    if not isinstance(steps, list) or not isinstance(lrs, list) or len(steps) != len(lrs) or len(steps) < 2:
        return [], [], source
    pairs = [
        (int(s), float(v))
        for s, v in zip(steps, lrs, strict=True)
        if isinstance(s, int)
        and not isinstance(s, bool)
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and v >= 0
    ]
    pairs.sort()
    if len(pairs) < 2:
        return [], [], source or "unknown: its published schedule holds no usable point"
    return [p[0] for p in pairs], [p[1] for p in pairs], source


def _at(steps: list[int], lrs: list[float], step: float) -> float:
    """The schedule's LR at `step` (linear between its points, held past its ends)."""
    i = bisect.bisect_left(steps, step)
    if i <= 0:
        return lrs[0]
    if i >= len(steps):
        return lrs[-1]
    s0, s1 = steps[i - 1], steps[i]
    return lrs[i - 1] + (lrs[i] - lrs[i - 1]) * (step - s0) / (s1 - s0) if s1 > s0 else lrs[i]


def observed_preview(
    run_dir: str | Path,
    target_lr: float,
    ramp_steps: int,
    steps: int | None = None,
    points: int = 200,
    hello: dict[str, Any] | None = None,
) -> tuple[list[int], list[float], str]:
    """(steps, LRs, what it assumes) of a ramp sent now. Raises ConfigError (one line) when the run has
    no step with an LR yet."""
    run_dir = Path(run_dir)
    if not target_lr > 0:
        raise ConfigError(f"the target LR must be positive, got {target_lr}")
    tail = _records(tail_bytes(run_dir / METRICS_FILE, TAIL_BYTES))
    seen = [
        (r.step, float(r.lr))
        for r in tail
        if r.type == "metric" and isinstance(getattr(r, "lr", None), (int, float))
    ]
    if not seen:
        raise ConfigError(
            f"run {run_dir.name} has logged no step with an lr yet: wait for its first step (a "
            "script shows its LR with run.watch(optimizer) or by logging 'lr')"
        )
    now, lr_now = seen[-1]
    status_total = (read_status(run_dir) or {}).get("total_steps")
    total = steps or (
        status_total if isinstance(status_total, int) and not isinstance(status_total, bool) else 0
    )
    sched_steps, sched_lrs, source = _valid(published_schedule(run_dir, hello))
    end = max(total, now + ramp_steps + 1)
    every = max(1, len(seen) // OBSERVED_POINTS)
    xs = [s for s, _ in seen[::every]]
    ys = [v for _, v in seen[::every]]
    span = end - now
    stride = max(1, span // max(points, 2))
    ramp_end = now + ramp_steps
    factor = None
    if sched_steps:
        with contextlib.suppress(ZeroDivisionError):
            factor = target_lr / _at(sched_steps, sched_lrs, ramp_end)
        if factor is None:
            source = f"unknown: the {source} schedule is 0 where the ramp ends, so it cannot be scaled"
    for s in list(range(now + stride, end, stride)) + [end, ramp_end]:
        if s <= now:
            continue
        if s <= ramp_end and ramp_steps > 0:
            lr = lr_now + (target_lr - lr_now) * (s - now) / ramp_steps
        elif factor is not None:
            lr = _at(sched_steps, sched_lrs, s) * factor
        else:
            lr = target_lr
        xs.append(s)
        ys.append(lr)
    pairs = sorted(set(zip(xs, ys, strict=True)))
    if factor is not None:
        note = f"after the ramp: the run's {source} schedule, scaled to start at the target"
        if sched_steps[-1] < end:
            note += f" (published to step {sched_steps[-1]}; held after it)"
    else:
        why = source.removeprefix("unknown: ") if source else "the run publishes no LR schedule"
        note = f"assumes the LR stays at the target after the ramp ({why})"
    if not total:
        note += "; the run's total steps are unknown"
    return [p[0] for p in pairs], [p[1] for p in pairs], note
