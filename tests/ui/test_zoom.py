"""Zoom, pan and inspect in the real app, driven by Pilot with the keys a person presses, on a
finished run written by the real RecordWriter; and a large run's history showing `loading N%` (never
`running`) while it is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.runfolder import write_finished
from support.wait import pilot_wait_until

from nexus_tui.app import NexusApp
from nexus_tui.history.columnar import colcache
from nexus_tui.widgets.chart import MetricChart
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.run_table import RunTable

STEPS = 3000


@pytest.fixture
def app(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NexusApp:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    write_finished(runs_root / "long", STEPS)
    return NexusApp(runs_root, settings_path=tmp_path / "settings.json")


def ce_curve(panel: ChartsPanel):
    """The H curve on the loss chart (the faint raw one: every raw point when zoomed in)."""
    return panel.chart("loss").spec.curves[0]


async def test_keys_zoom_pan_and_inspect_all_charts_together(app: NexusApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot, lambda: panel.extent is not None and panel.extent[1] == STEPS, 30, "the run drawn"
        )
        assert panel.x_view is None
        await pilot.press("plus")
        lo, hi = panel.x_view
        assert hi - lo == pytest.approx((STEPS - 1) / 2), "+ halves the x range"
        for key in ("lr", "gnorm", "tok_s"):
            assert panel.chart(key).spec.x_range == panel.x_view, "every chart shows the same range"
        await pilot.press("greater_than_sign")
        assert panel.x_view[0] > lo, "> pans right"
        await pilot.press("0")
        assert panel.x_view is None, "0 shows the whole run again"
        # Zoom in until the window holds fewer points than the chart has columns: every raw point.
        for _ in range(12):
            await pilot.press("plus")
            lo, hi = panel.x_view
            inside = [s for s in range(1, STEPS + 1) if lo <= s <= hi]
            if len(inside) < panel.chart("loss").buckets:
                break
        assert 2 < len(inside) < panel.chart("loss").buckets
        xs = ce_curve(panel).xs
        assert list(xs) == inside, "zoomed in, every raw point is drawn"
        # The inspect cursor: exact values of every series at that step, the same line on all charts.
        await pilot.press("i")
        assert panel.cursor is not None and all(
            panel.chart(k).spec.cursor is not None for k in ("loss", "lr", "gnorm", "tok_s")
        )
        step = int(round(panel.cursor))
        text = panel.inspect_text
        assert f"long: step {step:,}" in text, text
        assert f"tokens {step * 4096 / 1e6:.1f}M" in text and "lr 3.00e-04" in text and "val 2.2000 @" in text
        await pilot.press("full_stop", "full_stop")
        assert int(round(panel.cursor)) > step and f"step {step:,} " not in panel.inspect_text
        await pilot.press("i")
        assert panel.cursor is None and panel.inspect_text == ""


async def test_the_wheel_zooms_at_the_mouse_and_a_redraw_with_nothing_new_builds_nothing(
    app: NexusApp,
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot, lambda: panel.extent is not None and panel.extent[1] == STEPS, 30, "the run drawn"
        )
        await pilot.pause(0.5)
        chart = panel.chart("loss")
        builds = chart.builds
        for _ in range(3):
            app._dirty = True
            app._redraw()
            await pilot.pause()
        assert chart.builds == builds, "same data, same size: no plotext build"
        await pilot.hover(MetricChart, offset=(chart.size.width // 2, chart.size.height // 2))
        app.query_one("#chart-loss", MetricChart).post_message(MetricChart.Zoom(0.5, 1000.0))
        await pilot_wait_until(pilot, lambda: panel.x_view is not None, 10, "the wheel zoom")
        lo, hi = panel.x_view
        assert lo < 1000.0 < hi and hi - lo == pytest.approx((STEPS - 1) / 2)
        assert chart.builds > builds


async def test_a_large_history_says_loading_and_never_running(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(colcache, "MIN_FILE_BYTES", 1)
    write_finished(runs_root / "done", 2000)
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    seen: set[str] = set()
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(RunTable)

        def finished() -> bool:
            if table.row_count:
                seen.add(table.get_cell("done", "state").plain)
            return "finished" in seen

        await pilot_wait_until(pilot, finished, 30, "the finished run")
        # The cache is written after the history is handed on (the open does not wait for the disk).
        await pilot_wait_until(
            pilot, colcache.cache_path(runs_root / "done").exists, 30, "the columnar cache"
        )
    assert "running" not in seen, seen


async def test_a_history_is_charted_once_it_is_whole(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history read in many batches: the table says `loading N%` meanwhile, and no chart is ever
    handed a part of it (curves worked out and plotext builds for every batch slowed the open); the
    charts get the whole run once it is read, at once, not at the app's next redraw tick."""
    from nexus_tui.live import watcher as watcher_module

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(colcache, "MIN_FILE_BYTES", 1)
    monkeypatch.setattr(watcher_module, "READ_CHUNK", 1 << 12)
    monkeypatch.setattr(watcher_module, "HISTORY_DELIVER_BYTES", 1 << 12)
    write_finished(runs_root / "done", 2000)
    handed: list[float] = []
    show = MetricChart.show

    def recording(chart: MetricChart, spec, live: bool = False) -> None:
        handed.extend(c.xs[-1] for c in spec.curves if len(c.xs))
        show(chart, spec, live)

    monkeypatch.setattr(MetricChart, "show", recording)
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)

        def charted() -> bool:
            run = app.store.get("done") if app._services is not None else None
            return (
                run is not None
                and run.loading is None
                and any(len(c.xs) and c.xs[-1] == 2000 for c in panel.chart("loss").spec.curves)
            )

        await pilot_wait_until(pilot, charted, 30, "the whole run charted")
    assert handed and set(handed) == {2000.0}, sorted(set(handed))[:5]
