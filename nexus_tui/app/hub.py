"""The dashboard's services bundled for the app: store, supervisor, runs watcher, telemetry.

Kept out of app.py so the app stays compose/bindings/routing. Every service callback arrives on a
thread; here each becomes a message posted to the app (`post_message` is thread-safe), and nothing
else: the app's handlers run on the event loop and are the only code that touches widgets.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from textual.app import App

from nexus_tui.app import messages as msg
from nexus_tui.history.columnar.columns import Piece
from nexus_tui.history.store import MetricStore
from nexus_tui.live.prebuild import Prebuild
from nexus_tui.live.supervisor import Supervisor
from nexus_tui.live.watcher import RunsWatcher
from nexus_tui.telemetry.sampler import Telemetry
from nexus_tui.telemetry.view import GpuView, TelemetryView
from nexus_tui.themes import palette_for


class Services:
    """Owns the service objects for one app; `start()` on mount, `shutdown()` on quit."""

    def __init__(self, root: Path, app: App, prebuild: Prebuild | None = None) -> None:
        self.root = Path(root)
        self.app = app
        self.store = MetricStore()
        self.supervisor = Supervisor(
            self.root,
            on_batch=self._on_batch,
            on_exit=self._on_exit,
            on_warning=self._on_warning,
        )
        self.watcher = RunsWatcher(
            self.root,
            on_batch=self._on_batch,
            on_new_run=self._on_new_run,
            on_warning=self._on_warning,
            on_run_ready=self._on_run_ready,
            prebuild=prebuild,
            piped=self.supervisor.piping,
        )
        self.telemetry = Telemetry(defer=True)  # NVML and the first reading wait for start()
        self._tracked: dict[str, int] = {}
        self._scanned = threading.Event()
        """Set once the start-up scan has replayed every run's history and attached the live ones."""
        self._ready_early: set[Path] = set()
        """Runs whose status appeared during the start-up scan: attached when it is done."""
        self._ready_lock = threading.Lock()
        self._shut = False

    # -- thread callbacks: post, never touch widgets ---------------------------------------------

    def _on_batch(
        self, run_name: str, run_dir: Path, pieces: list[Piece], loading: float | None = None
    ) -> None:
        self.app.post_message(msg.BatchReceived(run_name, Path(run_dir), pieces, loading))

    def _on_exit(self, run_name: str, exit_code: int | None, log_tail: str = "") -> None:
        self.app.post_message(msg.RunExited(run_name, exit_code, log_tail))

    def _on_warning(self, run_name: str | None, text: str) -> None:
        self.app.post_message(msg.WarningRaised(run_name, text))

    def _on_new_run(self, run_dir: Path) -> None:
        self.app.post_message(msg.RunDiscovered(Path(run_dir)))

    def _on_run_ready(self, run_dir: Path) -> None:
        """A run found by the watcher now has a status (or metrics) file: follow its process, so a
        run started from a terminal gets commands and exit detection (killed: crashed), even when
        its folder was found before its engine wrote anything. On a watcher thread: attaching (status
        read, pid check) never blocks the UI."""
        with self._ready_lock:
            if not self._scanned.is_set():  # the start-up scan attaches after replaying the history
                self._ready_early.add(Path(run_dir))
                return
        self._attach(Path(run_dir))

    def _attach(self, run_dir: Path) -> bool:
        try:
            return self.supervisor.attach(run_dir, feed_history=False)
        except Exception as e:  # noqa: BLE001 - a run we cannot attach is still shown from its file
            self._on_warning(run_dir.name, f"cannot follow its process: {e}")
            return False

    # -- used by the app -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the watcher and the telemetry sampler; `reattach()` follows, on a worker thread."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.watcher.start()
        self.telemetry.start()

    def reattach(self) -> list[str]:
        """Replay every run's history, then attach the runs whose engine still lives (left training
        by a dashboard that quit or was killed), so they get exit detection and every command.
        Blocking (histories can be large): the app runs it on a worker thread. Attaching after the
        replay matters: a run that died while nobody watched is reported crashed after its last
        "running" state record, not before it (which the replay would then overwrite)."""
        try:
            self.watcher.scan_existing()
            attached = self.supervisor.attach_all(feed_history=False)
        finally:
            with self._ready_lock:
                self._scanned.set()
                early, self._ready_early = self._ready_early, set()
        attached += [d.name for d in sorted(early) if d.name not in attached and self._attach(d)]
        self.app.post_message(msg.RunsAttached(attached))
        return attached

    def devices(self) -> list[tuple[str, str]]:
        """(value, label) choices for the launch form: cpu first, then each GPU (not simulated ones:
        `nexus demo --simulate-gpus` shows GPUs no run can use, so its runs stay on the CPU)."""
        from nexus_tui.telemetry.simulate import simulated

        listed = self.telemetry.list_devices()
        return [d for d in listed if not d[0].startswith("cuda")] if simulated() else listed

    def live_runs(self) -> list[str]:
        """Runs this app launched that are still running (quitting asks what to do with them)."""
        return list(self.supervisor.live_runs())

    def track(self, name: str) -> None:
        """Follow a run's process in telemetry once its hello told us the pid."""
        run = self.store.get(name)
        if run is not None and run.pid and self._tracked.get(name) != run.pid and run.live:
            self._tracked[name] = run.pid
            self.telemetry.track(name, run.pid)

    def telemetry_view(self, theme: str) -> TelemetryView:
        """The telemetry snapshot as plain numbers for the pane, runs in their colours."""
        snap = self.telemetry.snapshot()
        palette = palette_for(theme)
        gpus = []
        for g in snap.gpus:
            owners = {pid: name for name, p in snap.processes.items() for pid in p.pids or (p.pid,)}
            gpus.append(
                GpuView(
                    index=g.index,
                    name=g.name,
                    util=g.util,
                    mem_used=g.mem_used,
                    mem_total=g.mem_total,
                    temp=g.temp_c,
                    power=g.power_w,
                    power_limit=g.power_limit_w,
                    sm_clock=g.clock_sm_mhz,
                    mem_clock=g.clock_mem_mhz,
                    processes=[(pid, owners.get(pid, ""), mem) for pid, mem in g.processes.items()],
                    util_history=self.telemetry.history_of(f"gpu{g.index}.util"),
                    mem_history=self.telemetry.history_of(f"gpu{g.index}.mem"),
                )
            )
        runs = []
        for name, p in snap.processes.items():
            run = self.store.get(name)
            if p.alive:
                runs.append((name, palette.hex(run.color) if run else "", p.cpu_percent, p.rss))
        return TelemetryView(
            gpus=gpus,
            gpu_error=snap.gpu_error,
            cpu=snap.host.cpu_percent,
            ram_used=snap.host.ram_used,
            ram_total=snap.host.ram_total,
            cpu_history=self.telemetry.history_of("host.cpu"),
            ram_history=self.telemetry.history_of("host.ram"),
            runs=runs,
        )

    def shutdown(self, stop_runs: bool) -> None:
        """Stop the threads; stop the runs too only when asked (by default they keep training).
        Once: `q` shuts down before the app exits, and the app's unmount then finds it done."""
        if self._shut:
            return
        self._shut = True
        with contextlib.suppress(Exception):
            self.supervisor.shutdown(stop_runs=stop_runs)
        with contextlib.suppress(Exception):
            self.watcher.stop()
        with contextlib.suppress(Exception):
            self.telemetry.stop()
