"""Media are seen, not only stored: a run logged through `import nexus as wandb` with a table, a
histogram over steps, a picture and text; the dashboard opened on it, a person clicks the Media tab
and reads them on screen (the picture as its text stand-in: file, size, caption)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.wait import pilot_wait_until
from textual.widgets import TabbedContent

import nexus as wandb
from nexus_tui.app import NexusApp
from nexus_tui.widgets.media_pane import MediaPane


def _logged_run(root: Path) -> None:
    run = wandb.init(root=root, name="media", config={"lr": 0.1})
    rng = np.random.default_rng(0)
    for step in range(1, 4):
        wandb.log({"loss": 1.0 / step, "weights": rng.normal(size=500) * step, "note": f"epoch {step} done"})
    wandb.log(
        {
            "preds": wandb.Table(columns=["prompt", "completion"], data=[["2+2", "4"], ["3+5", "8"]]),
            "sample": wandb.Image(rng.random((6, 10, 3)), caption="a noisy picture"),
        }
    )
    run.finish()


async def test_media_tab_shows_table_histograms_image_and_text(app: NexusApp, runs_root: Path) -> None:
    _logged_run(runs_root)
    async with app.run_test(size=(140, 45)) as pilot:
        pane = app.query_one(MediaPane)
        await pilot_wait_until(pilot, lambda: any("sample" in line for line in pane.shown), 30, "the picture")
        tabs = app.query_one("#side", TabbedContent)
        await pilot_wait_until(pilot, lambda: tabs.active == "tab-telemetry", 30, "the side tabs")
        tab = app.query_one("#--content-tab-tab-media")
        await pilot_wait_until(pilot, lambda: tab.region.width > 0, 30, "the Media tab's label")
        for _ in range(60):  # a click while the app is still busy with its first frames can be lost
            await pilot.click(tab)
            await pilot.pause(0.5)
            if tabs.active == "tab-media":
                break
        assert tabs.active == "tab-media"

        def on_screen() -> str:
            return "\n".join(line.text for line in pane.lines)

        await pilot_wait_until(
            pilot,
            lambda: pane.region.width > 0 and "epoch 3 done" in on_screen(),
            30,
            f"the Media tab drawn ({len(pane.lines)} lines, {pane.region})",
        )
        screen = on_screen()
        assert "media · step 4 · table preds" in screen
        assert "prompt │ completion" in screen and "3+5    │ 8" in screen
        hist = [line for line in pane.shown if line.startswith(("█", "▁", "▂", "▃", "▄", "▅", "▆", "▇", " "))]
        assert len(hist) == 3 and all("n=500" in line for line in hist)  # three steps of `weights`
        assert "media · step 4 · image sample" in screen
        assert "media/sample_4_1.png 10×6 “a noisy picture”" in screen
        assert "epoch 3 done" in screen


async def test_a_step_metric_is_offered_as_the_x_axis(app: NexusApp, runs_root: Path) -> None:
    """nanoGPT's loop logs every 10 iterations with no step=, so its records' steps count logs; it
    says define_metric("*", step_metric="iter"). Pressing x reaches `iter` and the loss is drawn
    against the iterations, not the log count."""
    from nexus_tui.widgets.charts_panel import ChartsPanel

    run = wandb.init(root=runs_root, name="nanogpt", config={"lr": 6e-4})
    wandb.define_metric("iter")
    wandb.define_metric("*", step_metric="iter")
    for it in range(0, 200, 10):
        wandb.log({"iter": it, "train/loss": 4.0 - it / 100, "lr": 6e-4})
    run.finish()
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot, lambda: any(len(c.xs) for c in panel.chart("loss").spec.curves), 30, "the loss curve"
        )
        seen = []
        for _ in range(5):
            await pilot.press("x")
            seen.append(app.x_axis)
            if app.x_axis == "iter":
                break
        assert seen == ["tokens", "time", "iter"]

        def drawn() -> tuple[float, float] | None:
            xs = [x for c in panel.chart("loss").spec.curves for x in c.xs]
            return (min(xs), max(xs)) if xs else None

        await pilot_wait_until(pilot, lambda: drawn() == (0.0, 190.0), 30, "the loss drawn over iter 0..190")
        assert panel.chart("loss").spec.xlabel == "iter"
        await pilot.press("x")
        assert app.x_axis == "step"
        await pilot_wait_until(pilot, lambda: drawn() == (1.0, 20.0), 30, "back to the log count")
