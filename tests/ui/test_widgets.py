"""Widgets drawn from hand-made records fed through a real MetricStore; no engine needed."""

from __future__ import annotations

import math
import time

from support.pilot import Host
from support.records import falling_run

from nexus_tui import format as fmt
from nexus_tui.history.store import MetricStore
from nexus_tui.settings import Settings
from nexus_tui.themes import PALETTES
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.run_table import RunTable

PALETTE = PALETTES["nexus-dark"]


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
        store.ingest(
            "alpha",
            None,
            [{"type": "metric", "seq": 999, "time": 2000.0, "step": 31, "tokens": 1, "loss": 0.5, "ce": 0.5}],
        )
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
        assert (
            sum(c.get_render_width(table) for c in table.ordered_columns)
            <= table.scrollable_content_region.width
        )
        assert table.virtual_size.width <= table.scrollable_content_region.width, "no sideways scroll"
        assert str(table.get_cell("b", "best")) == fmt.loss(5.0 / math.sqrt(10) + 0.1)
        await pilot.resize_terminal(160, 24)
        await pilot.pause()
        assert [str(c.key.value) for c in table.ordered_columns][:3] == ["name", "model", "device"], (
            "all back"
        )
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
        panel.x_axis, panel.window = "tokens", 100  # as the app's bound reactives set them
        await pilot.pause()
        xs = panel.chart("lr").spec.curves[0].xs
        assert min(xs) >= (5000 - 100) * 512 and max(xs) == 5000 * 512
        panel.log_scale = True  # the panel redraws itself: the NaN step must not break a log axis
        await pilot.pause()
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


def test_ticks_read_as_written_and_never_repeat() -> None:
    from nexus_tui.curves.ticks import axis, flat_range, is_flat

    assert axis(0.5, 0.5, 3) == ([0.5], ["0.5"])
    # An EMA of a constant wobbles in its last bits: still one tick, not three `0.500000`.
    assert axis(0.49999999999999994, 0.5000000000000001, 3)[1] == ["0.5"]
    assert axis(1000.0, 1000.0000001, 3)[1] == ["1000"]
    assert axis(3e-4, 3e-4, 3)[1] == ["3e-4"] and axis(2.5e-5, 2.5e-5, 3)[1] == ["2.5e-5"]  # as a moving LR's
    assert is_flat(3e-4, 3e-4 * (1 + 1e-15)) and not is_flat(0.0, 1e-3)
    lo, hi = flat_range(0.5)
    assert lo < 0.5 < hi and hi - lo > 0.01 and flat_range(0.0) == (-1.0, 1.0)
    for lo, hi in ((1e6, 1e6 + 1), (0.0, 1.0), (2.0, 2.1), (0.0, 1e6), (3e-4, 3.0000001e-4), (-5.0, 5.0)):
        ticks, labels = axis(lo, hi, 4)
        assert len(set(labels)) == len(labels) == len(ticks) >= 1, (lo, hi, labels)
    assert axis(0.0, 1e6, 5)[1][-1] == "1.0M" and axis(0, 2000, 4, integer=True)[1][1] == "0.5k"
    # The round step nearest the count asked for: a run at step 1819 on a narrow chart reads 0.5k 1.0k
    # 1.5k, not one lone 1.0k; never more than one tick over the count.
    assert axis(1, 1819, 3, integer=True)[1] == ["0.5k", "1.0k", "1.5k"]
    assert axis(1, 65, 3, integer=True)[1] == ["20", "40", "60"]
    assert axis(1, 2, 3, integer=True)[1] == ["1", "2"], "no step 1.5 on a step axis"
    for lo, hi, count in ((1, 1819, 3), (0, 7, 3), (0.3, 9.7, 3), (1e-5, 3e-3, 4), (-2.0, 13.0, 5)):
        assert 2 <= len(axis(lo, hi, count)[0]) <= count + 1, (lo, hi, count)


async def test_a_constant_series_gets_one_readable_y_tick() -> None:
    """gnorm stuck at 0.5 (smoothed: the EMA wobbles in its last bits) is drawn mid-chart with one
    y label, not three identical `0.500000`."""
    recs = falling_run("flat", 200, total=200)
    for r in recs:
        if r["type"] == "metric":
            r["gnorm"] = 0.1 + 0.4  # 0.5 with float noise through the EMA
    store = MetricStore()
    store.ingest("flat", None, recs)
    panel = ChartsPanel(Settings(ema=0.9))
    async with Host(panel).run_test(size=(140, 45)) as pilot:
        panel.redraw(store, ["flat"], PALETTE)
        await pilot.pause()
        lines = [line.plain for line in panel.chart("gnorm").render().split("\n")]
        y_labels = [ln.split("┤")[0].strip() for ln in lines if "┤" in ln]
        assert y_labels == ["0.5"], lines
        assert not any("0.500000" in ln for ln in lines)
        drawn = [i for i, ln in enumerate(lines) if any("\u2800" < ch <= "\u28ff" for ch in ln)]
        assert drawn and 0.25 < (sum(drawn) / len(drawn)) / len(lines) < 0.75  # mid-chart, not on an edge


