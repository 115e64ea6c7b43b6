"""`r` on live runs Nexus did not write draws the ramp preview: a plain PyTorch loop with `import nexus`,
a real HF Trainer with the Nexus callback and a real Lightning fit (subprocesses, as people run them),
pressed as a person would in the real app. The preview starts from the run's last LR and says what it
assumes after the ramp: the schedule the run published (HF's LambdaLR, the loop's), or a constant LR
where the future is unknown (this Lightning fit has no scheduler)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.reporter import SCRIPTS, Script
from support.wait import pilot_wait_until

from nexus_tui.app import NexusApp
from nexus_tui.screens.ramp import RampScreen
from nexus_tui.widgets.run_table import RunTable

LOOPS = SCRIPTS / "adapter_loops.py"


@pytest.mark.slow
async def test_r_draws_the_preview_on_a_loop_an_hf_trainer_and_a_lightning_fit(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("lightning")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    scripts = {
        "loop": Script(runs_root / "loop", "steer"),
        "hf": Script(runs_root / "hf", "hf", LOOPS),
        "pl": Script(runs_root / "pl", "lightning", LOOPS),
    }
    expect = {
        "loop": "the run's LambdaLR schedule",
        "hf": "the run's LambdaLR schedule",
        "pl": "assumes the LR stays at the target after the ramp (no torch LR scheduler",
    }
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            for name, script in scripts.items():
                run = await pilot_wait_until(
                    pilot,
                    lambda n=name: (
                        (r := app.store.get(n)) is not None
                        and r.live
                        and r.step >= 3
                        and r.lr
                        and r.hello
                        and r.hello.get("lr_schedule")
                        and r
                    ),
                    240,
                    f"{name} live, with its LR and its published schedule",
                )
                table = app.query_one(RunTable)
                table.select_run(name)
                await pilot_wait_until(
                    pilot, lambda n=name, t=table: t.highlighted == n, 10, f"{name} highlighted"
                )
                await pilot.press("r")
                screen = app.screen
                assert isinstance(screen, RampScreen), f"{name}: {[n.message for n in app._notifications]}"
                await pilot_wait_until(
                    pilot, lambda s=screen: s.preview_points > 0, 60, f"{name}'s preview drawn"
                )
                assert expect[name] in screen.preview_note, (name, screen.preview_note, script.output())
                assert expect[name] in str(screen.query_one("#assumes").render())
                assert not str(screen.query_one("#error").render()), name
                curve = screen.query_one("#preview").spec.curves[0]
                assert min(curve.xs) <= run.step <= max(curve.xs)
                await pilot.press("escape")
                await pilot_wait_until(
                    pilot, lambda: not isinstance(app.screen, RampScreen), 10, "dialog closed"
                )
    finally:
        for script in scripts.values():
            script.kill()
