"""The screen explains itself: `?` (and F1) lists every key with whether it works on the selected run
in its state and why not; the footer keeps the essentials at 80x24; T/S/L reach the side tabs; `t`
says which theme is on. Driven by the keys a person presses, on a real finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import run_engine_ok
from support.preset import TINY
from support.wait import pilot_wait_until
from textual.widgets import TabbedContent
from textual.widgets._footer import FooterKey

from nexus_tui.app import NexusApp
from nexus_tui.widgets.run_table import RunTable


@pytest.fixture
def finished_run(runs_root: Path) -> Path:
    run = runs_root / "done"
    run_engine_ok(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        *TINY,
        "--set",
        "train.ckpt_every=3",
        "--set",
        "train.eval_every=0",
    )
    return run


def rows_of(app: NexusApp) -> dict[str, tuple[str, str]]:
    table = app.screen.query_one("#keys")
    out = {}
    for i in range(table.row_count):
        key, what, status = (c.plain for c in table.get_row_at(i))
        out[key] = (what, status)
    return out


@pytest.mark.slow
async def test_question_mark_lists_the_keys_that_work_on_the_selected_run_and_why_not(
    app: NexusApp, finished_run: Path
) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot_wait_until(
            pilot, lambda: app.query_one(RunTable).highlighted == "done", 30, "the run read"
        )
        # The footer keeps the essentials at 80 columns, Quit and Compare included.
        shown = {k.key: k.region for k in app.query(FooterKey)}
        for key in ("question_mark", "n", "p", "r", "s", "q", "m"):
            assert key in shown and 0 < shown[key].right <= 80, (key, shown.get(key))

        await pilot.press("question_mark")
        assert "Keys — on done (finished)" in str(app.screen.query_one(".title").render())
        rows = rows_of(app)
        assert rows["p"][1].startswith("✗ finished: only a live run"), rows["p"]
        assert rows["s"][1].startswith("✗"), rows["s"]
        assert rows["r"] == ("resume it from a checkpoint, with an LR ramp", "✓ works")
        assert "newest checkpoint (step 6)" in rows["e"][0] and rows["e"][1] == "✓ works"
        assert rows["T"][1] == "✓ works" and "Log" in rows["L"][0]
        await pilot.press("escape")
        assert len(app.screen_stack) == 1
        await pilot.press("f1")
        assert len(app.screen_stack) == 2
        await pilot.press("question_mark")
        assert len(app.screen_stack) == 1

        # Keys for the side tabs; t says which theme is on.
        side = app.query_one("#side", TabbedContent)
        for key, tab in (("L", "tab-log"), ("S", "tab-samples"), ("M", "tab-media"), ("T", "tab-telemetry")):
            await pilot.press(key)
            assert side.active == tab, key
        await pilot.press("t")
        await pilot.pause()
        assert any(n.message.startswith(f"Theme: {app.theme}") for n in app._notifications)


async def test_help_with_no_run_says_what_needs_one(app: NexusApp) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        rows = rows_of(app)
        assert rows["s"][1] == "✗ no run selected (n starts one)"
        assert rows["n"][1] == "✓ works" and rows["m"][1] == "✗ no runs yet"
