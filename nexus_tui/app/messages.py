"""App-wide messages, named for what happened.

Service threads (the supervisor's pipe readers, the runs watcher, the telemetry sampler) never touch
widgets: they post one of these to the app, whose handlers run on the event loop. Widget-local
messages live on their widgets instead (e.g. `RunTable.RunSelected`).

The record and piece types are for type checkers only: the app imports this module before its first
frame, and the columnar path (numpy) is imported after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from nexus_tui.history.columnar.columns import Piece


class RunLaunched(Message):
    """The app started an engine for this run; its hello comes only after torch imports (seconds)."""

    def __init__(self, run_name: str, run_dir: Path) -> None:
        super().__init__()
        self.run_name = run_name
        self.run_dir = Path(run_dir)


class BatchReceived(Message):
    """Decoded records from one run in stream order (metric columns and record lists); `loading` is
    how far a large history read has got (0..1), or None for news."""

    def __init__(
        self, run_name: str, run_dir: Path, pieces: list[Piece], loading: float | None = None
    ) -> None:
        super().__init__()
        self.run_name = run_name
        self.run_dir = Path(run_dir)
        self.pieces = pieces
        self.loading = loading


class RunExited(Message):
    """An engine process the app launched has exited."""

    def __init__(self, run_name: str, exit_code: int | None, log_tail: str = "") -> None:
        super().__init__()
        self.run_name = run_name
        self.exit_code = exit_code
        self.log_tail = log_tail


class RunDiscovered(Message):
    """A run folder appeared (started elsewhere, or found on start-up)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)


class WarningRaised(Message):
    """A service met something the person should read (garbage in a stream, a dead socket...)."""

    def __init__(self, run_name: str | None, text: str) -> None:
        super().__init__()
        self.run_name = run_name
        self.text = text


class RunsAttached(Message):
    """The start-up scan replayed every run folder and attached these live runs (started elsewhere
    or left training by an earlier dashboard)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names


class CommandWaiting(Message):
    """A command sent to a run has not been read yet (the engine is busy between steps)."""

    def __init__(self, run_name: str, cmd: str) -> None:
        super().__init__()
        self.run_name = run_name
        self.cmd = cmd


class CommandFinished(Message):
    """A command sent to a run came back: `error` is '' when the engine took it."""

    def __init__(self, run_name: str, cmd: str, error: str = "") -> None:
        super().__init__()
        self.run_name = run_name
        self.cmd = cmd
        self.error = error
