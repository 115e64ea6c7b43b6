"""Resume and ramp in every state a run can be in, driven by the keys a person presses: a crashed run
without a checkpoint, a finished run whose old checkpoints `keep_last` deleted, a stopped run's
defaults, a live run (no checkpoint table to move through), a paused one (Apply lets it go on), and a
run that ends while its dialog is open (the dialog acts on what is true when confirmed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import run_engine_ok, run_nexus
from support.pilot import APP_SIDE_WORK
from support.preset import TINY, TINY_OVERRIDES
from support.records import hello, metric
from support.runfolder import dead_pid, write_run
from support.wait import pilot_wait_until

from nexus_core.checkpoints import list_checkpoints
from nexus_tui.app import NexusApp
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.run_table import RunTable


def said(app: NexusApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_r_on_a_crashed_run_without_a_checkpoint_opens_no_dialog_and_keeps_it_crashed(
    app: NexusApp, runs_root: Path
) -> None:
    run_dir = runs_root / "died"
    write_run(
        run_dir,
        [hello("died", 300), *(metric(s) for s in range(1, 9))],
        status={"pid": dead_pid(), "state": "running", "step": 8, "total_steps": 300},
    )
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(RunTable)
        await pilot_wait_until(
            pilot, lambda: "died" in table.rows and table.highlighted == "died", 30, "the run listed"
        )
        await pilot_wait_until(
            pilot,
            lambda: table.get_cell("died", "state").plain.startswith("crashed"),
            10,
            "crashed in the table",
        )
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, RampScreen), "a dialog whose Resume can only fail"
        assert any("died is crashed and has no checkpoint on disk" in m for m in said(app)), said(app)
        # And a resume asked for anyway (the CLI's path through the supervisor) starts nothing.
        from nexus_tui.live.launch_args import LaunchError

        with pytest.raises(LaunchError, match="cannot resume died: .*no checkpoints"):
            app.services.supervisor.resume(run_dir)
        await pilot.pause(0.5)
        assert table.get_cell("died", "state").plain.startswith("crashed")
        assert "8/300" in table.get_cell("died", "step").plain or app.store.get("died").step == 8
    listed = run_nexus("--root", str(runs_root), "runs")
    assert "crashed" in listed.stdout, listed.stdout


@pytest.fixture
def finished_run(runs_root: Path) -> Path:
    """12 steps to the end, a checkpoint every 4, only the last two kept (step 4's folder deleted)."""
    run = runs_root / "done"
    run_engine_ok(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "12",
        *TINY,
        "--set",
        "train.ckpt_every=4",
        "--set",
        "train.keep_last=2",
        "--set",
        "train.eval_every=4",
        "--set",
        "train.save_best=false",
    )
    assert [p.name for p in list_checkpoints(run)] == ["step_000008", "step_000012"]
    return run


@pytest.mark.slow
async def test_a_finished_run_resumes_with_a_valid_default_and_only_checkpoints_on_disk(
    app: NexusApp, finished_run: Path, runs_root: Path
) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(RunTable)
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("done")) and r.state == "finished" and r,
            30,
            "the finished run read",
        )
        await pilot_wait_until(pilot, lambda: table.highlighted == "done", 10, "highlighted")
        assert [c.step for c in run.ckpts] == [4, 8, 12]  # the records still name step 4
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, RampScreen)
        assert [c["step"] for c in screen.checkpoints] == [12, 8], "only checkpoints still on disk"
        await pilot.pause()
        assert str(screen.query_one("#error").render()) == "", "opens without an error"
        assert screen.query_one("#total").value == "22"  # half its length again: 12 + max(10, 6)
        assert screen.query_one("#ramp").value == "2"
        await pilot_wait_until(pilot, lambda: screen.preview_points > 0, 60, "the preview")
        title = screen.query_one("#preview").spec.title
        assert "…" not in title and "over 2 steps" in title and "to step 22" in title, title
        await pilot.press("escape")
    report = run_nexus("report", str(finished_run), "-o", str(runs_root / "r.md"))
    assert report.returncode == 0, report.stderr
    ckpt_rows = {
        cells[0]: cells[8]
        for line in (runs_root / "r.md").read_text().splitlines()
        if len(cells := [c.strip() for c in line.strip("|").split("|")]) == 10 and cells[0].isdigit()
    }
    assert ckpt_rows["4"] == "deleted" and ckpt_rows["8"] == ckpt_rows["12"] == "yes", ckpt_rows


