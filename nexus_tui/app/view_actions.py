"""The view keys of the dashboard: how the charts show the runs, never what the runs do.

The chart options are the app's reactives (ema, x_axis, log_scale, window), bound into the charts
panel with `data_bind`: a key sets the app's value, the panel redraws itself at once, and the app's
watchers remember it in the saved Settings. Zoom, pan, the inspect cursor, the
chart filter and chooser belong to the charts panel, which keeps them per run folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nexus_tui.settings import X_AXES
from nexus_tui.themes import next_theme
from nexus_tui.widgets.alert_bar import AlertBar
from nexus_tui.widgets.charts_panel import ChartsPanel

if TYPE_CHECKING:
    from textual.app import App

    from nexus_tui.history.store import MetricStore
    from nexus_tui.settings import Settings

    _AppBase = App[None]  # the App this mixin is mixed into, for the type checker (see run_actions)
else:
    _AppBase = object

WINDOWS = (0, 100, 500, 2000, 10000)
"""The `w` key's cycle of x windows (last N steps; 0 is the whole run)."""


class ViewActions(_AppBase):
    """The view keys (theme, EMA, x axis, log scale, window, zoom/pan/inspect, chart filter and
    chooser, alerts): they change what the charts show, never a run. Mixed into NexusApp."""

    settings: Settings
    if TYPE_CHECKING:  # NexusApp's property

        @property
        def store(self) -> MetricStore: ...

    _theme_cycle: list[str]
    ema: float
    x_axis: str
    log_scale: bool
    window: int

    def action_cycle_theme(self) -> None:
        self.theme = next_theme(self.theme, self._theme_cycle)
        at = self._theme_cycle.index(self.theme) + 1 if self.theme in self._theme_cycle else 0
        self.notify(
            f"Theme: {self.theme}" + (f" ({at} of {len(self._theme_cycle)}; t for the next)" if at else ""),
            timeout=3,
        )

    def action_show_tab(self, tab: str) -> None:
        """T, S, M, L: the side pane's Telemetry, Samples, Media and Log tabs (a crash's traceback is in Log)."""
        from textual.widgets import TabbedContent

        self.screen_stack[0].query_one("#side", TabbedContent).active = tab

    def action_ema(self, delta: float) -> None:
        self.ema = min(max(round(self.ema + delta, 2), 0.0), 0.99)

    def action_cycle_x(self) -> None:
        """step -> tokens -> time -> each logged metric a run asked to be drawn against (define_metric's
        step_metric: nanoGPT's `iter`, an epoch count) -> step."""
        axes = [*X_AXES, *sorted({x for run in self.store.runs() for x in run.x_axes()} - set(X_AXES))]
        self.x_axis = axes[(axes.index(self.x_axis) + 1) % len(axes)] if self.x_axis in axes else "step"

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale

    def action_cycle_window(self) -> None:
        at = WINDOWS.index(self.window) if self.window in WINDOWS else 0
        self.window = WINDOWS[(at + 1) % len(WINDOWS)]

    def action_zoom(self, factor: float) -> None:
        self.query_one(ChartsPanel).zoom(factor)

    def action_pan(self, fraction: float) -> None:
        self.query_one(ChartsPanel).pan_fraction(fraction)

    def action_reset_zoom(self) -> None:
        self.query_one(ChartsPanel).reset_view()

    def action_inspect(self) -> None:
        self.query_one(ChartsPanel).toggle_cursor()

    def action_move_cursor(self, fraction: float) -> None:
        self.query_one(ChartsPanel).move_cursor(fraction)

    def action_cycle_chart(self) -> None:
        self.query_one(ChartsPanel).cycle_chart()

    def action_filter_charts(self) -> None:
        from nexus_tui.screens.charts import ChartFilterScreen

        panel = self.query_one(ChartsPanel)

        def done(text: str | None) -> None:
            if text is not None:
                panel.set_filter(text)  # the dialog checked it compiles

        self.push_screen(ChartFilterScreen(panel.filter_text), done)

    def action_choose_charts(self) -> None:
        from nexus_tui.screens.charts import ChartChooserScreen

        panel = self.query_one(ChartsPanel)
        self.push_screen(ChartChooserScreen(panel.all_keys, panel.hidden, panel.set_hidden))

    def action_dismiss_alerts(self) -> None:
        self.query_one(AlertBar).dismiss()
