"""The dashboard's keys on a run written in C from docs/PROTOCOL.md alone (support/c_writer), pressed as a
person would in the real app: pause, resume, checkpoint, eval, ramp (its preview drawn on the schedule
the writer published) and stop each do what they say, and `g` (a command the writer does not list)
is refused at once with the reason."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support.cwriter import build, start
from support.wait import pilot_wait_until

from nexus_core import protocol as P
from nexus_tui.app import NexusApp
from nexus_tui.screens.confirm import ConfirmScreen
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.run_table import RunTable


def _records(run_dir: Path, kind: str) -> list[dict]:
    return [r.to_dict() for r in P.read_records(run_dir / P.METRICS_FILE).records if r.type == kind]


@pytest.mark.slow
async def test_every_key_steers_the_c_writer(tmp_path: Path, runs_root: Path) -> None:
    binary = build(tmp_path)
    run_dir = runs_root / "cw"
    proc = start(binary, run_dir)
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            run = await pilot_wait_until(
                pilot,
                lambda: (r := app.store.get("cw")) is not None and r.live and r.step >= 3 and r,
                60,
                "the C writer live in the dashboard",
            )
            table = app.query_one(RunTable)
            table.select_run("cw")
            await pilot_wait_until(pilot, lambda: table.highlighted == "cw", 10, "cw highlighted")

            await pilot.press("p")
            await pilot_wait_until(pilot, lambda: run.state == P.PAUSED, 30, "paused")
            held = run.step
            await pilot.press("p")
            # A spec-following writer lists `resume` (the spec's one name): the key resumes it.
            await pilot_wait_until(
                pilot, lambda: run.state == P.RUNNING and run.step > held, 30, "training again"
            )
            assert not any("does not take" in m for m in said()), said()

            await pilot.press("c")
            await pilot_wait_until(pilot, lambda: run.ckpts, 30, "the checkpoint record")
            assert (run_dir / run.ckpts[-1].path).is_file()
            await pilot.press("e")
            await pilot_wait_until(pilot, lambda: _records(run_dir, P.EVAL), 30, "the eval record")

            await pilot.press("g")
            await pilot_wait_until(
                pilot,
                lambda: any("cw does not take generate" in m for m in said()),
                10,
                "generate refused at the key",
            )
            assert len(app.screen_stack) == 1, "no generate dialog"

            await pilot.press("r")
            screen = app.screen
            assert isinstance(screen, RampScreen)
            await pilot_wait_until(pilot, lambda: screen.preview_points > 0, 30, "the ramp preview")
            assert "cosine (C)" in screen.preview_note, screen.preview_note
            screen.query_one("#target").value = "0.05"
            screen.query_one("#ramp").value = "5"
            await pilot.pause()
            await pilot.click("#go")
            await pilot_wait_until(
                pilot,
                lambda: any(
                    math.isclose(m.get("lr", 0), 0.05, rel_tol=1e-9) for m in _records(run_dir, P.METRIC)
                ),
                30,
                "the LR at 0.05",
            )

            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.click("#yes")
            await pilot_wait_until(pilot, lambda: run.state == P.STOPPED, 30, "stopped")
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)
