"""Waiting on a condition, never on the clock: CI is a loaded 2-core box, so deadlines are generous and
a miss says what was awaited (and what the app last logged)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    timeout: float = 60.0,
    what: str = "condition",
    poll: float = 0.05,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> T:
    """Call check() until it returns something truthy and return that; AssertionError after timeout, or
    as soon as `proc` (the process whose work is awaited) has exited without it. The message quotes the
    end of `log` when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}{_file_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{_file_tail(log)}")
        time.sleep(poll)


def _file_tail(log: Path | None) -> str:
    if log is None:
        return ""
    try:
        return f"; log: {log.read_text(errors='replace')[-2000:]}"
    except OSError:
        return ""


async def pilot_wait_until(
    pilot: Any, check: Callable[[], T], timeout: float = 60.0, what: str = "condition", poll: float = 0.05
) -> T:
    """wait_until for a Textual app under Pilot: the app keeps running between checks (engines start in
    seconds on a loaded machine). A miss quotes the app's last log lines when it has a `#log`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{_log_tail(pilot.app)}")
        await pilot.pause(poll)


def _log_tail(app: Any) -> str:
    try:
        return f"; last log lines: {app.query_one('#log').lines_written[-8:]}"
    except Exception:  # noqa: BLE001 - no log pane on this screen: the message stands alone
        return ""
