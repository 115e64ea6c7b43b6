"""What a newcomer meets in the first hour, pressed as they would: the run launched from the form is
selected, scrolled to and drawn beside the marked runs, with a legend saying which runs the charts
show; the form opens at its first field; a demo says it is starting before any run has a row; a form
command's `python` is the interpreter Nexus runs under; a command that dies before `nexus.init` says
why in its alert and stays `crashed` in every view (`nexus runs`, the next dashboard)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.engine import run_nexus
from support.pilot import FORM_OVERRIDES, type_into
from support.runfolder import write_finished
from support.wait import pilot_wait_until

from nexus_core.protocol import LOG_FILE
from nexus_tui.app import NexusApp
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.widgets.alert_bar import AlertBar
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.run_table import RunTable


def legend(app: NexusApp) -> str:
    return str(app.query_one("#chart-legend").render())


@pytest.mark.slow
async def test_a_run_launched_from_the_form_is_selected_scrolled_to_and_drawn(
    app: NexusApp, runs_root: Path
) -> None:
    for i in range(10):  # more runs than the table shows: the new one lands below its fold
        write_finished(runs_root / f"old-{i}", 30, eval_every=10)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(RunTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 10, 30, "the old runs listed")
        await pilot.press("space", "down", "space")  # two runs marked: the charts follow them
        await pilot_wait_until(pilot, lambda: "marked (space unmarks)" in legend(app), 10, "the legend")
        assert "old-" in legend(app)
        await pilot.press("n")
        await type_into(pilot, "#name", "fresh")
        await type_into(pilot, "#steps", "100000")
        await type_into(pilot, "#overrides", FORM_OVERRIDES)
        await pilot.click("#go")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("fresh")) is not None and r.step > 2 and r,
            120,
            "the new run training",
        )
        await pilot_wait_until(pilot, lambda: table.highlighted == "fresh", 10, "the new run selected")
        await pilot_wait_until(pilot, lambda: table.scroll_y > 0, 10, "the table scrolled to the new run")
        assert "fresh" in table.selected, "drawn beside the marked runs"
        await pilot_wait_until(pilot, lambda: "fresh" in legend(app), 10, "the new run in the legend")
        charts = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot, lambda: len(charts.chart("loss").spec.curves) >= 3 * 2, 20, "its curve drawn"
        )
        from nexus_core.commands import Stop

        app.services.supervisor.send("fresh", Stop())
        await pilot_wait_until(pilot, lambda: not app.services.live_runs() and not run.live, 120, "stopped")


async def test_the_form_opens_at_its_first_field_and_the_legend_names_the_highlighted_run(
    app: NexusApp, runs_root: Path
) -> None:
    write_finished(runs_root / "one", 30, eval_every=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot_wait_until(pilot, lambda: "one" in legend(app), 30, "the legend")
        assert "highlighted (↑↓ picks" in legend(app)
        await pilot.press("n")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        await pilot.pause(0.2)
        body = screen.query_one("#launch-body")
        assert body.scroll_y == 0
        preset = screen.query_one("#preset")
        assert body.content_region.contains_region(preset.region), "the first field in sight"


async def test_the_demo_says_it_is_starting_before_its_runs_have_rows(app: NexusApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        charts = app.query_one(ChartsPanel)
        charts.pending = ["demo-baseline-1", "demo-contrast-1"]  # what _launch_demo sets before its launches
        app._dirty = True
        await pilot_wait_until(
            pilot,
            lambda: charts.forecast_text.startswith("starting demo-baseline-1, demo-contrast-1"),
            10,
            "the starting line",
        )


@pytest.mark.slow
async def test_a_command_that_dies_before_nexus_init_says_why_in_every_view(
    app: NexusApp, runs_root: Path, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\nprint('python is', sys.executable, flush=True)\nimport nothing_named_this\n"
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await type_into(pilot, "#name", "early")
        await type_into(pilot, "#command", f"python {script}")
        await pilot.click("#go")
        bar = app.query_one(AlertBar)
        await pilot_wait_until(pilot, lambda: any("early" in a for a in bar.alerts), 60, "the crash alert")
        assert any("No module named 'nothing_named_this'" in a for a in bar.alerts), bar.alerts
    log = (runs_root / "early" / LOG_FILE).read_text()
    assert f"python is {sys.executable}" in log, log  # the form's `python` is the one Nexus runs under
    listed = run_nexus("--root", str(runs_root), "runs")
    assert any(line.split()[:2] == ["early", "crashed"] for line in listed.stdout.splitlines()), listed.stdout
    again = NexusApp(runs_root, settings_path=tmp_path / "s2.json")
    async with again.run_test(size=(120, 40)) as pilot:
        table = again.query_one(RunTable)
        await pilot_wait_until(pilot, lambda: "early" in table.rows, 30, "the run after a restart")
        assert table.get_cell("early", "state").plain.startswith("crashed")
        assert "nothing_named_this" in again.store.get("early").reason


async def test_the_options_bar_is_whole_at_160_columns(app: NexusApp, runs_root: Path) -> None:
    from support.records import hello, metric
    from support.runfolder import write_run

    # A run with series of its own: the bar then names the page, the filter and the chooser too.
    write_run(
        runs_root / "one",
        [
            hello("one", 30),
            *(
                metric(s, 3.0 - s / 100, **{"train/acc": s / 30, "val/f1": 0.5, "gnorm/embed": 1.0})
                for s in range(1, 31)
            ),
        ],
    )
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot_wait_until(pilot, lambda: "one" in legend(app), 30, "the run drawn")
        panel = app.query_one(ChartsPanel)
        bar = app.query_one("#chart-options")
        text = panel.options_text().replace("\\[", "[")
        assert bar.region.height * (bar.region.width - 2) >= len(text), (bar.region, len(text))
        assert bar.region.height >= 2 or len(text) <= bar.region.width - 2
