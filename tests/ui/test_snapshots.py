"""Pictures of the dashboard at fixed sizes from deterministic, hand-made records.

No engine and nothing live in the picture: the side pane shows the samples tab (telemetry and log
lines carry live numbers and clock times). Update with `pytest tests/ui/test_snapshots.py --snapshot-update`
after a deliberate visual change, and look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.records import falling_run
from textual.widgets import Input, TabbedContent

import nexus_core.state
from nexus_core.recordtypes import Sample
from nexus_tui.app import NexusApp
from nexus_tui.widgets.alert_bar import AlertBar
from nexus_tui.widgets.samples_pane import SamplesPane


@pytest.fixture(autouse=True)
def _never_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-made records carry fixed times, long past: a picture must not depend on how long ago
    that is, so silence never reads as stalled here (tests/ui/test_run_truth.py tests stalled)."""
    monkeypatch.setattr(nexus_core.state, "STALL_FLOOR_S", float("inf"))


def make_app(tmp_path: Path, theme: str = "nexus-dark") -> NexusApp:
    settings = tmp_path / "settings.json"
    settings.write_text(f'{{"theme": "{theme}"}}')
    return NexusApp(tmp_path / "runs", settings_path=settings)


async def feed(pilot) -> None:
    app: NexusApp = pilot.app
    app.store.ingest("alpha", None, falling_run("alpha", 300, total=400))
    app.store.ingest("beta", None, falling_run("beta", 120, total=400))
    pane = app.query_one(SamplesPane)
    pane.add_sample("alpha", "#4ea8de", Sample(step=100, prompt="def ", text="def se(f, x):\n    retu"))
    pane.add_sample(
        "alpha", "#4ea8de", Sample(step=200, prompt="def ", text="def set(self, x):\n    return x")
    )
    app.query_one(AlertBar).raise_alert("beta: nan at step 77: loss is NaN")
    app.query_one("#side", TabbedContent).active = "tab-samples"
    app._dirty = True
    await pilot.pause(0.6)


def test_dashboard_wide(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(140, 45), run_before=feed)


def test_dashboard_80x24(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=feed)


async def feed_then_log_scale(pilot) -> None:
    await feed(pilot)
    await pilot.press("l")
    await pilot.pause(0.6)  # the charts redraw on the next timer tick, not on the key


def test_dashboard_light_theme_log_scale(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(
        make_app(tmp_path, "nexus-light"), terminal_size=(120, 40), run_before=feed_then_log_scale
    )


async def feed_then_generate(pilot) -> None:
    await feed(pilot)
    await pilot.press("g")
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor makes the picture differ run to run
    await pilot.pause(0.3)


def test_generate_dialog(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(
        make_app(tmp_path, "nexus-contrast"), terminal_size=(100, 30), run_before=feed_then_generate
    )