async def test_live_table_updates_are_throttled_but_never_lost() -> None:
    """Live changes reach the table at most once a second; the last one held back still shows."""
    import time as _time

    store = MetricStore()
    store.ingest("alpha", None, falling_run("alpha", 10, total=1000))
    table = RunTable()
    async with Host(table).run_test(size=(120, 20)) as pilot:
        table.show_runs(store.runs(), PALETTE)  # a new run: at once
        await pilot.pause()
        assert str(table.get_cell("alpha", "step")) == "10/1000"
        seq = 100
        for step in range(11, 41):  # a burst of live records, each followed by a live redraw
            store.ingest(
                "alpha",
                None,
                [
                    {
                        "type": "metric",
                        "seq": seq,
                        "time": 2000.0 + step,
                        "step": step,
                        "tokens": step,
                        "loss": 1.0,
                        "ce": 1.0,
                    }
                ],
            )
            seq += 1
            table.show_runs(store.runs(), PALETTE, live=True)
        deadline = _time.monotonic() + 30
        while str(table.get_cell("alpha", "step")) != "40/1000" and _time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert str(table.get_cell("alpha", "step")) == "40/1000"


async def test_a_live_record_that_changes_no_dot_rebuilds_no_chart(monkeypatch) -> None:
    """A long run's next step lands on the braille dots already drawn: no plotext build (tens of ms);
    a step that moves the picture (a spike) is drawn."""
    from nexus_tui.widgets import chart as chart_module
    from nexus_tui.widgets.chart import MetricChart

    monkeypatch.setattr(chart_module, "LIVE_REBUILD_S", 0.0)  # no rate limit: only the picture decides
    monkeypatch.setattr(chart_module, "LIVE_BUILD_SHARE", 1e9)

    store = MetricStore()
    store.ingest("long", None, falling_run("long", 20_000, total=40_000))
    panel = ChartsPanel(Settings(ema=0.0))
    async with Host(panel).run_test(size=(140, 45)) as pilot:
        panel.redraw(store, ["long"], PALETTE)
        await pilot.pause()
        charts = list(panel.query(MetricChart))
        built = [c.builds for c in charts]
        assert all(built)
        seq = 10**6

        def live(step: int, gnorm: float) -> None:
            nonlocal seq
            store.ingest(
                "long",
                None,
                [
                    {
                        "type": "metric",
                        "seq": seq,
                        "time": 1000.0 + step,
                        "step": step,
                        "tokens": step * 512,
                        "loss": 5.0 / math.sqrt(step),
                        "ce": 5.0 / math.sqrt(step),
                        "lr": 1e-3,
                        "gnorm": gnorm,
                        "tok_s": 4000.0 + step,
                        "step_s": 0.1,
                        "mem": 1e8,
                    }
                ],
            )
            seq += 1
            panel.redraw(store, ["long"], PALETTE, live=True)

        live(20_001, 1.0 + 1 / 20_001)
        await pilot.pause()
        assert [c.builds for c in charts] == built, "nothing visible changed: no build"
        assert panel.chart("gnorm").spec.curves[0].xs[-1] == 20_001, "the spec still holds the new point"
        live(20_002, 50.0)  # a spike: the grad norm chart must show it
        gnorm = panel.chart("gnorm")
        deadline = time.monotonic() + 30
        while gnorm.builds == built[charts.index(gnorm)] and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert gnorm.builds > built[charts.index(gnorm)]


async def test_a_slow_chart_is_rebuilt_live_less_often_but_at_once_for_a_person() -> None:
    """Live rebuilds wait in proportion to what a build costs (a share of a core), never less than
    LIVE_REBUILD_S nor more than LIVE_REBUILD_MAX_S, by the median of recent builds (one slow build,
    a garbage collection in it, held the tokens/s chart still for 27 s while runs trained); a redraw a
    person asked for (not live) is drawn at once."""
    from nexus_tui.widgets import chart as chart_module

    store = MetricStore()
    store.ingest("a", None, falling_run("a", 300, total=400))
    panel = ChartsPanel(Settings())
    async with Host(panel).run_test(size=(140, 45)) as pilot:
        panel.redraw(store, ["a"], PALETTE)
        await pilot.pause()
        chart = panel.chart("loss")
        assert chart.builds == 1 and chart.build_cost is not None and chart.build_cost > 0
        assert chart.live_interval == min(
            chart_module.LIVE_REBUILD_MAX_S,
            max(chart_module.LIVE_REBUILD_S, chart.build_cost / chart_module.LIVE_BUILD_SHARE),
        )
        chart._build_costs.clear()
        chart._build_costs.extend([0.006, 0.004, 0.2])  # one slow build among quick ones: the pace stays
        assert chart.build_cost == 0.006 and chart.live_interval == chart_module.LIVE_REBUILD_S
        chart._build_costs.extend([1.0] * chart_module.BUILD_COSTS_KEPT)  # every build takes a second
        assert chart.live_interval == chart_module.LIVE_REBUILD_MAX_S, "slow, but still moving"
        panel.ema = 0.5  # a person changed the EMA (the app's reactive, bound): drawn at once
        await pilot.pause()
        assert chart.builds == 2


