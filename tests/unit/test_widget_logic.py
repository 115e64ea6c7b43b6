"""What the widgets show, without drawing them: number formats, the settings file, theme palettes."""

from __future__ import annotations

import json
from pathlib import Path

from nexus_tui import format as fmt
from nexus_tui.settings import Settings, load_settings, save_settings
from nexus_tui.themes import PALETTES, THEMES, next_theme, palette_for

PALETTE = PALETTES["nexus-dark"]


def test_format_never_prints_none_or_nan() -> None:
    assert fmt.loss(None) == fmt.DASH and fmt.loss(float("nan")) == "NaN" and fmt.loss(1.23456) == "1.2346"
    assert fmt.count(1234) == "1.2k" and fmt.count(3.4e6) == "3.4M" and fmt.count(None) == fmt.DASH
    assert fmt.duration(75) == "1m15s" and fmt.duration(4000) == "1h06m" and fmt.duration(None) == fmt.DASH
    assert fmt.ppl(0.0) == "1.00" and fmt.ppl(float("inf")) == fmt.DASH


def test_settings_round_trip_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "nexus" / "settings.json"
    assert load_settings(path) == (Settings(), "")
    assert save_settings(Settings(theme="nexus-light", ema=0.3, x_axis="tokens", window=500), path) == ""
    loaded, err = load_settings(path)
    assert err == "" and loaded.theme == "nexus-light" and loaded.x_axis == "tokens" and loaded.window == 500
    path.write_text(json.dumps({"ema": 7, "x_axis": "bogus", "future_key": 1}))
    loaded, err = load_settings(path)
    assert err == "" and loaded.ema == 0.99 and loaded.x_axis == "step"
    path.write_text("{not json")
    loaded, err = load_settings(path)
    assert loaded == Settings() and "unreadable" in err and "\n" not in err


def test_themes_have_palettes_and_cycle() -> None:
    names = [t.name for t in THEMES]
    assert len(names) >= 3 and all(n in PALETTES for n in names)
    assert [next_theme(n) for n in names] == names[1:] + names[:1]
    assert palette_for("textual-light") is PALETTES["nexus-light"]
    assert PALETTE.hex(0) == "#4ea8de" and PALETTE.run(len(PALETTE.runs)) == PALETTE.run(0)
