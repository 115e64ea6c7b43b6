"""The charts area: loss & H with val loss overlaid, LR, grad norm, tokens/s for the selected runs.

The app calls `redraw` from a timer a few times a second (inside `batch_update`), never per record:
records can arrive thousands a second, a human reads a chart a few times a second. Each series is
smoothed (EMA, raw kept faint behind), windowed, then bucketed to ~2x the chart's width before
plotext sees it, so a 1M-step run draws as fast as a 100-step one.

Zoom and inspect: the panel holds one x window for all charts (keys or the mouse zoom and pan it; the
buckets are recomputed inside it, so zoomed in far enough every raw point is drawn) and one inspect
cursor (a key pins it, hovering moves it), drawn as a line on every chart, with the exact step,
tokens, time and values of every shown run at that x written under the charts.

The grid: after the standard four come the runs' own series (any extra numeric key of a metric or
eval record), grouped by section; `chartgrid` decides which are shown (a regex filter, the person's
choice saved beside the run) and splits them into pages (four a page, one on a narrow terminal; key v
pages). Only the charts on the page are built, so a redraw stays O(width) however many a run logs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.reactive import reactive
from textual.widgets import Static

from nexus_tui import format as fmt
from nexus_tui.curves import chartgrid
from nexus_tui.curves.chart_summary import Forecasts, is_starting, loss_differs, starting_text
from nexus_tui.settings import Settings
from nexus_tui.themes import ChartPalette
from nexus_tui.widgets import chart as chart_widget
from nexus_tui.widgets.chart import MetricChart
from nexus_tui.widgets.chart_spec import ChartSpec, Curve
from nexus_tui.widgets.chart_view import ChartView
from nexus_tui.widgets.inspect import readout
from nexus_tui.widgets.throttle import Throttle

if TYPE_CHECKING:
    from nexus_tui.curves.curves import CurveCache
    from nexus_tui.history.store import MetricStore

EMPTY_HINT = "no runs yet: press n to launch one, or run `nexus demo`"
CHARTS = (("loss", "H, val ◆"), ("lr", "learning rate"), ("gnorm", "grad norm"), ("tok_s", "tokens/s"))
X_LABELS = {"step": "step", "tokens": "tokens", "time": "seconds"}


class ChartsPanel(ChartView, Vertical):
    """Four charts plus a line that says how they are drawn (EMA, x axis, scale, window)."""

    DEFAULT_CSS = """
    ChartsPanel { height: 1fr; }
    ChartsPanel #chart-options { height: auto; color: $text-muted; padding: 0 1; }
    ChartsPanel.-narrow #chart-options { height: 1; }  /* 80x24: the charts need the rows; ? lists the keys */
    ChartsPanel #chart-legend { height: 1; padding: 0 1; }
    ChartsPanel #chart-forecast { height: 1; padding: 0 1; }
    ChartsPanel #chart-inspect { height: auto; max-height: 4; padding: 0 1; display: none; }
    ChartsPanel #chart-inspect.-on { display: block; }
    ChartsPanel #chart-grid { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    ChartsPanel.-narrow #chart-grid { grid-size: 1 1; }
    ChartsPanel MetricChart.-off { display: none; }
    """

    shown: reactive[int] = reactive(0)
    """The page of charts shown (key v cycles): four a page, one in narrow mode."""
    ema: reactive[float] = reactive(0.6, init=False)
    """EMA weight of the smoothed curves (0: raw). In the app, bound to NexusApp.ema (data_bind)."""
    x_axis: reactive[str] = reactive("step", init=False)
    """step | tokens | time | a logged metric a run named as step_metric; bound to NexusApp.x_axis."""
    log_scale: reactive[bool] = reactive(False, init=False)
    """Log y for the loss chart; bound to NexusApp.log_scale."""
    window: reactive[int] = reactive(0, init=False)
    """Only the last N steps (0: the whole run); bound to NexusApp.window."""

    def __init__(self, options: Settings | None = None, **kwargs) -> None:
        """`options` seeds the chart options (a panel used on its own); in the app they are bound
        to the app's reactives instead and follow them."""
        super().__init__(**kwargs)
        if options is not None:
            self.set_reactive(ChartsPanel.ema, options.ema)
            self.set_reactive(ChartsPanel.x_axis, options.x_axis)
            self.set_reactive(ChartsPanel.log_scale, options.log_scale)
            self.set_reactive(ChartsPanel.window, options.window)
        self.forecast_text = ""
        """The run summary / forecast line as last drawn."""
        self._summary = Forecasts()
        self._summary_throttle = Throttle(self)
        self._live_throttle = Throttle(self, chart_widget.LIVE_REBUILD_S)
        self._curve_cache: CurveCache | None = None
        self.x_view: tuple[float, float] | None = None
        """The zoomed x window shared by all charts (None: the whole window of data)."""
        self.cursor: float | None = None
        """The inspect cursor's x (data units as drawn)."""
        self.pinned = False
        """The cursor was placed with the key and stays when the mouse leaves."""
        self.extent: tuple[float, float] | None = None
        """The x extent of the data shown, unzoomed (from the last redraw)."""
        self.inspect_text = ""
        self._last: tuple | None = None
        self._texts: dict[str, str] = {}
        self.filter_text = ""
        """The regex typed after `/` (empty: no filter)."""
        self._pattern: re.Pattern[str] | None = None
        self.hidden: set[str] = set()
        """Charts the person took away (key f), saved beside the run folder they were chosen for."""
        self._view_dir = None
        self.all_keys: list[str] = list(chartgrid.STANDARD)
        """Every chart the shown runs could have: the standard four, then their extra series."""
        self.pages: list[list[str]] = [list(chartgrid.STANDARD)]
        self._extra: dict[str, MetricChart] = {}
        self.pending: list[str] = []
        """Runs asked for that have no row yet (the demo's, while their configs are checked): the
        empty charts say they are coming instead of `no runs yet`."""
        self.marked = False
        """Whether the shown runs are the table's marked ones (else the highlighted run): the legend says which."""
        self._legend: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static(id="chart-options")
        yield Static(id="chart-legend", markup=False)
        yield Static(id="chart-forecast", markup=False)
        yield Static(id="chart-inspect", markup=False)
        with Grid(id="chart-grid"):
            for key, title in CHARTS:
                yield MetricChart(title, id=f"chart-{key}")

    def on_mount(self) -> None:
        self.query_one("#chart-options", Static).update(self.options_text())

    def watch_shown(self, shown: int) -> None:
        self._again()

    def _option_changed(self) -> None:
        """A chart option changed: what the charts show changed, so they are redrawn now, not in a
        live slot."""
        if self.is_mounted:
            self._set("#chart-options", self.options_text())
            self._again()

    watch_ema = watch_x_axis = watch_log_scale = watch_window = _option_changed

    def cycle_chart(self) -> None:
        self.shown = (self.shown + 1) % max(1, len(self.pages))

    def chart(self, key: str) -> MetricChart:
        if key in self._extra:
            return self._extra[key]
        return self.query_one(f"#chart-{key}", MetricChart)

    @property
    def page(self) -> list[str]:
        """The chart keys on the page shown."""
        return self.pages[self.shown % len(self.pages)] if self.pages else []

    def set_filter(self, text: str) -> None:
        """Show only charts whose key matches this regex (raises ValueError, unchanged, if it is bad)."""
        self._pattern = chartgrid.compile_filter(text)
        self.filter_text = text.strip()
        self.shown = 0
        self._again()

    def set_hidden(self, hidden: set[str]) -> None:
        """The person's choice of charts not to show, saved for the run folder shown."""
        self.hidden = set(hidden)
        chartgrid.save_hidden(self._view_dir, self.hidden)
        self._again()

    def _cache(self) -> CurveCache:
        """The prepared curves, made at the first curve drawn: their module (numpy) is imported after
        the first frame, which draws no curve."""
        if self._curve_cache is None:
            from nexus_tui.curves.curves import CurveCache

            self._curve_cache = CurveCache()
        return self._curve_cache

    def _layout_grid(self, runs: list) -> None:
        """Work out the pages, mount a chart for each new extra series, show only the page's."""
        run_dir = runs[0].run_dir if runs else None
        if run_dir is not None and run_dir != self._view_dir:
            self._view_dir = run_dir
            self.hidden = chartgrid.load_hidden(run_dir)
        self.all_keys = list(chartgrid.STANDARD) + chartgrid.extra_keys(r.series.keys() for r in runs)
        per_page = 1 if self.has_class("-narrow") else 4
        shown = chartgrid.visible(self.all_keys, self._pattern, self.hidden)
        self.pages = chartgrid.pages(shown, per_page) or [[]]
        if self.shown >= len(self.pages):
            self.set_reactive(ChartsPanel.shown, 0)
        new = [k for k in self.all_keys if k not in chartgrid.STANDARD and k not in self._extra]
        if new:
            charts = [MetricChart(chartgrid.title(k), classes="-off") for k in new]
            self._extra.update(zip(new, charts, strict=True))
            self.query_one("#chart-grid", Grid).mount_all(charts)
        on_page = set(self.page)
        for key in chartgrid.STANDARD:
            self.chart(key).set_class(key not in on_page, "-off")
        for key, chart in self._extra.items():
            chart.set_class(key not in on_page, "-off")

    def options_text(self) -> str:
        o = self
        window = f"last {o.window} steps" if o.window else "whole run"
        zoom = ""
        if self.x_view is not None:
            lo, hi = self.x_view
            zoom = f"  ·  zoom {fmt.count(lo)}–{fmt.count(hi)} (0 resets)"
        grid = ""
        if len(self.all_keys) > len(chartgrid.STANDARD) or self.filter_text or self.hidden:
            where = f"page {self.shown % max(1, len(self.pages)) + 1}/{len(self.pages)} (v)"
            flt = f" /{chartgrid.title(self.filter_text)}/" if self.filter_text else ""
            grid = f"  ·  {where}  ·  filter /{flt}  ·  charts f"
        return (
            f"EMA {o.ema:.2f} \\[ ]  ·  x: {o.x_axis} (x)  ·  {'log' if o.log_scale else 'linear'} (l)"
            f"  ·  {window} (w)  ·  zoom + - < > · inspect i{zoom}{grid}"
        )

    def _curves(
        self,
        store: MetricStore,
        name: str,
        key: str,
        color: tuple[int, int, int],
        palette: ChartPalette,
        buckets: int,
        smooth: bool,
        marker: str = "braille",
        scatter: bool = False,
    ) -> list[Curve]:
        """The raw curve, or the EMA over a faint raw one, from the cache: O(buckets) per redraw."""
        run = store.get(name)
        series = run.series.get(key) if run is not None else None
        if run is None or series is None or not len(series):
            return []
        o = self
        weight = o.ema if smooth else 0.0
        x_column = run.x_column(series, o.x_axis) if o.x_axis not in X_LABELS else None
        (rx, ry), smoothed = self._cache().curve(
            name, key, series, o.x_axis, weight, o.window, buckets, self.x_view, x_column
        )
        if smoothed is None:
            return [Curve(rx, ry, color, marker, scatter)]
        return [Curve(rx, ry, palette.faint, marker), Curve(*smoothed, color, marker)]

    def redraw(self, store: MetricStore, names: list[str], palette: ChartPalette, live: bool = False) -> None:
        """Redraw all charts for these runs (colours from each run's index in `palette`). `live`: only
        new records arrived: the charts are rebuilt at most every LIVE_REBUILD_S, so their specs are
        worked out no more often either (the newest call waits for the slot)."""
        self._live_throttle(lambda: self._redraw(store, names, palette, live), live=live)

    def _redraw(self, store: MetricStore, names: list[str], palette: ChartPalette, live: bool) -> None:
        self._last = (store, list(names), palette)
        shown = [r for r in (store.get(n) for n in names) if r is not None]
        # A run whose history is still being read is drawn once, when it is whole (the app redraws
        # at once then): its curves are not worked out and built again for every batch of it.
        runs = [r for r in shown if r.loading is None]
        loading = [r for r in shown if r.loading is not None]
        for run in loading:  # kept up to date meanwhile (and kept: the sweep below drops what is not)
            self._warm(run)
        self.extent = self._extent(runs)
        if self.extent is None:
            self.x_view = None
        self._layout_grid(runs)
        self._set("#chart-options", self.options_text())
        xlabel = X_LABELS.get(self.x_axis, self.x_axis)
        integer = self.x_axis != "time"
        cursor = (self.cursor, palette.forecast) if self.cursor is not None else None
        specs = {
            key: ChartSpec(title=title, xlabel=xlabel, x_range=self.x_view, x_integer=integer, cursor=cursor)
            for key, title in CHARTS
        }
        specs["loss"].log_y = self.log_scale
        if runs and not any(len(r.series["ce"]) for r in runs):
            specs["loss"].title = "loss, val ◆"  # runs that report no pure CE: their loss is drawn there
        extras = [k for k in self.page if k not in specs]
        for key in extras:
            specs[key] = ChartSpec(
                title=chartgrid.title(key),
                xlabel=xlabel,
                x_range=self.x_view,
                x_integer=integer,
                cursor=cursor,
                log_y=self.log_scale,
            )
        for run in runs:
            color = palette.run(run.color)
            for key in ("lr", "gnorm", "tok_s"):
                buckets = self.chart(key).buckets
                specs[key].curves += self._curves(store, run.name, key, color, palette, buckets, key != "lr")
            for key in extras:  # a run's own series: smoothed like H, only the page's (O(width) each)
                buckets = self.chart(key).buckets
                specs[key].curves += self._curves(store, run.name, key, color, palette, buckets, True)
            buckets = self.chart("loss").buckets
            # H (pure CE) when the run reports it; a loop that logs only `loss` gets its loss here instead
            main = "ce" if len(run.series["ce"]) else "loss"
            specs["loss"].curves += self._curves(store, run.name, main, color, palette, buckets, True)
            if main == "ce" and self._loss_differs(store, run.name):
                specs["loss"].curves += self._curves(
                    store, run.name, "loss", color, palette, buckets, False, "dot"
                )
            specs["loss"].curves += self._curves(
                store, run.name, "val_loss", color, palette, buckets, False, "◆", scatter=True
            )
        forecast_text = ""
        if loading and not runs:
            forecast_text = (
                f"reading {loading[0].label}'s history… {int((loading[0].loading or 0) * 100)}%"
                + (f" +{len(loading) - 1} more" if len(loading) > 1 else "")
            )
        elif len(runs) == 1 and is_starting(runs[0]):
            forecast_text = starting_text(runs[0])
        elif len(runs) == 1:
            forecast_text, forecast = self._forecast(store, runs[0])
            if forecast is not None:
                specs["loss"].hlines.append((forecast, palette.forecast))
        elif len(runs) > 1:
            forecast_text = f"{len(runs)} runs marked (space marks/unmarks)"
            waiting = [r for r in runs if is_starting(r)]
            if waiting:
                forecast_text = starting_text(waiting[0]) + (
                    f" +{len(waiting) - 1} more" if len(waiting) > 1 else ""
                )
        elif not store.runs() and self.pending:
            forecast_text = f"starting {', '.join(self.pending)}: checking the config, then importing torch…"
        elif not store.runs():
            forecast_text = EMPTY_HINT
        else:
            forecast_text = "no run selected: pick one in the table"
        self.forecast_text = forecast_text
        self._show_legend(shown, palette)
        # H, the ETA and the "starting… Ns" count change with every record: read once a second.
        self._summary_throttle(lambda: self._set("#chart-forecast", forecast_text), live=live)
        on_page = set(self.page)
        for key, spec in specs.items():
            if key in on_page or key in chartgrid.STANDARD:
                self.chart(key).show(spec, live=live)
        if self._curve_cache is not None:
            self._curve_cache.sweep()
        self.inspect_text = (
            readout(store, runs, self.x_axis, self.cursor, self.window, extras)
            if self.cursor is not None
            else ""
        )
        self._set("#chart-inspect", self.inspect_text)
        self.query_one("#chart-inspect", Static).set_class(bool(self.inspect_text), "-on")

    def warm(self, store: MetricStore, names: list[str]) -> None:
        """Work out, as each batch of it arrives, the curves of a shown run whose history is still
        being read, without drawing them: when it is whole, the redraw that draws it only has the
        last batch to add (a million points a series took ~0.1 s, all on the open's critical path)."""
        for run in (store.get(n) for n in names):
            if run is not None and run.loading is not None:
                self._warm(run)

    def _warm(self, run) -> None:
        """The standard charts' curves of one run, as `_redraw` will ask for them."""
        main = "ce" if len(run.series["ce"]) else "loss"
        wanted = [("lr", False), ("gnorm", True), ("tok_s", True), (main, True), ("val_loss", False)]
        if main == "ce":
            wanted.append(("loss", False))  # drawn only where it differs from H: cheap (no EMA) to have ready
        for key, smooth in wanted:
            series = run.series.get(key)
            if series is not None and len(series):
                self._cache().warm(run.name, key, series, self.ema if smooth else 0.0)

    def _show_legend(self, runs: list[Any], palette: ChartPalette) -> None:
        """Which runs the charts show, in their colours, and how to change that."""
        key = (tuple((r.label, r.color) for r in runs), self.marked, id(palette))
        if key == self._legend:
            return
        self._legend = key
        legend = Text()
        if runs:
            legend.append("showing ")
            for run in runs:
                legend.append("● ", style=palette.hex(run.color))
                legend.append(f"{run.label} ")
            legend.append(
                "· marked (space unmarks)"
                if self.marked
                else "· highlighted (↑↓ picks, space marks to overlay)",
                style="dim",
            )
        self.query_one("#chart-legend", Static).update(legend)

    def _set(self, selector: str, text: str) -> None:
        """Update a text line only when it changed: an update re-lays out the panel (costly at a
        few frames a second while runs train)."""
        before = self._texts.get(selector)
        if before != text:
            self._texts[selector] = text
            # One-line rows keep their size: no layout pass, unless the inspect block grew or shrank.
            lines = text.count("\n")
            self.query_one(selector, Static).update(
                text,
                layout=before is None
                or before.count("\n") != lines
                or selector == "#chart-inspect"
                and not before
                or selector == "#chart-options",
            )  # it wraps: rare, and its height may change

    def relayout(self) -> None:
        """Redraw with the pages worked out again (the panel went narrow or wide)."""
        self._again()

    def _again(self) -> None:
        if self._last is not None:
            self.redraw(*self._last)

    def _extent(self, runs: list) -> tuple[float, float] | None:
        """The x extent of the shown runs' H series (in the x axis' units as drawn), unzoomed; a run
        with no H (a script's reporter logged only `loss`, or only its own keys) by its first series."""
        lo, hi = float("inf"), float("-inf")
        x, last_n = self.x_axis, self.window
        for run in runs:
            s = (
                next((v for v in run.series.values() if len(v)), None)
                if not len(run.series["ce"])
                else run.series["ce"]
            )
            if s is None:
                continue
            xs, steps = run.x_column(s, x).view, s.step.view
            start = int(steps.searchsorted(steps[-1] - last_n, side="left")) if last_n else 0
            origin = xs[start] if x == "time" else 0.0
            lo, hi = min(lo, xs[start] - origin), max(hi, xs[-1] - origin)
        return (float(lo), float(hi)) if hi > lo else None

    def _loss_differs(self, store: MetricStore, name: str) -> bool:
        return loss_differs(store, name)

    def _forecast(self, store: MetricStore, run) -> tuple[str, float | None]:
        return self._summary.line(store, run)
