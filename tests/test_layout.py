"""The layout follows the terminal: long log lines wrap whole, a resize is applied at once (not one
resize late), and the launch form works at 80x24. Driven through the real app with Pilot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nexus_tui.app import NexusApp
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.log_pane import LogPane

pytestmark = pytest.mark.timeout(120)

FIX = "FIX-THIS: set optim.lr below 10"


@pytest.fixture
def app(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NexusApp:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return NexusApp(runs_root, settings_path=tmp_path / "settings.json")


async def wait_for(pilot, check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


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
        await wait_for(pilot, lambda: log.lines, what="the line drawn")
        for size in ((80, 24), (160, 48), (100, 30), (80, 24)):
            await pilot.resize_terminal(*size)
            await wait_for(pilot, lambda: FIX in visible_text(log).replace("\n", ""), 10,
                           f"the whole line visible at {size}")
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
            await wait_for(pilot, lambda: (side.outer_size.width == 34) is narrow, 5, f"the side pane at {width}x{height}")
            if not narrow:
                assert side.outer_size.width == wide_side
        # A dialog open during the resize must not take the layout class with it.
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the launch form")
        await pilot.resize_terminal(80, 24)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LaunchScreen), 10, "the form to close")
        await pilot.pause()
        assert panel.has_class("-narrow") and side.outer_size.width == 34
