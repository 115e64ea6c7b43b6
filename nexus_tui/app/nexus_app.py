"""The Nexus dashboard app: compose, key bindings and routing, nothing else.

Services (store, supervisor, watcher, telemetry) do the work without a screen; widgets draw. Service
callbacks arrive on threads, so they only post messages (`messages.py`); the handlers here fold them
into the store and mark the view dirty. A timer redraws dirty charts and the table a few times a
second inside `batch_update()`: records can arrive thousands a second, a person reads a few frames.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, TabbedContent, TabPane

from nexus_core.state import Exited, Launched
from nexus_core.text import clean_text
from nexus_tui.app import messages as msg
from nexus_tui.app.checkpoint_actions import CheckpointActions
from nexus_tui.app.job_actions import JobActions
from nexus_tui.app.run_actions import RunActions
from nexus_tui.app.view_actions import ViewActions
from nexus_tui.history.changes import Changes
from nexus_tui.settings import config_dir, load_settings, save_settings
from nexus_tui.themes import palette_for, register_themes
from nexus_tui.widgets.alert_bar import AlertBar
from nexus_tui.widgets.charts_panel import ChartsPanel, is_starting
from nexus_tui.widgets.log_pane import LogPane
from nexus_tui.widgets.media_pane import MediaPane
from nexus_tui.widgets.run_table import RunTable
from nexus_tui.widgets.samples_pane import SamplesPane
from nexus_tui.widgets.telemetry_pane import TelemetryPane

if TYPE_CHECKING:
    from nexus_tui.app.hub import Services
    from nexus_tui.history.store import MetricStore
    from nexus_tui.live.prebuild import Prebuild

NARROW = 120
REDRAW_S = 0.25
LIVE_SLACK_S = 5.0
"""An alert stamped up to this long before the app started still counts as news (clock skew, a
record that was on its way while the dashboard was starting)."""


class NexusApp(JobActions, RunActions, CheckpointActions, ViewActions, App[None]):
    """Watch and steer training runs."""

    CSS_PATH = "app.tcss"
    TITLE = "Nexus"
    # The footer shows these in this order and cuts what does not fit: the essentials come first, so
    # they survive 80 columns (? lists every key, with why one does not work on the selected run).
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("n", "new_run", "New"),
        Binding("p", "pause", "Pause"),
        Binding("r", "ramp", "Ramp"),
        Binding("s", "stop", "Stop"),
        Binding("q", "quit", "Quit"),
        Binding("m", "compare", "Compare"),
        Binding("c", "checkpoint", "Ckpt"),
        Binding("e", "eval_now", "Eval"),
        Binding("g", "generate", "Generate"),
        Binding("R", "report", "Report"),
        Binding("t", "cycle_theme", "Theme"),
        Binding("T", "show_tab('tab-telemetry')", "Telemetry tab", show=False),
        Binding("S", "show_tab('tab-samples')", "Samples tab", show=False),
        Binding("M", "show_tab('tab-media')", "Media tab", show=False),
        Binding("L", "show_tab('tab-log')", "Log tab", show=False),
        Binding("a", "dismiss_alerts", "Dismiss alert", show=False),
        Binding("J", "queue", "Queue", show=False),
        Binding("P", "park", "Park/unpark", show=False),
        Binding("left_square_bracket", "ema(-0.1)", "EMA-", show=False),
        Binding("right_square_bracket", "ema(0.1)", "EMA+", show=False),
        Binding("x", "cycle_x", "x axis", show=False),
        Binding("l", "toggle_log", "Log scale", show=False),
        Binding("w", "cycle_window", "Window", show=False),
        Binding("v", "cycle_chart", "Next chart", show=False),
        Binding("slash", "filter_charts", "Filter charts", show=False),
        Binding("f", "choose_charts", "Choose charts", show=False),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", show=False),
        Binding("minus", "zoom(2.0)", "Zoom out", show=False),
        Binding("less_than_sign", "pan(-0.25)", "Pan left", show=False),
        Binding("greater_than_sign", "pan(0.25)", "Pan right", show=False),
        Binding("0", "reset_zoom", "Whole range", show=False),
        Binding("i", "inspect", "Inspect", show=False),
        Binding("comma", "move_cursor(-0.02)", "Cursor left", show=False),
        Binding("full_stop", "move_cursor(0.02)", "Cursor right", show=False),
    ]

    ema: reactive[float] = reactive(0.6, init=False)
    """The charts' EMA weight (`[`/`]`); bound into the charts panel, remembered in Settings."""
    x_axis: reactive[str] = reactive("step", init=False)
    """step | tokens | time (`x`)."""
    log_scale: reactive[bool] = reactive(False, init=False)
    """Log y for the loss chart (`l`)."""
    window: reactive[int] = reactive(0, init=False)
    """Only the last N steps (`w`; 0 the whole run)."""

    def __init__(
        self,
        root: Path,
        demo: bool = False,
        demo_steps: int = 0,
        settings_path: Path | None = None,
        services: Services | None = None,
        prebuild: Prebuild | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.demo = demo
        self.demo_steps = demo_steps
        self.demo_overrides: list[str] = []
        """Extra overrides for both demo runs (tests shrink the model with these)."""
        self.settings_path = settings_path
        self.settings, self._settings_error = load_settings(settings_path)
        for name in ("ema", "x_axis", "log_scale", "window"):  # the saved options seed the reactives
            self.set_reactive(getattr(NexusApp, name), getattr(self.settings, name))
        self._services = services
        """Made on first use (`services`), normally right after the first frame."""
        self.prebuild = prebuild
        """The child process `nexus` started to build long histories' caches (live/prebuild.py):
        the runs watcher waits for its word before decoding a history itself."""
        self._dirty = True
        self._view_changed = True
        """What the charts show changed (selection, options, theme), not just new records arrived:
        redraw the charts now rather than in their next live slot."""
        self._started_at = time.time()
        self._replayed = False
        """Set when the start-up replay of the runs folder is done: exits seen after it are news."""
        self._follow: str | None = None
        """A run just launched from the form: selected and scrolled to once its row exists."""
        self._stalled: set[str] = set()
        """Runs shown as stalled at the last check: silence alone changes the table."""
        self._theme_cycle, self._theme_warnings = register_themes(self, config_dir() / "themes")

    @property
    def services(self) -> Services:
        """The store, supervisor, runs watcher and telemetry, made on first use: normally by
        `_start_services` right after the first frame. Their modules (numpy, the columnar path,
        watchdog, psutil, the engine's config schema) were most of what the first frame waited for."""
        if self._services is None:
            from nexus_tui.app.hub import Services

            self._services = Services(self.root, self, prebuild=self.prebuild)
        return self._services

    @property
    def store(self) -> MetricStore:
        return self.services.store

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield AlertBar(id="alerts")
        yield RunTable(id="runs")
        with Horizontal(id="body"):
            yield ChartsPanel(id="charts").data_bind(
                NexusApp.ema, NexusApp.x_axis, NexusApp.log_scale, NexusApp.window
            )
            with TabbedContent(id="side"):
                with TabPane("Telemetry", id="tab-telemetry"):
                    yield TelemetryPane(id="telemetry")
                with TabPane("Samples", id="tab-samples"):
                    yield SamplesPane(id="samples")
                with TabPane("Media", id="tab-media"):
                    yield MediaPane(id="media")
                with TabPane("Log", id="tab-log"):
                    yield LogPane(id="log")
        yield Footer(
            compact=True, show_command_palette=False
        )  # ? lists every key, ctrl+p still opens the palette

    def on_mount(self) -> None:
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else "nexus-dark"
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self._settings_error:
            self.log_line("nexus", self._settings_error, "warning")
        for warning in self._theme_warnings:  # a bad user theme file: one line each, and it is skipped
            self.log_line("nexus", warning, "warning")
            self.notify(warning, severity="warning", markup=False)
        self.set_interval(REDRAW_S, self._redraw)
        # The services (their imports, the watcher thread, telemetry with its NVML init, the runs
        # folder's replay) are made and started once the first frame is drawn: the dashboard shows up
        # before any of them costs time.
        self.call_after_refresh(self._start_services)

    def on_unmount(self) -> None:
        """However the app ends (`q`, a signal, a test's `run_test` closing), its service threads
        stop with it; runs it launched keep training (the next dashboard re-attaches them), as when
        `q` leaves them."""
        if self._services is not None:
            self._services.shutdown(stop_runs=False)

    def _start_services(self) -> None:
        self.services.start()
        self._reattach()
        self.set_interval(1.0, self._sample_telemetry)
        self._sample_telemetry()
        self.start_queue_runner()  # queued jobs go on whether or not this dashboard stays open
        self.watch_queue()
        if self.demo:
            self._launch_demo()

    @work(thread=True, group="startup")
    def _reattach(self) -> None:
        """Replay the runs folder and re-attach live runs off the event loop: the first frame does
        not wait for a million-record history."""
        try:
            self.services.reattach()
        except Exception as e:  # noqa: BLE001 - one unreadable folder must not take the dashboard down
            self.post_message(msg.WarningRaised(None, f"could not re-attach the runs folder: {e}"))

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide layout, from the event's size: this handler runs before App._on_resize
        stores the new size, so `self.size` here is the previous one (the layout lagged one resize
        behind). The class goes on the main screen, not `self.screen`, which may be a dialog then."""
        narrow = event.size.width < NARROW
        main = self.screen_stack[0]
        main.set_class(narrow, "-narrow")
        for panel in main.query(ChartsPanel):  # none while the app is still composing or closing
            if panel.has_class("-narrow") != narrow:
                panel.set_class(narrow, "-narrow")
                panel.relayout()  # four charts a page, or one

    # -- routing of service messages -------------------------------------------------------------

    @on(msg.RunLaunched)
    def _launched(self, event: msg.RunLaunched) -> None:
        self.store.apply_event(event.run_name, Launched(time=time.time()), event.run_dir)
        self._dirty = self._view_changed = True
        with contextlib.suppress(NoMatches):
            charts = self.screen_stack[0].query_one(ChartsPanel)
            if event.run_name in charts.pending:
                charts.pending.remove(event.run_name)
            table = self.screen_stack[0].query_one(RunTable)
            if event.run_name not in table.marked:  # not the demo's (marked before they start): follow it
                self._follow = event.run_name
                if table.marked:  # the charts follow the marked runs: the new one joins them
                    table.marked.add(event.run_name)

    @on(msg.BatchReceived)
    def _batch(self, event: msg.BatchReceived) -> None:
        from nexus_tui.history.bulk import set_loading

        changed = self.store.ingest_batch(event.run_name, event.run_dir, event.pieces, event.loading)
        loaded = False
        if set_loading(self.store, event.run_name, event.run_dir, event.loading):
            changed.add("state")
            loaded = event.loading is None
        if changed:
            self._dirty = True
            self._show_new(event.run_name, changed)
            if "hello" in changed:
                self.services.track(event.run_name)
        if loaded:  # a history just finished loading: draw it now, not at the next tick nor in a live slot
            self._view_changed = True
            self._redraw()
        elif event.loading is not None and event.pieces:  # its curves are worked out as it arrives
            with contextlib.suppress(NoMatches):  # the app is closing
                self.query_one(ChartsPanel).warm(self.store, self.query_one(RunTable).selected)

    @on(msg.RunExited)
    def _exited(self, event: msg.RunExited) -> None:
        changed = self.store.apply_event(event.run_name, Exited(event.exit_code, event.log_tail))
        run = self.store.get(event.run_name)
        if run is not None and run.crash_tail:
            self.query_one(LogPane).add_block(run.name, run.crash_tail, "error", self._color(run.name))
        self._dirty = True
        self.refresh_bindings()
        self._show_new(event.run_name, changed, news=self._replayed)
        if run is not None and self._replayed and run.state in ("finished", "crashed", "failed"):
            ended = f"{run.label}: {run.state} at step {run.step}" + (
                f" ({run.reason})" if run.reason else ""
            )
            self.notify(
                ended, title="Run ended", severity="error" if run.state != "finished" else "information"
            )
            self.tell("ended", ended, run.name)

    @on(msg.RunsAttached)
    def _attached(self, event: msg.RunsAttached) -> None:
        self._replayed = True
        if event.names:
            self.log_line("nexus", f"re-attached {len(event.names)} running: {', '.join(event.names)}")
        self._dirty = True

    @on(msg.RunDiscovered)
    def _discovered(self, event: msg.RunDiscovered) -> None:
        self.log_line("nexus", f"found run {event.run_dir.name}")

    @on(msg.WarningRaised)
    def _warned(self, event: msg.WarningRaised) -> None:
        self.log_line(event.run_name or "nexus", event.text, "warning")

    @on(msg.CommandWaiting)
    def _command_waiting(self, event: msg.CommandWaiting) -> None:
        self.notify(
            f"{event.run_name} is busy between steps (an eval, a sample or a checkpoint): "
            f"{event.cmd} acts as soon as it reads it",
            timeout=4,
        )

    @on(msg.CommandFinished)
    def _command_done(self, event: msg.CommandFinished) -> None:
        if event.cmd == "launch":  # a refused launch is no longer coming
            with contextlib.suppress(NoMatches, ValueError):
                self.screen_stack[0].query_one(ChartsPanel).pending.remove(event.run_name)
        if event.error:
            self.notify(f"{event.run_name}: {event.cmd} failed: {event.error}", severity="error")
            self.log_line(event.run_name, f"{event.cmd} failed: {event.error}", "error")
        else:
            self.notify(f"{event.run_name}: {event.cmd} sent", timeout=2)

    @on(RunTable.SelectionChanged)
    def _selection(self, event: RunTable.SelectionChanged) -> None:
        self._dirty = self._view_changed = True
        if self.screen_stack:  # a selection message can arrive while the app is closing
            self.refresh_bindings()

    def _show_new(self, name: str, changed: Changes, news: bool | None = None) -> None:
        """Push the samples, logs and alerts this ingest added (the store's typed `Changes`) into
        their panes.

        Only news raises the red bar: an alert from history (a NaN three days ago, replayed from the
        file on start) is listed in the log pane and nothing more. `news` None: judge each alert by
        its own timestamp against the app's start."""
        run = self.store.get(name)
        if run is None:
            return
        color = self._color(name)
        for sample in changed.samples:
            self.query_one(SamplesPane).add_sample(name, color, sample)
        for media in changed.media:
            self.query_one(MediaPane).add_media(name, color, media)
        for log in changed.logs:
            self.log_line(name, log.text, log.level, log.time)
        for record in changed.alerts:
            step = "?" if record.step is None else record.step
            text = f"{run.label}: {record.kind or 'alert'} at step {step}: {record.text}"
            when = record.time
            if news is None:
                fresh = isinstance(when, (int, float)) and when >= self._started_at - LIVE_SLACK_S
            else:
                fresh = news
            if fresh:
                self.query_one(AlertBar).raise_alert(text)
                self.notify(text, title="Alert", severity="error", timeout=15)
                self.tell("alert", text, name)
            self.log_line(name, text if fresh else f"(earlier) {text}", "error", when)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast, the app's and every screen's (Widget.notify calls this): cleaned of escape
        sequences and never parsed as markup, since messages carry run names and engine errors.
        `markup` is accepted for Textual's signature and ignored."""
        super().notify(
            clean_text(message), title=clean_text(title), severity=severity, timeout=timeout, markup=False
        )

    def log_line(self, source: str, text: str, level: str = "info", when: float | None = None) -> None:
        try:
            pane = self.query_one(LogPane)
        except NoMatches:  # the app is closing: a message (a failed launch) arrived after the widgets went
            return
        pane.add_line(source, text, level, self._color(source), when)

    def _color(self, name: str) -> str:
        if self._services is None:  # a line logged before the first frame: no run has a colour yet
            return ""
        run = self.store.get(name)
        return palette_for(self.theme).hex(run.color) if run is not None else ""

    # -- drawing ---------------------------------------------------------------------------------

    def _redraw(self) -> None:
        if (
            not self._dirty
            or self._services is None
            or not isinstance(self.screen, Screen)
            or not (self.screen is self.screen_stack[0] or isinstance(self.screen, ModalScreen))
        ):
            return  # nothing new, the services not made yet (before the first frame), or a full screen on top
        # Under a dialog the table and charts go on: a dialog never freezes the state of what it acts on.
        live = not self._view_changed  # only new records: charts may wait for their next slot
        self._dirty = self._view_changed = False
        palette = palette_for(self.theme)
        main = self.screen_stack[0]  # the dashboard, also while a dialog is on top of it
        try:
            table = main.query_one(RunTable)
            charts = main.query_one(ChartsPanel)
        except NoMatches:  # the app is closing: its widgets are gone before its timers
            return
        with self.batch_update():
            table.show_runs(self.store.runs(), palette, live=live)
            if self._follow is not None and self._follow in table.rows:  # a run just launched from the form
                table.select_run(self._follow)
                self._follow = None
            charts.marked = bool(table.marked)
            charts.redraw(self.store, table.selected, palette, live=live)

    def _sample_telemetry(self) -> None:
        try:
            pane = self.query_one(TelemetryPane)
        except NoMatches:  # closing, as in _redraw
            return
        pane.show(self.services.telemetry_view(self.theme))
        runs = self.store.runs()
        if any(is_starting(r) for r in runs):
            self._dirty = True  # the "starting… Ns" line counts up while nothing else changes
        stalled = {r.name for r in runs if r.stalled()}
        if stalled != self._stalled:  # silence changes what the table says without any record
            self._stalled, self._dirty = stalled, True

    def _theme_changed(self, theme: Any) -> None:
        self.settings.theme = theme.name
        self._save_settings()
        self._dirty = self._view_changed = True

    def _remember_options(self) -> None:
        """A chart option changed (the panel follows it through data_bind): keep it for next time."""
        for name in ("ema", "x_axis", "log_scale", "window"):
            setattr(self.settings, name, getattr(self, name))
        self.settings.clean()
        self._save_settings()

    watch_ema = watch_x_axis = watch_log_scale = watch_window = _remember_options

    def _save_settings(self) -> None:
        error = save_settings(self.settings, self.settings_path)
        if error:
            self.log_line("nexus", error, "warning")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.action not in ("quit",):
                yield SystemCommand(
                    binding.description, f"key {binding.key}", lambda a=binding.action: self.run_action(a)
                )


def make_app(
    root: Path, demo: bool = False, demo_steps: int = 0, prebuild: Prebuild | None = None
) -> NexusApp:
    """The app the CLI runs and the tests drive (`prebuild`: see `nexus_tui.live.prebuild`)."""
    return NexusApp(Path(root), demo=demo, demo_steps=demo_steps, prebuild=prebuild)
