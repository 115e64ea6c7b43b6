"""The charts area: loss & H with val loss overlaid, LR, grad norm, tokens/s for the selected runs.

The app calls `redraw` from a timer a few times a second (inside `batch_update`), never per record:
records can arrive thousands a second, a human reads a chart a few times a second. Each series is
smoothed (EMA, raw kept faint behind), windowed, then bucketed to ~2x the chart's width before
plotext sees it, so a 1M-step run draws as fast as a 100-step one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.reactive import reactive
from textual.widgets import Static

from nexus_tui import format as fmt
from nexus_tui.curves import CurveCache
from nexus_tui.forecast import forecast_final
from nexus_tui.settings import Settings
from nexus_tui.themes import ChartPalette
from nexus_tui.widgets.chart import ChartSpec, Curve, MetricChart

if TYPE_CHECKING:
    from nexus_tui.store import MetricStore

EMPTY_HINT = "no runs yet: press n to launch one, or run `nexus demo`"
CHARTS = (("loss", "H, val ◆"), ("lr", "learning rate"), ("gnorm", "grad norm"), ("tok_s", "tokens/s"))
X_LABELS = {"step": "step", "tokens": "tokens", "time": "seconds"}


def starting_text(run) -> str:
    """What a run with no step yet is doing, so a slow first step (torch import, data, compile)
    does not look like a dead dashboard."""
    began = run.started or run.updated  # the hello's time, or the launch's before the hello
    since = f" {time.time() - began:.0f}s" if began else ""
    return f"{run.label}: starting…{since} (importing torch, building the model, first step)"


def is_starting(run) -> bool:
    """Live, and no training step reported yet."""
    return run.live and not len(run.series["ce"])


class ChartsPanel(Vertical):
    """Four charts plus a line that says how they are drawn (EMA, x axis, scale, window)."""

    DEFAULT_CSS = """
    ChartsPanel { height: 1fr; }
    ChartsPanel #chart-options { height: 1; color: $text-muted; padding: 0 1; }
    ChartsPanel #chart-forecast { height: 1; padding: 0 1; }
    ChartsPanel #chart-grid { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    ChartsPanel.-narrow #chart-grid { grid-size: 1 1; }
    ChartsPanel.-narrow MetricChart { display: none; }
    ChartsPanel.-narrow MetricChart.-shown { display: block; }
    """

    shown: reactive[int] = reactive(0)
    """In narrow mode, the index of the one chart shown (key v cycles)."""

    def __init__(self, options: Settings, **kwargs) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.forecast_text = ""
        """The run summary / forecast line as last drawn."""
        self._forecasts: dict[tuple, tuple[float, float, float] | None] = {}
        self._cache = CurveCache()

    def compose(self) -> ComposeResult:
        yield Static(id="chart-options")
        yield Static(id="chart-forecast", markup=False)
        with Grid(id="chart-grid"):
            for i, (key, title) in enumerate(CHARTS):
                yield MetricChart(title, id=f"chart-{key}", classes="-shown" if i == 0 else "")

    def on_mount(self) -> None:
        self.query_one("#chart-options", Static).update(self.options_text())

    def watch_shown(self, shown: int) -> None:
        for i, chart in enumerate(self.query(MetricChart)):
            chart.set_class(i == shown % len(CHARTS), "-shown")

    def cycle_chart(self) -> None:
        self.shown = (self.shown + 1) % len(CHARTS)

    def chart(self, key: str) -> MetricChart:
        return self.query_one(f"#chart-{key}", MetricChart)

    def options_text(self) -> str:
        o = self.options
        window = f"last {o.window} steps" if o.window else "whole run"
        return (
            f"EMA {o.ema:.2f} \\[ ]  ·  x: {o.x_axis} (x)  ·  {'log' if o.log_scale else 'linear'} (l)"
            f"  ·  {window} (w)"
        )

    def _curves(
        self, store: MetricStore, name: str, key: str, color: tuple[int, int, int], palette: ChartPalette,
        buckets: int, smooth: bool, marker: str = "braille", scatter: bool = False,
    ) -> list[Curve]:
        """The raw curve, or the EMA over a faint raw one, from the cache: O(buckets) per redraw."""
        run = store.get(name)
        series = run.series.get(key) if run is not None else None
        if series is None or not len(series):
            return []
        o = self.options
        weight = o.ema if smooth else 0.0
        (rx, ry), smoothed = self._cache.curve(name, key, series, o.x_axis, weight, o.window, buckets)
        if smoothed is None:
            return [Curve(rx, ry, color, marker, scatter)]
        return [Curve(rx, ry, palette.faint, marker), Curve(*smoothed, color, marker)]

    def redraw(self, store: MetricStore, names: list[str], palette: ChartPalette) -> None:
        """Redraw all charts for these runs (colours from each run's index in `palette`)."""
        self.query_one("#chart-options", Static).update(self.options_text())
        runs = [r for r in (store.get(n) for n in names) if r is not None]
        xlabel = X_LABELS.get(self.options.x_axis, "")
        specs = {key: ChartSpec(title=title, xlabel=xlabel) for key, title in CHARTS}
        specs["loss"].log_y = self.options.log_scale
        for run in runs:
            color = palette.run(run.color)
            for key in ("lr", "gnorm", "tok_s"):
                buckets = self.chart(key).buckets
                specs[key].curves += self._curves(store, run.name, key, color, palette, buckets, key != "lr")
            buckets = self.chart("loss").buckets
            specs["loss"].curves += self._curves(store, run.name, "ce", color, palette, buckets, True)
            if self._loss_differs(store, run.name):
                specs["loss"].curves += self._curves(store, run.name, "loss", color, palette, buckets, False, "dot")
            specs["loss"].curves += self._curves(store, run.name, "val_loss", color, palette, buckets, False, "◆",
                                                 scatter=True)
        forecast_text = ""
        if len(runs) == 1 and is_starting(runs[0]):
            forecast_text = starting_text(runs[0])
        elif len(runs) == 1:
            forecast_text, forecast = self._forecast(store, runs[0])
            if forecast is not None:
                specs["loss"].hlines.append((forecast, palette.forecast))
        elif len(runs) > 1:
            forecast_text = f"{len(runs)} runs marked (space marks/unmarks)"
            waiting = [r for r in runs if is_starting(r)]
            if waiting:
                forecast_text = starting_text(waiting[0]) + (f" +{len(waiting) - 1} more" if len(waiting) > 1 else "")
        elif not store.runs():
            forecast_text = EMPTY_HINT
        else:
            forecast_text = "no run selected: pick one in the table"
        self.forecast_text = forecast_text
        self.query_one("#chart-forecast", Static).update(forecast_text)
        for key, spec in specs.items():
            self.chart(key).show(spec)
        self._cache.sweep()

    def _loss_differs(self, store: MetricStore, name: str) -> bool:
        """Show `loss` beside H only when it is not the same number (label smoothing, MTP, aux)."""
        run = store.get(name)
        if run is None:
            return False
        loss, ce = run.series["loss"].value[-20:], run.series["ce"].value[-20:]
        return any(abs(a - b) > 1e-6 for a, b in zip(loss, ce, strict=False))

    def _forecast(self, store: MetricStore, run) -> tuple[str, float | None]:
        """A line under the options for one run: H, best val, the projected final val loss, ETA.
        (Chart titles are too narrow for it: plotext drops a title that does not fit.)"""
        title = f"{run.label}: H {fmt.loss(run.ce)} · best val ◆ {fmt.loss(run.best_val_loss)}"
        steps, vals = store.series(run.name, "val_loss", x="step")
        # The fit is pure Python over every eval: redo it only when an eval arrived or the total moved.
        key = (run.name, len(steps), steps[-1] if len(steps) else None, run.total_steps)
        if key not in self._forecasts:
            self._forecasts = {k: v for k, v in self._forecasts.items() if k[0] != run.name}
            self._forecasts[key] = (
                forecast_final(list(steps), list(vals), run.total_steps or 0) if len(steps) else None
            )
        guess = self._forecasts[key]
        if guess is None:
            return title, None
        value, low, high = guess
        eta = f" · ETA {fmt.duration(run.eta_s)}" if run.eta_s else ""
        return f"{title} · forecast final val ≈ {value:.3f} ({low:.3f}–{high:.3f}){eta}", value
