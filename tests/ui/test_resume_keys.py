"""Resume from the keyboard, for real: `r` on a stopped run through the real dialog, every way of
naming a checkpoint, and the keys a stopped run cannot take.

The run is trained by a real engine from the command line; the app re-reads it from its folder and
a person's keys (Pilot) restart it through the same dialog and Supervisor a user drives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import run_engine
from support.preset import TINY
from support.wait import pilot_wait_until

from engine import checkpoint as ckpt
from nexus_core import protocol as P
from nexus_core.commands import Ramp, Stop
from nexus_core.errors import CheckpointError
from nexus_tui.app import NexusApp
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.run_table import RunTable


@pytest.fixture
def stopped(runs_root: Path) -> Path:
    """A run of 40 steps stopped at step 12, with checkpoints at 6 and 12."""
    run = runs_root / "halt"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "40",
        "--stop-at",
        "12",
        *TINY,
        "--set",
        "train.ckpt_every=6",
        "--set",
        "train.eval_every=0",
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step_000006", "step_000012"]
    return run


def test_every_way_of_naming_a_checkpoint_resolves(stopped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    six = (stopped / "checkpoints" / "step_000006").resolve()
    monkeypatch.chdir(stopped.parent.parent)  # a cwd that is neither the run folder nor its parent
    for name in (
        "6",
        "step_000006",
        "step_6",
        "checkpoints/step_000006",
        str(six),
        f"{stopped.parent.name}/{stopped.name}/checkpoints/step_000006",
    ):
        assert ckpt.resolve_checkpoint(stopped, name) == six, name
    assert ckpt.resolve_checkpoint(stopped, "latest").name == "step_000012"
    with pytest.raises(
        CheckpointError,
        match=r"'7' not found in run halt; available: step_000006, "
        r"step_000012 \(give latest, best, a step like 12",
    ):
        ckpt.resolve_checkpoint(stopped, "7")


def test_resume_from_a_path_relative_to_the_run_folder_on_the_command_line(stopped: Path) -> None:
    done = run_engine(
        "resume", "--run-dir", str(stopped), "--from", "checkpoints/step_000006", "--stop-at", "9"
    )
    assert done.returncode == 0, done.stderr
    hello = [r for r in P.read_records(stopped / P.METRICS_FILE).records if r["type"] == P.HELLO][-1]
    assert hello["start_step"] == 6 and hello["resumed_from"] == "checkpoints/step_000006"


@pytest.mark.slow
async def test_r_on_a_stopped_run_resumes_it_through_the_real_dialog(
    stopped: Path, runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(120, 40)) as pilot:
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("halt")) is not None and r.ckpts and r,
            30,
            "the stopped run read from its folder",
        )
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).highlighted == "halt", 10, "the run highlighted"
        )
        assert run.state == "stopped" and run.step == 12

        # Keys a stopped run cannot take are greyed, and pressing one says what is possible.
        for key, action in app.LIVE_ONLY.items():  # e and g use its newest checkpoint instead
            assert app.check_action(action, ()) is (True if key in app.ON_CHECKPOINT else None), key
        await pilot.press("p")
        assert not isinstance(app.screen, RampScreen) and len(app.screen_stack) == 1, "no dialog opened"
        said = [n.message for n in app._notifications]
        assert any("halt is stopped: r resumes it" in m for m in said), said

        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, RampScreen)
        await pilot_wait_until(
            pilot, lambda: screen.preview_points > 0, 30, "the preview of the newest checkpoint"
        )
        newest = screen.query_one("#preview").spec.curves[0].xs[0]
        assert newest == 12
        # Picking the older checkpoint redraws the preview from its step.
        screen.query_one("#ckpts").move_cursor(row=1)
        await pilot_wait_until(
            pilot,
            lambda: (c := screen.query_one("#preview").spec.curves) and c[0].xs[0] == 6,
            30,
            "the preview to follow the picked checkpoint",
        )
        screen.query_one("#ckpts").move_cursor(row=0)
        await pilot_wait_until(
            pilot, lambda: screen.query_one("#preview").spec.curves[0].xs[0] == 12, 30, "back to 12"
        )
        screen.query_one("#ramp").value = "5"
        screen.query_one("#total").value = "100000"  # so a fast machine cannot finish before the checks below
        await pilot.pause()
        await pilot.click("#go")

        await pilot_wait_until(
            pilot, lambda: run.live and run.step > 14, 120, "the engine to resume and train past 12"
        )
        hello = [r for r in P.read_records(stopped / P.METRICS_FILE).records if r["type"] == P.HELLO][-1]
        assert hello["start_step"] == 12 and hello["resumed_from"] == "checkpoints/step_000012"
        assert not any(r.get("state") == P.CRASHED for r in P.read_records(stopped / P.METRICS_FILE).records)

        # Live now: the keys come back, and a live ramp to a new total moves the total shown.
        await pilot_wait_until(
            pilot, lambda: app.check_action("stop", ()) is True, 10, "stop enabled on the live run"
        )
        app.services.supervisor.send(
            "halt", Ramp(target_lr=1e-3, ramp_steps=0, total_steps=100_000)
        )  # far past what it can reach before the stop below
        await pilot_wait_until(
            pilot, lambda: run.total_steps == 100_000, 30, "the new total in the dashboard"
        )
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, RampScreen)
        seen = run.step
        await pilot_wait_until(pilot, lambda: screen.step > seen, 30, "the dialog's live step to move")
        assert f"step {screen.step}" in str(screen.query_one("#now").render())
        await pilot.press("escape")
        app.services.supervisor.send("halt", Stop())
        await pilot_wait_until(
            pilot, lambda: run.state == "stopped" and not app.services.live_runs(), 180, "stopped"
        )
        assert run.total_steps == 100_000
