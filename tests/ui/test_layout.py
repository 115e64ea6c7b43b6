"""The layout follows the terminal: long log lines wrap whole, a resize is applied at once (not one
resize late), and the launch form works at 80x24. Driven through the real app with Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.preset import TINY_OVERRIDES
from support.wait import pilot_wait_until

from nexus_tui.app import NexusApp
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.log_pane import LogPane

pytestmark = pytest.mark.timeout(600)  # engines and their checks start slowly on a loaded box

FIX = "FIX-THIS: set optim.lr below 10"


@pytest.fixture
def app(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NexusApp:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return NexusApp(runs_root, settings_path=tmp_path / "settings.json")


def visible_text(log: LogPane) -> str:
    """What the pane shows inside its own width, row by row (cells past the width are not seen)."""
    width = log.scrollable_content_region.width
    return "\n".join(strip.crop(0, width).text for strip in log.lines)


async def test_a_long_log_line_wraps_whole_at_every_width(app: NexusApp) -> None:
    line = "error: " + "the config says something long and detailed " * 4 + FIX + " and then more words"
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#side").active = "tab-log"
        await pilot.pause()
        log = app.query_one(LogPane)
        log.add_line("run", line, "error")
        await pilot_wait_until(pilot, lambda: log.lines, what="the line drawn")
        for size in ((80, 24), (160, 48), (100, 30), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot_wait_until(
                pilot,
                lambda: FIX in visible_text(log).replace("\n", ""),
                10,
                f"the whole line visible at {size}",
            )
            assert max(strip.cell_length for strip in log.lines) <= log.scrollable_content_region.width


async def test_the_layout_follows_each_resize_at_once(app: NexusApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        side = app.query_one("#side")
        await pilot.pause()
        assert not panel.has_class("-narrow")
        wide_side = side.outer_size.width
        for width, height, narrow in ((80, 24, True), (160, 48, False), (80, 24, True), (160, 48, False)):
            await pilot.resize_terminal(width, height)
            await pilot.pause()
            assert app.size == (width, height)
            assert panel.has_class("-narrow") is narrow, f"after the resize to {width}x{height}"
            await pilot_wait_until(
                pilot,
                lambda n=narrow: (side.outer_size.width == 34) is n,
                5,
                f"the side pane at {width}x{height}",
            )
            if not narrow:
                assert side.outer_size.width == wide_side
        # A dialog open during the resize must not take the layout class with it.
        await pilot.press("n")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the launch form")
        await pilot.resize_terminal(80, 24)
        await pilot.press("escape")
        await pilot_wait_until(
            pilot, lambda: not isinstance(app.screen, LaunchScreen), 10, "the form to close"
        )
        await pilot.pause()
        assert panel.has_class("-narrow") and side.outer_size.width == 34


def on_screen(app: NexusApp, widget) -> bool:
    """The widget lies wholly inside the terminal and is what a click at its centre would hit."""
    region = widget.region
    screen = app.screen.region
    if not (region.width and region.height and screen.contains_region(region)):
        return False
    hit, _ = app.screen.get_widget_at(*region.center)
    return hit is widget or widget in hit.ancestors_with_self


async def test_at_80x24_the_launch_form_scrolls_and_launch_refuses_a_bad_override_then_starts(
    app: NexusApp, runs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import Button, Input, Static

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        form = await pilot_wait_until(
            pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen, 10, "the form"
        )
        go = form.query_one("#go", Button)
        await pilot.pause()
        assert on_screen(app, go), f"Launch at {go.region} is not visible in {app.screen.region}"
        overrides = form.query_one("#overrides", Input)
        for _ in range(10):  # Tab, as a person would, to the last field: the body scrolls to show it
            if overrides.has_focus:
                break
            await pilot.press("tab")
        assert overrides.has_focus
        await pilot_wait_until(
            pilot,
            lambda: on_screen(app, overrides) and on_screen(app, go),
            10,
            "the field scrolled into view",
        )

        # Refused by the engine's own rules (a key that does not exist, a value out of range): the
        # form stays open with the engine's line, and no folder appears.
        # Submitted with enter in the field, as a person typing there does (a click lands wherever the
        # button is at that moment, and the error line above the buttons moves them as it changes).
        for bad, said in (("optim.nope=1", "unknown key optim.nope"), ("model.n_layers=-3", "n_layers")):
            overrides.value = bad
            form.query_one("#name", Input).value = "refused"
            overrides.focus()
            await pilot.press("enter")
            error = form.query_one("#error", Static)
            await pilot_wait_until(
                pilot, lambda s=said, e=error: s in str(e.render()), 120, f"the engine's refusal of {bad}"
            )
            assert isinstance(app.screen, LaunchScreen) and on_screen(app, error)
            assert not (runs_root / "refused").exists()

        overrides.value = " ".join(TINY_OVERRIDES)
        form.query_one("#steps", Input).value = "2"
        form.query_one("#name", Input).value = "ok-run"
        overrides.focus()
        await pilot.press("enter")
        try:
            await pilot_wait_until(
                pilot, lambda: not isinstance(app.screen, LaunchScreen), 120, "the form to close"
            )
        except AssertionError as e:
            raise AssertionError(
                f"{e}; the form says {str(form.query_one('#error', Static).render())!r}"
            ) from None
        await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("ok-run")) and r.state in ("finished", "stopped"),
            240,
            "the launched run to finish",
        )


async def test_a_launch_the_engine_would_refuse_is_one_line_and_creates_nothing(
    app: NexusApp, runs_root: Path
) -> None:
    """The launch path itself (not only the form) asks the engine first: 4 kv heads do not divide 3."""
    async with app.run_test(size=(120, 40)) as pilot:
        app.launch("tiny", "bad", "cpu", 10, ["model.n_heads=3"])
        log = app.query_one(LogPane)
        await pilot_wait_until(
            pilot,
            lambda: any("launch failed" in line and "n_heads" in line for line in log.lines_written),
            60,
            "the refusal in the log",
        )
        assert not (runs_root / "bad").exists() and "bad" not in app.store
