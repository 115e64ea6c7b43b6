"""The chart option keys in the real app (Pilot): `]`, `x`, `l` and `w` set the app's reactives, the
charts panel follows them through data_bind and redraws at once, and the saved settings bring them
back in the next dashboard."""

from __future__ import annotations

import json
from pathlib import Path

from support.records import falling_run
from support.runfolder import write_run
from support.wait import pilot_wait_until

from nexus_tui.app import NexusApp
from nexus_tui.widgets.charts_panel import ChartsPanel


async def test_option_keys_reach_the_charts_and_are_remembered(runs_root: Path, tmp_path: Path) -> None:
    write_run(
        runs_root / "done",
        [
            *falling_run("done", 300, total=300),
            {"type": "state", "state": "finished", "step": 300, "time": 2000.0},
        ],
    )
    settings = tmp_path / "settings.json"
    app = NexusApp(runs_root, settings_path=settings)
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        lr = panel.chart("lr")
        await pilot_wait_until(pilot, lambda: lr.spec.curves, what="the finished run's charts")
        assert panel.ema == app.ema == 0.6 and max(lr.spec.curves[0].xs) == 300
        await pilot.press("right_square_bracket", "x", "l", "w")
        await pilot_wait_until(pilot, lambda: max(lr.spec.curves[0].xs) == 300 * 512, what="x by tokens")
        assert (panel.ema, panel.x_axis, panel.log_scale, panel.window) == (0.7, "tokens", True, 100)
        assert panel.chart("loss").spec.log_y
        assert min(lr.spec.curves[0].xs) >= 200 * 512, "the last 100 steps only"
        assert "EMA 0.70" in panel.options_text() and "last 100 steps" in panel.options_text()
    saved = json.loads(settings.read_text())
    assert (saved["ema"], saved["x_axis"], saved["log_scale"], saved["window"]) == (0.7, "tokens", True, 100)
    again = NexusApp(runs_root, settings_path=settings)
    async with again.run_test(size=(160, 48)) as pilot:
        panel = again.query_one(ChartsPanel)
        await pilot_wait_until(pilot, lambda: panel.x_axis == "tokens", what="the saved x axis in the panel")
        assert (panel.ema, panel.log_scale, panel.window) == (0.7, True, 100)
