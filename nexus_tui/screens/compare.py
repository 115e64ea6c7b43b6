"""Compare runs: overlaid curves (by step or by tokens), what differs in their configs, and results.

"Which config won" is only a fair question at equal steps or equal tokens, and only meaningful next
to what was changed; this screen puts the three side by side. The rows come from
nexus_tui.documents.comparison (this screen only draws them), and y takes them out of the terminal as markdown.
Every cell is a rich Text of cleaned text: run names and config values are never parsed as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, SelectionList

from nexus_tui import format as fmt
from nexus_tui.curves.curves import CurveCache
from nexus_tui.documents.comparison import (
    COLUMNS,
    comparison_markdown,
    config_differences,
    ended_config,
    flatten,
    result_row,
)
from nexus_tui.documents.report.document import write_new
from nexus_tui.themes import ChartPalette
from nexus_tui.widgets.chart import MetricChart
from nexus_tui.widgets.chart_spec import ChartSpec, Curve

if TYPE_CHECKING:
    from nexus_tui.history.store import MetricStore, RunView

__all__ = ["CompareScreen", "config_differences", "flatten"]


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
        Binding("y", "copy_markdown", "Copy markdown"),
    ]
    REFRESH_S = 1.0
    """Live runs keep training while compared: the curves and results follow them at this pace."""

    def __init__(
        self,
        store: MetricStore,
        palette: ChartPalette,
        chosen: list[str],
        ema_weight: float = 0.6,
        root: Path | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        """Where compare-<timestamp>.md goes; None: the app's runs folder."""
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
            runs = {r.name: r.label for r in self.store.runs()}
            yield SelectionList[str](*[(fmt.plain(runs[n]), n, n in chosen) for n in names], id="pick")
            with Vertical(id="right"):
                yield MetricChart("H (EMA) and val loss ◆", id="compare-chart")
                yield Label("Results")
                yield DataTable(id="results", cursor_type="row")
                yield Label("Config differences")
                yield DataTable(id="diff", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#results", DataTable).add_columns("run", *(c.header for c in COLUMNS))
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

    def action_copy_markdown(self) -> None:
        """The tables as GitHub markdown, to the clipboard (OSC 52, so it works over ssh) and to a
        file in the runs folder (some terminals ignore OSC 52; the file is always there)."""
        names = [n for n in self.selected if n in self.store]
        if not names:
            self.notify("Pick at least one run to copy", severity="warning")
            return
        text = comparison_markdown(self.store, names)
        self.app.copy_to_clipboard(text)
        try:
            path = write_markdown(self._out_dir(), text)
        except OSError as e:
            self.notify(f"Copied to the clipboard, but could not write the file: {e}", severity="error")
            return
        self.notify(f"Copied to the clipboard and saved to {path}")

    def _out_dir(self) -> Path:
        if self.root is not None:
            return self.root
        root = getattr(self.app, "root", None)
        return Path(root) if root is not None else Path("runs")

    def refresh_view(self) -> None:
        """Redraw the curves; update the results in place (the cursor stays); rebuild the tables
        only when the runs picked, or a config (a hello), changed."""
        runs = [r for r in (self.store.get(n) for n in self.selected) if r is not None]
        self._draw_chart(runs)
        results = self.query_one("#results", DataTable)
        shown = tuple((r.name, id(r.config)) for r in runs)
        if shown == self._shown:
            for run in runs:
                for column, value in zip(
                    list(results.columns)[1:], result_row(self.store, run).cells(), strict=True
                ):
                    results.update_cell(run.name, column, fmt.plain(value))
            return
        self._shown = shown
        results.clear()
        for run in runs:
            results.add_row(
                fmt_name(run, self.palette),
                *map(fmt.plain, result_row(self.store, run).cells()),
                key=run.name,
            )
        diff = self.query_one("#diff", DataTable)
        diff.clear(columns=True)
        diff.add_column("key")
        for run in runs:
            diff.add_column(fmt_name(run, self.palette), key=run.name)
        rows = config_differences({r.name: ended_config(r) for r in runs})
        for key, values in rows:
            diff.add_row(fmt.plain(key), *map(fmt.plain, values))
        if not rows and len(runs) > 1:
            diff.add_row(fmt.plain("(configs are identical)"), *[fmt.plain("")] * len(runs))

    def _draw_chart(self, runs: list[RunView]) -> None:
        chart = self.query_one("#compare-chart", MetricChart)
        spec = ChartSpec(
            title=f"H (EMA {self.ema_weight:.2f}) and val loss ◆ by {self.x_axis}", xlabel=self.x_axis
        )
        for run in runs:
            color = self.palette.run(run.color)
            ce = run.series["ce"]
            if len(ce):
                raw, smooth = self._cache.curve(
                    run.name, "ce", ce, self.x_axis, self.ema_weight, 0, chart.buckets
                )
                spec.curves.append(Curve(*(smooth or raw), color))
            val = run.series["val_loss"]
            if len(val):
                (vx, vy), _ = self._cache.curve(run.name, "val_loss", val, self.x_axis, 0.0, 0, chart.buckets)
                spec.curves.append(Curve(vx, vy, color, "◆", scatter=True))
        self._cache.sweep()
        chart.show(spec)


def fmt_name(run: RunView, palette: ChartPalette) -> Text:
    return Text(run.label, style=f"bold {palette.hex(run.color)}")


def write_markdown(folder: Path, text: str) -> Path:
    """folder/compare-<timestamp>.md, never over an earlier one (two copies in one second get -2, -3)."""
    return write_new(folder, "compare", text)
