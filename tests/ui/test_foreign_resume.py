"""`r` on a foreign run folder asks first (nexus_core/trust.py): a confirm dialog says why the folder is
not trusted and lists what a resume reads and writes; `n` leaves it alone, `y` goes on to the resume
dialog. Driven by Pilot with the keys a person presses, on a real run trained by a real engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import run_engine
from support.preset import TINY
from support.wait import pilot_wait_until
from textual.widgets import Label

from nexus_core import protocol as P
from nexus_tui.app import NexusApp
from nexus_tui.screens.confirm import ConfirmScreen
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.run_table import RunTable


@pytest.mark.slow
async def test_r_on_a_foreign_folder_asks_first_and_lists_the_files(
    runs_root: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    secret = tmp_path_factory.mktemp("home") / "id_ed25519"
    secret.write_text("PRIVATE\n" * 500)
    run = runs_root / "planted"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        "--stop-at",
        "4",
        *TINY,
        "--set",
        "train.ckpt_every=4",
        "--set",
        "train.eval_every=0",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    config = (run / P.CONFIG_FILE).read_text()
    (run / P.CONFIG_FILE).write_text(config.replace('source = "stdlib"', f"source = {str(secret)!r}"))

    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("planted")) is not None and r.ckpts,
            30,
            "the stopped run read from its folder",
        )
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).highlighted == "planted", 10, "highlighted"
        )

        await pilot.press("r")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the trust question")
        text = "\n".join(str(label.render()) for label in app.screen.query(Label))
        assert "not yours to trust" in text and str(secret) in text, text
        assert f"writes {run / P.METRICS_FILE}" in text and f"reads {run / P.CONFIG_FILE}" in text, text
        await pilot.press("n")
        await pilot_wait_until(pilot, lambda: len(app.screen_stack) == 1, 10, "the question gone")
        assert not isinstance(app.screen, RampScreen)

        await pilot.press("r")
        await pilot_wait_until(
            pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the trust question again"
        )
        await pilot.press("y")
        await pilot_wait_until(
            pilot, lambda: isinstance(app.screen, RampScreen), 10, "the resume dialog after yes"
        )
