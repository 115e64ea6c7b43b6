"""The real app driven by Pilot against real tiny engine processes on the CPU.

One engine per test module keeps the suite quick on a shared 2-core machine: it is launched through
the new-run form, then paused, resumed, checkpointed, sampled, ramped, compared and stopped, each
step asserting on what the engine's records did (not on what the app claims).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.pilot import APP_SIDE_WORK, FORM_OVERRIDES, type_into
from support.preset import sets
from support.wait import pilot_wait_until

from nexus_core.protocol import METRICS_FILE, RecordWriter, pack, read_status
from nexus_tui.app import NexusApp
from nexus_tui.screens.compare import CompareScreen
from nexus_tui.screens.confirm import ConfirmScreen, QuitScreen
from nexus_tui.screens.generate import GenerateScreen
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.run_table import RunTable
from nexus_tui.widgets.samples_pane import SamplesPane


@pytest.mark.slow
async def test_launch_pause_checkpoint_generate_ramp_compare_stop(app: NexusApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, LaunchScreen)
        await type_into(pilot, "#name", "e2e")
        await type_into(pilot, "#steps", "100000")
        await type_into(pilot, "#overrides", FORM_OVERRIDES)
        await pilot.click("#go")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("e2e")) is not None and r.step > 5 and r,
            90,
            "the launched run's first metrics",
        )
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).row_count == 1, 5, "the run in the table"
        )
        charts = app.query_one(ChartsPanel)
        await pilot_wait_until(pilot, lambda: charts.chart("loss").spec.curves, 5, "a loss curve")
        assert app.query_one(RunTable).selected == ["e2e"]

        # p pauses: the step stops advancing; p again resumes.
        await pilot.press("p")
        await pilot_wait_until(pilot, lambda: run.state == "paused", 20, "state paused")
        held = run.step
        await pilot.pause(1.0)
        assert run.step == held
        await pilot.press("p")
        await pilot_wait_until(
            pilot, lambda: run.state == "running" and run.step > held + 3, 20, "steps after resume"
        )

        # c checkpoints: a ckpt record arrives.
        await pilot.press("c")
        await pilot_wait_until(pilot, lambda: run.ckpts, 30, "a ckpt record")

        # g generates: the sample lands in the samples pane.
        await pilot.press("g")
        assert isinstance(app.screen, GenerateScreen)
        await type_into(pilot, "#prompt", "def f")
        await type_into(pilot, "#tokens", "20")
        await pilot.click("#go")
        samples = app.query_one(SamplesPane)
        await pilot_wait_until(pilot, lambda: samples.count >= 1, 30, "a sample in the pane")
        assert any(s.get("requested") for s in run.samples)

        # r ramps the live run: the LR in the records moves to the target.
        await pilot.press("r")
        assert isinstance(app.screen, RampScreen)
        await type_into(pilot, "#target", "2e-2")
        await type_into(pilot, "#ramp", "20")
        await pilot.click("#go")
        await pilot_wait_until(
            pilot, lambda: run.lr is not None and run.lr > 1.9e-2, 30, "the LR to reach the ramp target"
        )
        lrs = list(app.store.series("e2e", "lr")[1])
        top = next(i for i, v in enumerate(lrs) if v > 1.9e-2)
        rise = lrs[top - 15 : top + 1]  # a linear ramp from ~3e-3 over 20 steps, not a jump
        assert top >= 15 and all(a < b for a, b in zip(rise, rise[1:], strict=False)), rise
        assert rise[0] < 1.2e-2 and lrs[-1] > 1.9e-2

        # m compares (one run is enough to show its results row).
        await pilot.press("m")
        assert isinstance(app.screen, CompareScreen)
        await pilot.pause()
        assert app.screen.query_one("#results").row_count == 1
        await pilot.press("escape")

        # s asks, then stops: the engine checkpoints and exits.
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#yes")
        await pilot_wait_until(
            pilot, lambda: run.state == "stopped" and not app.services.live_runs(), 60, "the run stopped"
        )
        assert app.query_one(RunTable).get_cell("e2e", "state").plain.startswith("stopped")


@pytest.mark.slow
async def test_demo_launches_two_runs_and_quit_asks(runs_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = NexusApp(runs_root, demo=True, demo_steps=100000, settings_path=tmp_path / "s.json")
    app.demo_overrides = FORM_OVERRIDES.split()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot_wait_until(
            pilot, lambda: len([r for r in app.store.runs() if r.step > 2]) == 2, 120, "two live demo runs"
        )
        # In the order asked for, every time: the baseline is the first row and the first colour.
        assert [(r.name, r.color) for r in app.store.runs()] == [
            ("demo-baseline-1", 0),
            ("demo-contrast-1", 1),
        ]
        table = app.query_one(RunTable)
        assert [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(2)] == [
            "demo-baseline-1",
            "demo-contrast-1",
        ]
        assert app.store.get("demo-contrast-1").config["optim"]["name"] in ("muon",) or "hybrid" in str(
            app.store.get("demo-contrast-1").config.get("preset")
        )
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.click("#stop")
        await pilot_wait_until(pilot, lambda: not app.is_running, 60, "the app to exit")
    assert all(r.state in ("stopped", "finished") for r in app.store.runs()) or not app.services.live_runs()


@pytest.mark.slow
async def test_a_run_that_cannot_start_raises_the_alert_bar_with_why_and_log_tail(
    app: NexusApp, tmp_path: Path
) -> None:
    from nexus_tui.widgets.alert_bar import AlertBar
    from nexus_tui.widgets.log_pane import LogPane

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    async with app.run_test(size=(120, 40)) as pilot:
        # A config the engine accepts (the launch check passes) whose corpus turns out unusable at start.
        app.launch("tiny", "bad", "cpu", 10, [f"data.source={empty}"])
        bar = app.query_one(AlertBar)
        await pilot_wait_until(pilot, lambda: bar.alerts, 60, "the crash alert")
        assert "bad: crash" in bar.alerts[-1] and "binary or empty" in bar.alerts[-1], bar.alerts
        assert bar.has_class("-active")
        log = app.query_one(LogPane).lines_written
        assert any("binary or empty" in line and "error" in line for line in log), log[-5:]
        table = app.query_one(RunTable)
        await pilot_wait_until(
            pilot,
            lambda: "bad" in table.rows and table.get_cell("bad", "state").plain.startswith("failed"),
            5,
            "the failed state in the table (the engine said why)",
        )
        await pilot.press("a")
        assert not bar.has_class("-active")


@pytest.mark.slow
async def test_a_run_left_training_comes_back_with_history_and_control(
    app: NexusApp, runs_root: Path, engine_env: dict[str, str]
) -> None:
    """A run started outside this dashboard (a terminal, or a dashboard that quit leaving it
    training): the app replays its whole history, pauses it with p, and sees it die."""
    run_dir = runs_root / "left"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "train",
            "--preset",
            "tiny",
            "--run-dir",
            str(run_dir),
            "--steps",
            "100000",
            *sets(*APP_SIDE_WORK),
        ],
        env=engine_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while ((read_status(run_dir) or {}).get("step") or 0) < 5:
            assert proc.poll() is None and time.monotonic() < deadline, "the engine did not start training"
            time.sleep(0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            run = await pilot_wait_until(
                pilot,
                lambda: (r := app.store.get("left")) is not None and r.step >= 5 and r,
                30,
                "the run's history",
            )
            steps = app.store.series("left", "loss")[0]
            assert steps[0] == 1 and len(steps) >= 5, "the whole history, from step 1"
            await pilot_wait_until(pilot, lambda: "left" in app.services.live_runs(), 20, "the run attached")
            await pilot_wait_until(
                pilot, lambda: app.query_one(RunTable).highlighted == "left", 5, "the run in the table"
            )

            await pilot.press("p")
            await pilot_wait_until(pilot, lambda: run.state == "paused", 30, "state paused")
            held = run.step
            await pilot.pause(1.0)
            assert run.step == held and proc.poll() is None

            from nexus_tui.widgets.alert_bar import AlertBar

            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            await pilot_wait_until(pilot, lambda: run.state == "crashed", 20, "the dead run marked crashed")
            bar = app.query_one(AlertBar)
            await pilot_wait_until(pilot, lambda: bar.has_class("-active"), 5, "the alert bar")
            assert "left: crash" in bar.alerts[-1]

        # A later dashboard finds the dead run still claiming "paused": crashed, after its history.
        again = NexusApp(runs_root, settings_path=runs_root.parent / "settings2.json")
        async with again.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(
                pilot,
                lambda: (r := again.store.get("left")) is not None and r.state == "crashed",
                30,
                "the dead run crashed on a fresh start",
            )
            await pilot.pause(0.5)
            assert again.store.get("left").state == "crashed" and not again.services.live_runs()
            assert not again.query_one(AlertBar).has_class("-active"), (
                "found dead on start: listed, not shouted"
            )
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_alerts_from_history_are_listed_and_only_live_ones_raise_the_bar(
    app: NexusApp, runs_root: Path
) -> None:
    """A NaN alert replayed from a run's file is old news: the log pane lists it, the red bar stays
    down. An alert appended while the dashboard watches raises the bar."""
    from nexus_tui.widgets.alert_bar import AlertBar
    from nexus_tui.widgets.log_pane import LogPane

    run_dir = runs_root / "old"
    run_dir.mkdir()
    long_ago = time.time() - 86400
    history = [
        {"type": "hello", "run": "old", "pid": 0, "total_steps": 10, "config": {}},
        {"type": "metric", "step": 1, "tokens": 64, "loss": 3.0, "ce": 3.0, "lr": 1e-3},
        {"type": "alert", "kind": "nan", "step": 1, "text": "loss is NaN"},
        {"type": "state", "state": "stopped", "step": 1},
    ]
    with open(run_dir / METRICS_FILE, "wb") as f:
        for seq, rec in enumerate(history):
            f.write(pack({**rec, "seq": seq, "time": long_ago + seq}))
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(LogPane)
        await pilot_wait_until(
            pilot, lambda: any("nan at step 1" in line for line in log.lines_written), 30, "the old alert"
        )
        bar = app.query_one(AlertBar)
        assert not bar.has_class("-active") and not bar.alerts

        writer = RecordWriter(run_dir / METRICS_FILE)
        writer.write({"type": "alert", "kind": "spike", "step": 2, "text": "loss spiked"})
        await pilot_wait_until(pilot, lambda: bar.has_class("-active"), 30, "the live alert")
        assert "old: spike at step 2" in bar.alerts[-1] and len(bar.alerts) == 1


async def test_an_empty_runs_folder_says_what_to_do_and_a_starting_run_says_starting(
    app: NexusApp, runs_root: Path
) -> None:
    from nexus_tui.app import messages as msg
    from nexus_tui.widgets.charts_panel import EMPTY_HINT

    async with app.run_test(size=(80, 24)) as pilot:
        charts = app.query_one(ChartsPanel)
        await pilot_wait_until(pilot, lambda: charts.forecast_text == EMPTY_HINT, 5, "the empty-folder hint")
        # What the launch worker posts the moment the engine is spawned, before its (slow) hello.
        app.post_message(
            msg.BatchReceived(
                "fresh",
                runs_root / "fresh",
                [[{"type": "state", "state": "starting", "step": 0, "time": time.time() - 3}]],
            )
        )

        def counting_from_launch() -> bool:  # started 3 s ago; a loaded machine may draw it later
            m = re.match(r"fresh: starting… (\d+)s", charts.forecast_text)
            return m is not None and int(m.group(1)) >= 3

        await pilot_wait_until(pilot, counting_from_launch, 5, "starting…")
        assert app.query_one(RunTable).get_cell("fresh", "state").plain == "starting…"


async def test_the_run_table_fits_an_80x24_terminal(app: NexusApp, runs_root: Path) -> None:
    """Best val must be on screen at 80x24, not behind a sideways scroll."""
    from nexus_tui import format as fmt
    from nexus_tui.app import messages as msg

    name = "tiny-transformer-1"
    recs = [
        {
            "type": "metric",
            "seq": s,
            "time": time.time(),
            "step": s,
            "tokens": s * 512,
            "loss": 3.0 / s,
            "ce": 3.0 / s,
            "lr": 1e-3,
            "tok_s": 12345.0,
        }
        for s in range(1, 6)
    ]
    recs.append(
        {"type": "eval", "seq": 6, "time": time.time(), "step": 5, "tokens": 2560, "val_loss": 1.2345}
    )
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(msg.BatchReceived(name, runs_root / name, [recs]))
        table = app.query_one(RunTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 1, 5, "the run in the table")
        await pilot.pause()
        shown = [str(c.key.value) for c in table.ordered_columns]
        assert {"name", "state", "step", "loss", "ce", "best"} <= set(shown), shown
        room = table.scrollable_content_region.width
        assert 0 < sum(c.get_render_width(table) for c in table.ordered_columns) <= room, (shown, room)
        assert str(table.get_cell(name, "best")) == fmt.loss(1.2345)


async def test_s_on_a_busy_run_waits_for_it_and_says_so(app: NexusApp, runs_root: Path) -> None:
    """s, then Stop, on a run whose engine reads its socket only 8 s later (busy with its step's eval,
    sample and checkpoint): the person is told it is busy, and the stop is applied when it is read
    instead of expiring unapplied after 5 s."""
    from support.reporter import SCRIPTS

    async with app.run_test(size=(120, 40)) as pilot:
        app.launch(name="busy", device="cpu", command=[sys.executable, str(SCRIPTS / "busy_engine.py")])
        run_dir = runs_root / "busy"
        table = app.query_one(RunTable)
        await pilot_wait_until(
            pilot,
            lambda: (
                (run_dir / "listening").exists()
                and "busy" in table.rows
                and app.store.get("busy").state == "running"
            ),
            60,
            "the stand-in running",
        )
        table.select_run("busy")
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
        await pilot_wait_until(pilot, lambda: any("busy is busy" in m for m in said()), 30, "the busy notice")
        await pilot_wait_until(
            pilot, lambda: any("stop sent" in m or "failed" in m for m in said()), 60, "the stop's answer"
        )
        assert (run_dir / "got-stop").exists() and not any("failed" in m for m in said()), said()
