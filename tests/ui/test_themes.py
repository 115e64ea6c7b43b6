"""Themes are files: the built-in ones ship in themes/, a person's own come from their config folder,
and a bad theme file is skipped with one line, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import ROOT
from textual.color import Color

from nexus_tui.app import NexusApp
from nexus_tui.settings import load_settings
from nexus_tui.themes import MAX_THEME_BYTES, PALETTES, THEMES, builtin_themes, palette_for

MINE = """
name = "my-sunset"
dark = true

[colors]
primary = "#FF5500"
background = "#102030"

[chart]
runs = ["#ABCDEF", "#123456"]
faint = "#333333"
forecast = "#EEEEEE"
"""


def test_builtin_themes_are_the_files_in_themes_folder() -> None:
    files = sorted(p.stem for p in (ROOT / "themes").glob("*.toml"))
    assert sorted(t.theme.name for t in builtin_themes()) == files
    assert [t.name for t in THEMES][:3] == ["nexus-dark", "nexus-light", "nexus-contrast"]
    # The colours come from the file, not from code.
    text = (ROOT / "themes" / "nexus-light.toml").read_text()
    assert '"#1D5FA8"' in text and THEMES[1].primary == "#1D5FA8"
    assert PALETTES["nexus-light"].faint == (0xBE, 0xC2, 0xCA)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "config" / "nexus" / "themes"
    folder.mkdir(parents=True)
    return folder


async def test_user_theme_joins_the_cycle_is_applied_and_remembered(config: Path, tmp_path: Path) -> None:
    (config / "sunset.toml").write_text(MINE)
    root = tmp_path / "runs"
    root.mkdir()
    settings = tmp_path / "settings.json"
    app = NexusApp(root, settings_path=settings)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(len(THEMES) + 1):
            if app.theme == "my-sunset":
                break
            await pilot.press("t")
        assert app.theme == "my-sunset"
        await pilot.pause()
        assert app.screen.styles.background == Color.parse("#102030")
        assert palette_for(app.theme).hex(1) == "#123456"
        await pilot.press("t")
        assert app.theme == "nexus-dark"  # wraps back to the first built-in one
        await pilot.press(*["t"] * len(THEMES))
        assert app.theme == "my-sunset"
    assert load_settings(settings)[0].theme == "my-sunset"
    again = NexusApp(root, settings_path=settings)
    async with again.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert again.theme == "my-sunset"
        assert again.screen.styles.background == Color.parse("#102030")


BAD = {
    "garbage.toml": b"\x00\xff not toml [[[",
    "types.toml": b'name = "typed"\ndark = "yes"\n[colors]\nprimary = "#FF0000"\n',
    "colour.toml": b'name = "colour"\n[colors]\nprimary = "not-a-colour"\n',
    "chart.toml": b'name = "chart"\n[colors]\nprimary = "#FF0000"\n[chart]\nruns = []\nfaint = "#000000"\nforecast = "#000000"\n',
    "extra.toml": b'name = "extra"\nsurprise = 1\n[colors]\nprimary = "#FF0000"\n',
    "taken.toml": b'name = "nexus-dark"\n[colors]\nprimary = "#FF0000"\n',
    "evil.toml": b'name = "\\u001b[31mred"\n[colors]\nprimary = "#FF0000"\n',
    "huge.toml": b'name = "huge"\n[colors]\nprimary = "#FF0000"\n#' + b"x" * MAX_THEME_BYTES + b"\n",
}


async def test_bad_user_theme_files_are_skipped_with_one_line_each(config: Path, tmp_path: Path) -> None:
    for name, data in BAD.items():
        (config / name).write_bytes(data)
    os.mkfifo(config / "fifo.toml")  # opening it for reading would block a naive reader forever
    (config / "good.toml").write_text(MINE)
    root = tmp_path / "runs"
    root.mkdir()
    app = NexusApp(root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        lines = [line for line in app.query_one("#log").lines_written if "theme file" in line]
        skipped = {Path(line.split("theme file ", 1)[1].split(" ", 1)[0]).name for line in lines}
        assert skipped == {*BAD, "fifo.toml"}, lines
        assert all("\n" not in line and "\x1b" not in line and line.endswith("; skipped") for line in lines)
        assert any("fifo.toml is not a regular file" in line for line in lines)
        assert any("taken.toml" in line and "already a theme" in line for line in lines)
        assert "my-sunset" in app.available_themes  # the good file beside them still loads
        for name in ("typed", "colour", "chart", "extra", "huge"):
            assert name not in app.available_themes