async def test_a_state_change_reaches_the_table_at_once_even_live() -> None:
    """Numbers wait for their slot; a run that stopped, crashed or finished is news: never held back."""
    store = MetricStore()
    store.ingest("alpha", None, falling_run("alpha", 10, total=1000))
    table = RunTable()
    async with Host(table).run_test(size=(120, 20)) as pilot:
        table.show_runs(store.runs(), PALETTE)
        await pilot.pause()
        table.show_runs(store.runs(), PALETTE, live=True)  # takes the live slot
        store.ingest(
            "alpha",
            None,
            [
                {
                    "type": "state",
                    "seq": 500,
                    "time": 3000.0,
                    "state": "finished",
                    "step": 10,
                    "reason": "done",
                }
            ],
        )
        table.show_runs(store.runs(), PALETTE, live=True)
        assert str(table.get_cell("alpha", "state")).startswith("finished")


def _screen_text(app) -> str:
    """The whole screen as a full repaint draws it (a screenshot, another widget's layout pass)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=False, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.file.getvalue()


async def test_a_chart_built_by_someone_elses_repaint_shows_that_build(monkeypatch) -> None:
    """A live spec waiting for its slot, then a repaint the chart did not ask for (another widget's
    layout, a screenshot) builds the new picture: the screen must show that build, not the lines
    Textual cached from the one before (the charts froze at steps 1-2 for minutes while the demo
    trained: the slot then found the new picture already 'drawn' and never repainted)."""
    from nexus_tui.widgets import chart as chart_module
    from nexus_tui.widgets.chart import MetricChart
    from nexus_tui.widgets.chart_spec import ChartSpec, Curve

    monkeypatch.setattr(chart_module, "LIVE_REBUILD_S", 600.0)  # a live spec surely waits for its slot

    def spec(last: int) -> ChartSpec:
        xs = list(range(1, last + 1))
        return ChartSpec(
            title="lr", xlabel="step", curves=[Curve(xs, [1e-3 * x for x in xs], (200, 100, 50))]
        )

    chart = MetricChart("lr")
    async with Host(chart).run_test(size=(100, 24)) as pilot:
        chart.show(spec(3))
        await pilot.pause()
        assert chart.builds == 1 and "3e-3" in _screen_text(pilot.app)
        chart.show(spec(3000), live=True)
        await pilot.pause()
        assert chart.builds == 1 and chart._waiting, "the new spec waits for its slot"
        text = _screen_text(pilot.app)  # a full repaint: the chart's render builds the new picture
        assert chart.builds == 2 and chart._chart_x == (1.0, 3000.0)
        assert "3e-3" not in text and "2.0k" in text, text


async def test_a_run_at_its_total_gets_no_forecast() -> None:
    """A finished run's 'forecast final val ≈ 2.097 (2.097–2.097)' told nothing: at its total there is
    no forecast line or line on the chart, while a run short of it keeps both."""
    store = MetricStore()
    store.ingest("done", None, falling_run("done", 3000, total=3000))
    store.ingest("short", None, falling_run("short", 3000, total=6000))
    panel = ChartsPanel(Settings())
    async with Host(panel).run_test(size=(160, 40)) as pilot:
        for name, forecast in (("short", True), ("done", False)):
            panel.redraw(store, [name], PALETTE)
            await pilot.pause()
            assert ("forecast final val" in panel.forecast_text) is forecast, panel.forecast_text
            assert bool(panel.chart("loss").spec.hlines) is forecast


async def test_a_log_axis_is_labelled_with_round_values() -> None:
    """log (l): a loss from 5.2 down to 1.9 is labelled 2, 3, 4, 5 on the log scale (plotext's own
    labels split the log range evenly: 5.19, 4.39, 3.71...); an LR over decades by powers of ten."""
    from nexus_tui.curves.ticks import log_axis
    from nexus_tui.widgets.chart import MetricChart
    from nexus_tui.widgets.chart_spec import ChartSpec, Curve

    assert log_axis(1.9, 5.19, 5) == ([2.0, 3.0, 4.0, 5.0], ["2", "3", "4", "5"])
    assert log_axis(1e-5, 3e-3, 4)[1] == ["1e-5", "1e-4", "1e-3"]
    assert log_axis(1500, 250_000, 4)[1] == ["10k", "100k"] and log_axis(0.0, 1.0) == ([], [])
    chart = MetricChart("loss")
    async with Host(chart).run_test(size=(60, 20)) as pilot:
        xs = list(range(1, 400))
        chart.show(
            ChartSpec(
                title="loss", log_y=True, curves=[Curve(xs, [5.19 * x**-0.17 for x in xs], (200, 90, 40))]
            )
        )
        await pilot.pause()
        labels = [
            line.plain.split("┤")[0].strip() for line in chart.render().split("\n") if "┤" in line.plain
        ]
        assert labels and set(labels) <= {"2", "3", "4", "5"}, labels
