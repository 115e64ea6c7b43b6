"""Every key on a script Nexus did not write, pressed in the real app (Pilot) on a real process: an
unchanged wandb-style script (`import nexus as wandb`; init and log only). Each key does what it says
or refuses at once with the reason and the lines to add."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.reporter import SCRIPTS
from support.wait import pilot_wait_until

from nexus_core.protocol import METRICS_FILE, read_records, read_status
from nexus_tui.app import NexusApp
from nexus_tui.screens.confirm import ConfirmScreen
from nexus_tui.widgets.run_table import RunTable


def _logged(run_dir: Path) -> int:
    """The last step the script's loop got past (it appends each step after its log() call)."""
    path = Path(str(run_dir) + ".logged")
    steps = path.read_text().split() if path.exists() else []
    return int(steps[-1]) if steps else 0


@pytest.mark.slow
async def test_every_key_on_an_unchanged_wandb_script(app: NexusApp, runs_root: Path) -> None:
    name = "wandb-style"
    run_dir = runs_root / name
    said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
    async with app.run_test(size=(120, 40)) as pilot:
        app.launch(name=name, device="cpu", command=[sys.executable, str(SCRIPTS / "wandb_loop.py"), "plain"])
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get(name)) is not None and r.step > 3 and r,
            90,
            "the script's first steps",
        )
        app.query_one(RunTable).select_run(name)

        # p holds the loop inside its log(); p again lets it go on (the spec's `resume`).
        await pilot.press("p")
        await pilot_wait_until(pilot, lambda: run.state == "paused", 30, "state paused")
        held = _logged(run_dir)
        await pilot.pause(1.0)
        assert _logged(run_dir) <= held + 1 and run.state == "paused"
        await pilot.press("p")
        await pilot_wait_until(
            pilot, lambda: run.state == "running" and _logged(run_dir) > held + 3, 30, "steps after resume"
        )

        # c and e: refused at the key, at once, with the lines the script would add; nothing is sent.
        await pilot.press("c")
        await pilot_wait_until(
            pilot, lambda: any("@run.on_checkpoint" in m for m in said()), 5, "the c refusal"
        )
        await pilot.press("e")
        await pilot_wait_until(pilot, lambda: any("@run.on_eval" in m for m in said()), 5, "the e refusal")
        assert not [r for r in read_records(run_dir / METRICS_FILE).records if r.type in ("ckpt", "eval")]

        # s: the dialog promises what happens to this script (no checkpoint), and it happens: the loop
        # ends at its next log() (a KeyboardInterrupt, as W&B's stop does), and the run is `stopped`.
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        question = app.screen.question
        assert "KeyboardInterrupt" in question and "checkpoints" not in question, question
        await pilot.press("y")
        await pilot_wait_until(
            pilot, lambda: run.state == "stopped" and not app.services.live_runs(), 60, "the script stopped"
        )
        status = read_status(run_dir)
        assert status["state"] == "stopped" and "stop command" in status["reason"]
        # It ended inside the log() of the step the stop reached (not at the end of its 10**7 steps):
        # its loop never got past that call, and no later step was logged. (How many steps the command
        # took to arrive depends on the machine's load; tests/integration/test_reporter_stop.py checks
        # it against the step the run answered the command at.)
        records = read_records(run_dir / METRICS_FILE).records
        assert max(r.step for r in records if r.type == "metric") == status["step"]
        assert _logged(run_dir) == status["step"] - 1
        table = app.query_one(RunTable)
        await pilot_wait_until(
            pilot,
            lambda: table.get_cell(name, "state").plain.startswith("stopped"),
            10,
            "stopped in the table",
        )


@pytest.mark.slow
async def test_every_key_on_a_plain_loop_that_handles_its_commands(app: NexusApp, runs_root: Path) -> None:
    """tests/support/scripts/reported_loop.py: a plain PyTorch loop with checkpoint, eval and sample
    handlers that reads run.should_stop. c, e and s do what it registered; the dialog says so."""
    name = "plain-loop"
    run_dir = runs_root / name
    async with app.run_test(size=(120, 40)) as pilot:
        app.launch(
            name=name, device="cpu", command=[sys.executable, str(SCRIPTS / "reported_loop.py"), "steer"]
        )
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get(name)) is not None and r.step > 3 and r,
            90,
            "the loop's first steps",
        )
        await pilot_wait_until(
            pilot, lambda: (run.hello or {}).get("stop") == "flag", 30, "its hello: it reads the flag"
        )
        app.query_one(RunTable).select_run(name)

        await pilot.press("c")
        await pilot_wait_until(pilot, lambda: run.ckpts, 30, "a ckpt record")
        assert (run_dir / run.ckpts[-1].path).is_file() and run.ckpts[-1].path.startswith("ckpt-")
        await pilot.press("e")
        await pilot_wait_until(pilot, lambda: run.best_val_loss == 0.5, 30, "the handler's eval")

        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        question = app.screen.question
        assert "should_stop" in question and "checkpoints" not in question, question
        await pilot.press("y")
        await pilot_wait_until(
            pilot, lambda: run.state == "stopped" and not app.services.live_runs(), 60, "the loop stopped"
        )
        assert (run_dir / "loop-ended").is_file()  # its own check of should_stop ended it
        assert read_status(run_dir)["reason"] == "stop command"
