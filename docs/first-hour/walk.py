"""A newcomer's first hour, walked by the keys a person presses and captured screen by screen.

    .venv/bin/python docs/first-hour/walk.py [OUT_DIR]      (default: docs/first-hour/)

The real dashboard (Textual's Pilot, 120x36) over a fresh runs folder, with real engines on the CPU
(the test preset: a few seconds a run): the demo starting, `?`, a run launched from the form, pause,
a live LR ramp, stop, resume of the stopped run from its older checkpoint, compare, the report, quit,
and the dashboard reopened. Each step saves an SVG; the README links them. Takes a few minutes on a
2-core machine. It checks as it goes (a step that does not happen stops the walk with what it
awaited), so a screenshot never shows a screen that did not work.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.pilot import FORM_OVERRIDES, type_into  # noqa: E402
from support.wait import pilot_wait_until  # noqa: E402

from nexus_core.commands import Stop  # noqa: E402
from nexus_tui.app import NexusApp  # noqa: E402
from nexus_tui.screens.confirm import ConfirmScreen, QuitScreen  # noqa: E402
from nexus_tui.screens.ramp import RampScreen  # noqa: E402
from nexus_tui.widgets.run_table import RunTable  # noqa: E402

SIZE = (120, 36)


async def walk(root: Path, out: Path, settings: Path) -> list[str]:
    shots: list[str] = []

    def shot(app: NexusApp, name: str) -> None:
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
        shots.append(name)
        print(f"  {name}.svg", flush=True)

    app = NexusApp(root, demo=True, demo_steps=100_000, settings_path=settings)
    app.demo_overrides = FORM_OVERRIDES.split()
    async with app.run_test(size=SIZE) as pilot:
        try:
            await _steps(app, pilot, shot)
        except BaseException:  # a step that did not happen: engines in sessions of their own must not train on
            app.services.shutdown(stop_runs=True)
            raise

    again = NexusApp(root, settings_path=settings)
    async with again.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: again.query_one(RunTable).row_count == 3, 60, "three runs again")
        await pilot.pause(1.5)
        shot(again, "13-reopened")
    return shots


async def _steps(app: NexusApp, pilot: Any, shot: Any) -> None:
    await pilot.pause(0.5)
    shot(app, "01-demo-starting")
    await pilot_wait_until(pilot, lambda: len([r for r in app.store.runs() if r.step > 5]) == 2, 240,
                           "two demo runs training")
    await pilot.pause(1.0)
    shot(app, "02-demo-training")

    await pilot.press("question_mark")
    shot(app, "03-help")
    await pilot.press("escape")

    await pilot.press("n")
    await pilot.pause(0.3)
    shot(app, "04-new-run-form")
    await type_into(pilot, "#name", "mine")
    await type_into(pilot, "#steps", "100000")
    await type_into(pilot, "#overrides", FORM_OVERRIDES + " train.ckpt_every=20 train.keep_last=5")
    await pilot.click("#go")
    table = app.query_one(RunTable)
    run = await pilot_wait_until(pilot, lambda: (r := app.store.get("mine")) is not None and r.step > 25 and r, 240,
                                 "the launched run training")
    await pilot_wait_until(pilot, lambda: table.highlighted == "mine", 20, "the new run selected")
    await pilot.pause(1.0)
    shot(app, "05-launched-and-followed")

    await pilot.press("p")
    await pilot_wait_until(pilot, lambda: run.state == "paused", 60, "paused")
    await pilot.pause(0.5)
    shot(app, "06-paused")
    await pilot.press("p")
    await pilot_wait_until(pilot, lambda: run.state == "running", 60, "going on")

    await pilot.press("r")
    screen = app.screen
    assert isinstance(screen, RampScreen)
    await type_into(pilot, "#target", "4e-3")
    await type_into(pilot, "#ramp", "20")
    await pilot_wait_until(pilot, lambda: screen.preview_points > 0, 60, "the live ramp's preview")
    shot(app, "07-ramp-live")
    await pilot.click("#go")
    await pilot_wait_until(pilot, lambda: len(run.ckpts) >= 2, 240, "two checkpoints")

    await pilot.press("s")
    assert isinstance(app.screen, ConfirmScreen)
    shot(app, "08-stop-confirm")
    await pilot.press("y")
    await pilot_wait_until(pilot, lambda: run.state == "stopped", 120, "the run stopped")

    await pilot.press("r")
    screen = app.screen
    assert isinstance(screen, RampScreen)
    await pilot.press("down")  # the older checkpoint
    older = screen.checkpoints[1]["step"]
    await pilot_wait_until(pilot, lambda: (c := screen.query_one("#preview").spec.curves) and c[0].xs[0] == older,
                           60, "the preview from the older checkpoint")
    shot(app, "09-resume-from-older-checkpoint")
    await pilot.click("#go")
    await pilot_wait_until(pilot, lambda: run.live and run.step > older + 3, 240, "the resumed run training")
    app.services.supervisor.send("mine", Stop())
    await pilot_wait_until(pilot, lambda: run.state == "stopped", 120, "stopped again")

    await pilot.press("space")  # mark it beside the demo's two
    await pilot.press("m")
    await pilot.pause(1.0)
    shot(app, "10-compare")
    await pilot.press("escape")

    await pilot.press("R")
    await pilot_wait_until(pilot, lambda: any("Report saved" in n.message for n in app._notifications), 120,
                           "the report")
    shot(app, "11-report-saved")

    await pilot.press("q")
    assert isinstance(app.screen, QuitScreen)
    shot(app, "12-quit")
    await pilot.press("s")
    await pilot_wait_until(pilot, lambda: not app.is_running, 180, "the app to stop its runs and exit")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="nexus-first-hour-") as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")  # no person's own themes or settings
        root = Path(tmp) / "runs"
        root.mkdir()
        shots = asyncio.run(walk(root, out, Path(tmp) / "settings.json"))
    print(f"{len(shots)} screens in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
