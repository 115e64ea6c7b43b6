"""clean_text, the one gate between text from a run and the terminal: escape sequences and markup go, printable Unicode stays."""

from __future__ import annotations

import pytest
from support.hostile import C1, CSI, FORBIDDEN, OSC_CLIP, OSC_TITLE

from nexus_core.protocol import clean_data, clean_text


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("plain name", "plain name"),
        (f"a{OSC_TITLE}b", "ab"),
        (f"a{OSC_CLIP}b", "ab"),
        ("a\x1b]0;never terminated", "a"),
        (f"{CSI}red\x1b[0m", "red"),
        (f"x{C1}y", "xy"),
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),
        ("tab\tand\nline\r\nend\roverprint", "tab and line end overprint"),
        ("bidi\u202eevil", "bidievil"),
        ("bad byte \udcff", "bad byte \ufffd"),
        ("café 中文 ✓ [bold]kept[/]", "café 中文 ✓ [bold]kept[/]"),
    ],
)
def test_clean_text_strips_sequences_and_keeps_printable_unicode(raw: str, shown: str) -> None:
    assert clean_text(raw) == shown
    assert FORBIDDEN.search(clean_text(raw, multiline=True).replace("\n", "").replace("\t", "")) is None


def test_clean_text_multiline_keeps_lines_and_tabs_and_limits() -> None:
    assert clean_text("a\tb\r\nc\x0bd", multiline=True) == "a\tb\nc\nd"
    assert clean_text("x" * 300, limit=80) == "x" * 79 + "…"
    assert clean_data({"k\x1b[1m": ["v\x07", {"deep": OSC_CLIP + "z"}], "n": 1.5, "b": True}) == {
        "k": ["v", {"deep": "z"}],
        "n": 1.5,
        "b": True,
    }
