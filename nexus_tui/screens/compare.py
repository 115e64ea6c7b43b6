"""Compare runs: overlaid curves (by step or by tokens), what differs in their configs, and results.

"Which config won" is only a fair question at equal steps or equal tokens, and only meaningful next
to what was changed; this screen puts the three side by side. It reads the MetricStore and draws
nothing live: press r to refresh while the runs train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, SelectionList

from nexus_tui.curves import CurveCache
from nexus_tui.themes import ChartPalette
from nexus_tui.widgets import format as fmt
from nexus_tui.widgets.chart import ChartSpec, Curve, MetricChart

if TYPE_CHECKING:
    from nexus_tui.store import MetricStore, RunView


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1e-3}} -> {'optim.lr': 1e-3}."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(configs: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Keys whose value is not the same in every run, with each run's value as text (name excluded)."""
    flat = {name: flatten(cfg or {}) for name, cfg in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    out = []
    for key in keys:
        if key in ("name", "train.device"):
            continue
        values = [repr(flat[n].get(key, fmt.DASH)) for n in configs]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def results_row(store: MetricStore, run: RunView) -> list[str]:
    """best val loss, PPL, final H, steps, tokens, tok/s, wall time."""
    times, _ = store.series(run.name, "ce", x="time")
    wall = (times[-1] - times[0]) if len(times) > 1 else None
    best = run.best_val_loss
    return [
        fmt.loss(best), fmt.ppl(best), fmt.loss(run.ce), str(run.step or 0), fmt.count(run.tokens),
        fmt.count(run.tok_s), fmt.duration(wall),
    ]


class CompareScreen(Screen[None]):
    """Pick runs on the left; curves, config differences and results on the right."""

    DEFAULT_CSS = """
    CompareScreen #pick { width: 28; border: round $primary; }
    CompareScreen #right { width: 1fr; }
    CompareScreen MetricChart { height: 1fr; min-height: 8; }
    CompareScreen DataTable { height: auto; max-height: 12; }
    CompareScreen Label { text-style: bold; margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape,m", "app.pop_screen", "Back"),
        Binding("x", "toggle_x", "Step/tokens"),
        Binding("r", "refresh_view", "Refresh"),
    ]
    REFRESH_S = 1.0
    """Live runs keep training while compared: the curves and results follow them at this pace."""

    def __init__(self, store: MetricStore, palette: ChartPalette, chosen: list[str], ema_weight: float = 0.6) -> None:
        super().__init__()
        self.store = store
        self.palette = palette
        self.chosen = chosen
        self.ema_weight = ema_weight
        self.x_axis = "step"
        self._cache = CurveCache()
        self._shown: tuple = ()
        """(runs, their configs) the tables were built for: rebuilt only when that changes."""

    def compose(self) -> ComposeResult:
        names = [r.name for r in self.store.runs()]
        chosen = set(self.chosen) or set(names)
        with Horizontal():
            yield SelectionList[str](*[(n, n, n in chosen) for n in names], id="pick")
            with Vertical(id="right"):
                yield MetricChart("H (EMA) and val loss ◆", id="compare-chart")
                yield Label("Results")
                yield DataTable(id="results", cursor_type="row")
                yield Label("Config differences")
                yield DataTable(id="diff", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#results", DataTable).add_columns(
            "run", "best val", "val PPL", "final H", "steps", "tokens", "tok/s", "wall"
        )
        self.refresh_view()
        self.set_interval(self.REFRESH_S, self.refresh_view)

    @property
    def selected(self) -> list[str]:
        return list(self.query_one("#pick", SelectionList).selected)

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self.refresh_view()

    def action_toggle_x(self) -> None:
        self.x_axis = "tokens" if self.x_axis == "step" else "step"
        self.refresh_view()

    def action_refresh_view(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        """Redraw the curves; update the results in place (the cursor stays); rebuild the tables
        only when the runs picked, or a config (a hello), changed."""
        runs = [r for r in (self.store.get(n) for n in self.selected) if r is not None]
        self._draw_chart(runs)
        results = self.query_one("#results", DataTable)
        shown = tuple((r.name, id(r.config)) for r in runs)
        if shown == self._shown:
            for run in runs:
                for column, value in zip(list(results.columns)[1:], results_row(self.store, run), strict=True):
                    results.update_cell(run.name, column, value)
            return
        self._shown = shown
        results.clear()
        for run in runs:
            results.add_row(fmt_name(run, self.palette), *results_row(self.store, run), key=run.name)
        diff = self.query_one("#diff", DataTable)
        diff.clear(columns=True)
        diff.add_column("key")
        for run in runs:
            diff.add_column(fmt_name(run, self.palette), key=run.name)
        rows = config_differences({r.name: r.config for r in runs})
        for key, values in rows:
            diff.add_row(key, *values)
        if not rows and len(runs) > 1:
            diff.add_row("(configs are identical)", *[""] * len(runs))

    def _draw_chart(self, runs: list[RunView]) -> None:
        chart = self.query_one("#compare-chart", MetricChart)
        spec = ChartSpec(title=f"H (EMA {self.ema_weight:.2f}) and val loss ◆ by {self.x_axis}", xlabel=self.x_axis)
        for run in runs:
            color = self.palette.run(run.color)
            ce = run.series["ce"]
            if len(ce):
                raw, smooth = self._cache.curve(run.name, "ce", ce, self.x_axis, self.ema_weight, 0, chart.buckets)
                spec.curves.append(Curve(*(smooth or raw), color))
            val = run.series["val_loss"]
            if len(val):
                (vx, vy), _ = self._cache.curve(run.name, "val_loss", val, self.x_axis, 0.0, 0, chart.buckets)
                spec.curves.append(Curve(vx, vy, color, "◆", scatter=True))
        self._cache.sweep()
        chart.show(spec)


def fmt_name(run: RunView, palette: ChartPalette) -> Text:
    return Text(run.name, style=f"bold {palette.hex(run.color)}")
