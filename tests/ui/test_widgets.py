"""Widgets drawn from hand-made records fed through a real MetricStore; no engine needed."""

from __future__ import annotations

import math

from support.records import falling_run
from textual.app import App, ComposeResult

from nexus_tui.services import format as fmt
from nexus_tui.services.settings import Settings
from nexus_tui.services.store import MetricStore
from nexus_tui.themes import PALETTES
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.run_table import RunTable

PALETTE = PALETTES["nexus-dark"]


class Host(App[None]):
    """A bare app holding one widget under test."""

    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def test_run_table_rows_update_in_place_and_marking_selects() -> None:
    store = MetricStore()
    store.ingest("alpha", None, falling_run("alpha", 30, total=40))
    store.ingest("beta", None, falling_run("beta", 5, total=40))
    table = RunTable()
    async with Host(table).run_test(size=(120, 20)) as pilot:
        table.show_runs(store.runs(), PALETTE)
        await pilot.pause()
        assert table.row_count == 2
        assert str(table.get_cell("alpha", "step")) == "30/40"
        assert str(table.get_cell("alpha", "loss")) == fmt.loss(5.0 / math.sqrt(30))
        assert str(table.get_cell("beta", "model")) == "transformer"
        table.move_cursor(row=1)
        store.ingest("alpha", None, [{"type": "metric", "seq": 999, "time": 2000.0, "step": 31, "tokens": 1,
                                       "loss": 0.5, "ce": 0.5}])
        table.show_runs(store.runs(), PALETTE)
        assert table.row_count == 2 and table.cursor_row == 1  # updated, not rebuilt
        assert str(table.get_cell("alpha", "step")) == "31/40"
        assert table.selected == ["beta"]
        await pilot.press("space")
        table.move_cursor(row=0)
        await pilot.press("space")
        assert table.selected == ["alpha", "beta"]
        assert str(table.get_cell("alpha", "name")).startswith("●")


async def test_run_table_fits_80_columns_by_dropping_the_least_useful() -> None:
    """At 80x24 nothing scrolls sideways: Model, Device, ETA go first; name..best val always stay."""
    store = MetricStore()
    store.ingest("tiny-transformer-1", None, falling_run("tiny-transformer-1", 30, total=40000))
    store.ingest("b", None, falling_run("b", 12, total=40000))
    table = RunTable()
    async with Host(table).run_test(size=(80, 24)) as pilot:
        table.move_cursor(row=0)
        table.show_runs(store.runs(), PALETTE)
        await pilot.pause()
        table.move_cursor(row=1)
        shown = [str(c.key.value) for c in table.ordered_columns]
        assert {"name", "state", "step", "loss", "ce", "best"} <= set(shown) and "model" not in shown
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= table.scrollable_content_region.width
        assert table.virtual_size.width <= table.scrollable_content_region.width, "no sideways scroll"
        assert str(table.get_cell("b", "best")) == fmt.loss(5.0 / math.sqrt(10) + 0.1)
        await pilot.resize_terminal(160, 24)
        await pilot.pause()
        assert [str(c.key.value) for c in table.ordered_columns][:3] == ["name", "model", "device"], "all back"
        assert str(table.get_cell("b", "model")) == "transformer" and table.highlighted == "b", "cursor kept"
        table.show_runs(store.runs(), PALETTE)
        assert table.row_count == 2


async def test_charts_downsample_smooth_and_window() -> None:
    store = MetricStore()
    store.ingest("big", None, falling_run("big", 5000, total=6000, nan_at=2500))
    settings = Settings(ema=0.9)
    panel = ChartsPanel(settings)
    async with Host(panel).run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        panel.redraw(store, ["big"], PALETTE)
        loss = panel.chart("loss")
        # EMA line + faint raw line + val scatter, each bucketed to ~2x the width
        assert len(loss.spec.curves) == 3
        assert loss.spec.curves[0].color == PALETTE.faint
        assert loss.spec.curves[1].color == PALETTE.run(0)
        val = loss.spec.curves[2]  # 500 evals, bucketed too, the last one kept
        assert val.scatter and len(val.xs) <= 2 * loss.buckets + 1 and val.xs[-1] == 5000
        assert len(loss.spec.curves[1].xs) <= 2 * loss.buckets + 1
        assert loss.points_drawn < 5000  # not every raw point
        raw_last = store.series("big", "ce")[1][-1]
        assert loss.spec.curves[1].ys[-1] != raw_last  # smoothed, not raw
        assert "forecast final val ≈" in panel.forecast_text  # from the val losses
        assert loss.spec.hlines
        settings.x_axis, settings.window = "tokens", 100
        panel.redraw(store, ["big"], PALETTE)
        xs = panel.chart("lr").spec.curves[0].xs
        assert min(xs) >= (5000 - 100) * 512 and max(xs) == 5000 * 512
        settings.log_scale = True
        panel.redraw(store, ["big"], PALETTE)  # the NaN step must not break a log axis
        assert panel.chart("loss").spec.log_y
        await pilot.pause()
        rendered = loss.render()
        assert len(str(rendered)) > 100


async def test_charts_draw_inside_their_frame() -> None:
    """Every chart row fits its widget and nothing is drawn right of the plot's right edge (the val
    diamonds, the LR line and the forecast line included), wide and narrow, linear and log."""
    from nexus_tui.widgets.chart import MetricChart

    store = MetricStore()
    store.ingest("alpha", None, falling_run("alpha", 300, total=400))
    store.ingest("beta", None, falling_run("beta", 120, total=400))
    for size, log_y in (((140, 45), False), ((100, 30), True)):
        panel = ChartsPanel(Settings(log_scale=log_y))
        async with Host(panel).run_test(size=size) as pilot:
            panel.redraw(store, ["alpha"], PALETTE)
            await pilot.pause()
            panel.redraw(store, ["alpha", "beta"], PALETTE)
            await pilot.pause()
            for chart in panel.query(MetricChart):
                lines = chart.render().split("\n")
                assert chart.spec.curves and len(lines) == chart.size.height
                for line in lines:
                    text = line.plain
                    assert line.cell_len <= chart.size.width, (chart.id, text)
                    edge = max(text.rfind(c) for c in "│┤┐┘")
                    if edge >= 0:
                        assert not text[edge + 1 :].strip(), (chart.id, text)
