"""A process that died before it wrote a single record (a script that crashed before `nexus.init`,
`python` without torch) still leaves a run every view can see: its exit becomes the folder's one
`state` record and its status file, so `nexus runs`, the report and the next dashboard say
`crashed` with the last line it printed, as the dashboard that launched it did."""

from __future__ import annotations

import contextlib
from pathlib import Path

from nexus_core.protocol import CRASHED, METRICS_FILE, RecordWriter, write_status
from nexus_core.state import exit_text, last_line


def record_silent_exit(run_dir: Path, code: int | None, log_tail: str) -> bool:
    """Write the crash of a run whose process exited badly with no record at all; True if written.
    A run that wrote anything (its own failed state, a hello) speaks for itself and is left alone."""
    metrics = run_dir / METRICS_FILE
    if code in (0, None) or not run_dir.is_dir():
        return False
    with contextlib.suppress(OSError):
        if metrics.exists() and metrics.stat().st_size > 0:
            return False
    said = last_line(log_tail)
    reason = exit_text(code) + (f": {said}" if said else "")
    try:
        writer = RecordWriter(metrics)
        try:
            writer.write({"type": "state", "state": CRASHED, "step": 0, "reason": reason, "exit_code": code})
        finally:
            writer.close()
        write_status(run_dir, {"state": CRASHED, "step": 0, "reason": reason, "exit_code": code})
    except OSError:
        return False  # a full disk: the dashboard that saw it still says so
    return True
