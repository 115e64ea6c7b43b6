"""Following runs this dashboard did not launch (a terminal, a previous dashboard): `Supervisor`'s
attach side, kept apart so supervisor.py stays about starting and steering.

An attached run's history is read from its metrics file once; the runs watcher follows the file from
then on, and one poller thread notices within `POLL_S` when its pid dies (there is no pipe to end).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_core.protocol import LIVE_STATES, METRICS_FILE, ReadResult, read_records, read_status
from nexus_core.runfolder import pid_alive
from nexus_tui.live.engine_io import exit_code_of
from nexus_tui.live.spawn import ManagedRun

if TYPE_CHECKING:
    from nexus_tui.history.columnar.columns import Piece

POLL_S = 1.0
"""How often attached runs' pids are checked."""
HISTORY_CHUNK = 20_000
"""Records per on_batch call when replaying a file, so the UI thread gets breathing room."""


class Attaching:
    """`attach`, `attach_all` and the poller of attached runs, mixed into `Supervisor`.

    What it uses of the Supervisor is declared here (built in `Supervisor.__init__`), so this module
    never imports supervisor.py: the mixin sits below the class that mixes it in, not beside it."""

    root: Path
    _runs: dict[str, ManagedRun]
    _lock: threading.RLock
    _detach: threading.Event
    _poller: threading.Thread | None

    if TYPE_CHECKING:

        def _resolve(self, name_or_dir: str | Path) -> Path: ...

        def _deliver_pieces(self, run: ManagedRun, pieces: list[Piece]) -> None: ...

        def _warn(self, name: str, text: str) -> None: ...

        def _finish(self, run: ManagedRun, code: int | None) -> None: ...

        def live_runs(self) -> list[str]: ...

    def attach(self, run_dir: str | Path, feed_history: bool = True) -> bool:
        """Follow a run this dashboard did not launch. Its history (if `feed_history`) goes to
        on_batch now; new records come from the watcher. Returns whether its process is alive;
        a dead run that still claims to be running is reported through on_exit at once."""
        run_dir = self._resolve(run_dir)
        name = run_dir.name
        with self._lock:
            known = self._runs.get(name)
            if known is not None and not known.exited:
                return True
        status = read_status(run_dir) or {}
        if feed_history and (run_dir / METRICS_FILE).exists():
            try:
                result = read_records(run_dir / METRICS_FILE)
            except OSError as e:  # a FIFO, a folder or a device planted as the metrics file
                self._warn(name, f"cannot read {METRICS_FILE}: {e.strerror}")
                result = ReadResult([], 0, [], 0)
            run = ManagedRun(name, run_dir, "", None)
            for i in range(0, len(result.records), HISTORY_CHUNK):
                self._deliver_pieces(run, [result.records[i : i + HISTORY_CHUNK]])
            for w in result.warnings:
                self._warn(name, f"{METRICS_FILE}: {w.text}")
        pid = status.get("pid") if isinstance(status.get("pid"), int) else None
        device = status["device"] if isinstance(status.get("device"), str) else "cpu"
        updated = status.get("updated") if isinstance(status.get("updated"), (int, float)) else None
        run = ManagedRun(name, run_dir, device, pid, since=updated)
        if status.get("state") in LIVE_STATES and pid_alive(pid, updated):
            with self._lock:
                self._runs[name] = run
                if self._poller is None:
                    poller = threading.Thread(target=self._poll_attached, name="nexus-poll", daemon=True)
                    self._poller = poller
                    poller.start()
            return True
        if status.get("state") in LIVE_STATES:
            self._finish(run, exit_code_of(run_dir))
        return False

    def attach_all(self, feed_history: bool = False) -> list[str]:
        """Attach every run under root whose engine is still alive; returns their names (not the
        runs this supervisor already follows, e.g. one launched while the dashboard was starting)."""
        if not self.root.is_dir():
            return []
        names = []
        for d in sorted(self.root.iterdir()):
            try:
                if d.is_dir() and d.name not in self.live_runs() and self.attach(d, feed_history):
                    names.append(d.name)
            except Exception as e:  # noqa: BLE001 - one damaged folder must not keep the others unattached
                self._warn(d.name, f"cannot follow this run: {e}")
        return names

    def _poll_attached(self) -> None:
        while not self._detach.wait(POLL_S):
            with self._lock:
                attached = [r for r in self._runs.values() if r.proc is None and not r.exited]
            for run in attached:
                if not pid_alive(run.pid, run.since):
                    time.sleep(0.05)  # let its last state record reach the file
                    self._finish(run, exit_code_of(run.run_dir))