@pytest.mark.slow
async def test_a_live_run_ramps_from_where_it_is_and_apply_on_a_paused_one_unpauses_it(app: NexusApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        app.launch("tiny", "live", "cpu", 100000, [*TINY_OVERRIDES, *APP_SIDE_WORK])
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("live")) is not None and r.step > 3 and r,
            120,
            "the run training",
        )
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).highlighted == "live", 10, "highlighted"
        )
        await pilot.press("c")
        await pilot_wait_until(pilot, lambda: run.ckpts, 60, "a checkpoint")
        await pilot.press("p")
        await pilot_wait_until(pilot, lambda: run.state == "paused", 30, "paused")
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, RampScreen)
        assert not screen.query_one("#ckpts").display, "no checkpoint table to move through on a live run"
        assert "Ramp the LR of live" in str(screen.query_one(".title").render())
        assert str(screen.query_one("#go").label) == "Apply and unpause"
        screen.query_one("#target").value = "2e-2"
        screen.query_one("#ramp").value = "5"
        await pilot.pause()
        await pilot.click("#go")
        await pilot_wait_until(
            pilot,
            lambda: run.state == "running" and run.lr is not None and run.lr > 1.9e-2,
            60,
            "unpaused, and the LR at the ramp's target",
        )
        app.services.supervisor.send("live", __import__("nexus_core.commands", fromlist=["Stop"]).Stop())
        await pilot_wait_until(pilot, lambda: not app.services.live_runs(), 120, "stopped")


@pytest.mark.slow
async def test_a_dialog_confirmed_after_its_run_ended_acts_on_what_is_true(app: NexusApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        app.launch("tiny", "short", "cpu", 100000, [*TINY_OVERRIDES, *APP_SIDE_WORK])
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("short")) is not None and r.step > 2 and r,
            120,
            "the run training",
        )
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).highlighted == "short", 10, "highlighted"
        )
        await pilot.press("s")  # the stop confirmation is open...
        from nexus_core.commands import Stop

        app.services.supervisor.send("short", Stop())  # ...while the run ends by other means
        await pilot_wait_until(
            pilot, lambda: run.state == "stopped" and not app.services.live_runs(), 120, "stopped"
        )
        table = app.screen_stack[0].query_one(RunTable)  # the dashboard under the open dialog
        await pilot_wait_until(
            pilot,
            lambda: table.get_cell("short", "state").plain.startswith("stopped"),
            10,
            "the row under the open dialog to read stopped",
        )
        await pilot.press("y")
        await pilot.pause(0.5)
        assert not any("stop failed" in m for m in said(app)), said(app)
        assert any("short is already stopped" in m for m in said(app)), said(app)


@pytest.mark.slow
async def test_e_and_g_on_a_finished_run_use_its_newest_checkpoint(app: NexusApp, finished_run: Path) -> None:
    from nexus_tui.screens.generate import GenerateScreen
    from nexus_tui.widgets.samples_pane import SamplesPane

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot_wait_until(
            pilot, lambda: (r := app.store.get("done")) and r.state == "finished", 30, "read"
        )
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).highlighted == "done", 10, "highlighted"
        )
        assert app.check_action("eval_now", ()) is True and app.check_action("generate", ()) is True
        assert app.check_action("pause", ()) is None  # still greyed: only a live run pauses
        await pilot.press("e")
        await pilot_wait_until(
            pilot,
            lambda: any("done: step_000012: val_loss" in m for m in said(app)),
            120,
            "the eval of the newest checkpoint",
        )
        await pilot.press("g")
        screen = app.screen
        assert isinstance(screen, GenerateScreen)
        assert "newest checkpoint (step 12)" in str(screen.query_one(".title").render())
        screen.query_one("#tokens").value = "8"
        await pilot.pause()
        await pilot.click("#go")
        samples = app.query_one(SamplesPane)
        await pilot_wait_until(pilot, lambda: samples.count == 1, 120, "the sample in the pane")
        assert not any("failed" in m for m in said(app)), said(app)
