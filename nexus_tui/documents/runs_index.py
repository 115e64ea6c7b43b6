"""`nexus runs`: one line per run folder, from its status file (cheap) or its metrics file (complete).

The status file says what a run *claimed* last; a run killed with SIGKILL or lost with its machine
still claims "running". So a live-looking state whose pid is gone (or now belongs to some other
program) is reported as "crashed", the same word the dashboard uses for it. A running run whose
process lives but which has written nothing for far longer than its usual pace is "stalled"
(`RunState.stalled` decides, from the tail of its metrics file).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_core.protocol import (
    CRASHED,
    LIVE_STATES,
    METRICS_FILE,
    RUNNING,
    STATES,
    STATUS_FILE,
    clean_text,
    pid_alive,
    read_records,
    read_status,
    tail_bytes,
)
from nexus_core.records import RecordDecoder
from nexus_core.schema import STALLED
from nexus_core.state import RunState, decided_state
from nexus_core.units import as_int, as_num


@dataclass
class RunSummary:
    """What `nexus runs` and the dashboard's run picker show about one run folder."""

    name: str
    run_dir: Path
    state: str = "unknown"
    step: int = 0
    total_steps: int = 0
    best_val_loss: float | None = None
    device: str = ""
    pid: int | None = None
    model: str = ""
    updated: float | None = None
    """Unix time of the last status write or record."""
    note: str = ""
    """Why the state was overridden, or what could not be read."""


def _from_status(s: RunSummary, status: dict[str, Any]) -> None:
    """The status file is JSON the engine replaces atomically, but any program could have written it:
    every field is checked here, the one reader of it outside the engine."""
    state = status.get("state")
    if isinstance(state, str) and state in STATES:
        reason = status.get("reason")
        s.state = decided_state(state, reason if isinstance(reason, str) else "")
    s.step = as_int(status.get("step")) or s.step
    s.total_steps = as_int(status.get("total_steps")) or s.total_steps
    s.best_val_loss = as_num(status.get("best_val_loss"))
    s.device = status["device"] if isinstance(status.get("device"), str) else s.device
    s.model = status["model"] if isinstance(status.get("model"), str) else s.model
    s.pid = as_int(status.get("pid"))
    s.updated = as_num(status.get("updated"))


def _fold_file(path: Path) -> RunState | None:
    """The file's records through the core's reducer (None when it holds none). Raises OSError."""
    result = read_records(path)
    run = RunState()
    for r in result.records:
        run.apply(r)
    return run if result.records else None


def _from_metrics(s: RunSummary, path: Path, fold: Callable[[], RunState | None] | None) -> None:
    """Fold the records through the core's reducer, the same one the dashboard uses."""
    try:
        run = fold() if fold is not None else _fold_file(path)
    except OSError as e:
        s.note = f"cannot read {METRICS_FILE}: {e.strerror}"
        return
    if run is None:
        return
    s.state, s.step, s.pid = run.state, run.step, run.pid
    s.total_steps = run.total_steps or s.total_steps
    s.best_val_loss = run.best_val_loss
    s.device, s.model = run.device or s.device, run.model or s.model
    s.updated = run.updated or s.updated


STALL_TAIL_BYTES = 256 << 10
"""How much of a live run's metrics file `nexus runs` reads to learn its pace and last record."""


def _stalled(s: RunSummary, path: Path, now: float, floor_s: float | None) -> bool:
    """The core's stall rule over the last records of the file (a torn first record is skipped)."""
    data = tail_bytes(path, STALL_TAIL_BYTES)
    run = RunState(state=RUNNING)
    for rec in RecordDecoder().feed(data or b""):
        run.apply(rec)
    run.state = RUNNING
    if s.updated is not None and (run.updated is None or s.updated > run.updated):
        run.updated = s.updated  # the status file was rewritten later than the last record
    return run.stalled(now, floor_s)


def summarize_run(
    run_dir: Path,
    now: float | None = None,
    stall_floor_s: float | None = None,
    fold: Callable[[], RunState | None] | None = None,
) -> RunSummary:
    """One run folder's summary; never raises for a damaged folder (says so in `note`). `fold`: the
    metrics file's records through RunState (None: it holds none), from a caller that has them
    already (`nexus report` reads the file as columns); by default the file is read here."""
    s = RunSummary(name=run_dir.name, run_dir=run_dir)
    status = read_status(run_dir)
    metrics = run_dir / METRICS_FILE
    if status is not None:
        _from_status(s, status)
    if metrics.exists() and (status is None or not s.model or not s.total_steps or s.best_val_loss is None):
        keep_state = (s.state, s.pid, s.updated, s.step) if status is not None else None
        _from_metrics(s, metrics, fold)
        if keep_state is not None:  # the status file is newer than the last record about these
            s.state, s.pid, s.updated = keep_state[:3]
            s.step = max(s.step, keep_state[3])
    if s.state in LIVE_STATES and not pid_alive(s.pid, s.updated):
        s.note = f"was {s.state}, but its process (pid {s.pid}) is gone"
        s.state = CRASHED
    elif s.state == RUNNING and _stalled(s, metrics, time.time() if now is None else now, stall_floor_s):
        s.note = f"running (pid {s.pid} lives), but it has written nothing since {_ago(s.updated, now or time.time())}"
        s.state = STALLED
    return s


def scan_runs(root: str | Path) -> list[RunSummary]:
    """Every run folder under `root` (a folder with a status or metrics file), most recent first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if d.is_dir() and ((d / STATUS_FILE).exists() or (d / METRICS_FILE).exists()):
            out.append(summarize_run(d))
    out.sort(key=lambda s: (-(s.updated or 0.0), s.name))
    return out


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    d = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= size:
            return f"{d / size:.0f}{unit} ago"
    return f"{d:.0f}s ago"


def format_runs_table(summaries: list[RunSummary], now: float | None = None) -> str:
    """Aligned columns for a terminal; a friendly line when there is nothing to list. Every cell is
    cleaned of escape sequences and control characters: a run folder's name and fields are untrusted."""
    if not summaries:
        return "no runs yet: start one with `nexus demo`, or `nexus train --preset tiny --run-dir runs/first`"
    now = time.time() if now is None else now
    header = ("NAME", "STATE", "STEP", "BEST VAL", "DEVICE", "PID", "MODEL", "UPDATED")
    rows: list[tuple[str, ...]] = [header]
    for s in summaries:
        step = f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)
        best = f"{s.best_val_loss:.4f}" if s.best_val_loss is not None else "-"
        cells = (
            s.name,
            s.state,
            step,
            best,
            s.device or "-",
            str(s.pid) if s.pid else "-",
            s.model or "-",
            _ago(s.updated, now),
        )
        rows.append(tuple(clean_text(c, limit=80) for c in cells))  # folder names and fields are untrusted
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {2, 3, 5}
    lines = []
    for r in rows:
        padded = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    notes = [f"  {clean_text(s.name, limit=80)}: {clean_text(s.note)}" for s in summaries if s.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))
