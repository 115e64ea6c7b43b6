"""The hostile-folder test's dashboard half (docs/SECURITY.md "The two doors"): the real app opened on
a runs folder in which each file of a real run in turn is a symlink out of the folder, a FIFO,
/dev/zero or a lying variant, and a person's keys pressed on every run: r (and, for the run whose
engine.log is hostile, the resume itself), g, e, R. What must hold: the first frame draws, no key
crashes the app or hangs it (q still quits), and nothing is written outside the run folders (the
canary folder every outward link points at is compared byte for byte)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.hostile_folders import FILES, canary, make_variant, snapshot, train_base
from support.wait import pilot_wait_until

from nexus_tui.app import NexusApp
from nexus_tui.screens.confirm import ConfirmScreen
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.run_table import RunTable


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_base(tmp_path_factory.mktemp("base"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["link_out", "fifo", "lying"])
async def test_every_key_on_every_hostile_run(
    trained: Path, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    outside = canary(tmp_path / "outside")
    root = tmp_path / "runs"
    root.mkdir()
    names = [make_variant(trained, root, what, kind, outside).name for what in FILES]
    before = snapshot(outside)

    app = NexusApp(root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(140, 45)) as pilot:
        table = app.query_one(RunTable)
        await pilot_wait_until(
            pilot, lambda: table.row_count >= len(names) - 1, 60, "the readable runs listed"
        )
        for row in range(table.row_count):
            table.move_cursor(row=row)
            await pilot.pause()
            name = table.highlighted
            assert name is not None
            await pilot.press("r")
            await pilot.pause()
            if isinstance(app.screen, ConfirmScreen):  # a foreign folder: say no
                await pilot.press("n")
            elif isinstance(app.screen, RampScreen):
                if name == f"log-{kind}":  # the resume itself: engine.log must be refused, not followed
                    app.screen.query_one("#ramp").value = "0"
                    app.screen.query_one("#total").value = "8"
                    await pilot.pause()
                    await pilot.click("#go")
                    if kind == "lying":  # a regular file of escape codes: the resume goes on, and ends
                        await pilot_wait_until(
                            pilot,
                            lambda name=name: (
                                (r := app.store.get(name)) is not None
                                and r.step >= 8
                                and not app.services.live_runs()
                            ),
                            180,
                            "the resumed run to finish",
                        )
                    else:
                        await pilot_wait_until(
                            pilot,
                            lambda: any(
                                "resume failed" in line and "engine.log" in line
                                for line in app.query_one("#log").lines_written
                            ),
                            60,
                            "the refused log said in one line",
                        )
                else:
                    await pilot.press("escape")
            await pilot_wait_until(pilot, lambda: len(app.screen_stack) == 1, 10, "back on the main screen")
            for key in ("g", "e", "R"):
                await pilot.press(key)
                await pilot.pause()
                if len(app.screen_stack) > 1:
                    await pilot.press("escape")
        await app.workers.wait_for_complete()
        assert snapshot(outside) == before, "a key wrote outside the run folders"
        await pilot.press("q")
    assert app.return_code in (0, None)
    assert not app.services.live_runs()
