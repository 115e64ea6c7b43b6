"""The one sanitizer for text that came from a run folder, a record, a pipe or a socket.

Anyone who can write a run folder (a shared runs directory, a copied or downloaded run, a planted
folder) controls its name, its records and its log. Shown raw, that text can drive the terminal:
`ESC ] 0 ; title BEL` retitles it, `ESC ] 52 ; c ; ...` writes the clipboard, CSI sequences move
the cursor or repaint. So every string from a run passes `clean_text` before a person sees it, in
the dashboard and on the command line: escape sequences go whole (introducer, parameters and
payload), remaining C0/C1 control characters and DEL go, bidirectional marks and overrides (which
reorder what is shown) go, and lone surrogates (an undecodable byte in a folder name) become U+FFFD, so printing
never raises. Printable unicode is kept. Torch-free and textual-free: both sides import it.
"""

from __future__ import annotations

import re
from typing import Any

_ST = r"(?:\x07|\x1b\\|\x9c)"
"""String terminators: BEL, ESC \\, and the 8-bit ST."""

_SEQUENCES = re.compile(
    "|".join(
        (
            # OSC, DCS, SOS, PM, APC (7-bit and 8-bit introducers): everything up to a terminator, or to the
            # end of the text when it never ends (a terminal would swallow all that follows).
            rf"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*{_ST}?",
            # CSI (ESC [ or 8-bit 0x9b): parameters, intermediates, one final byte.
            r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?",
            # Any other escape: ESC, intermediates, one final character.
            r"\x1b[\x20-\x2f]*[\x30-\x7e]?",
        )
    )
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
"""Line ends other than \\n: CR LF, a lone CR (which would overprint the line), VT, FF, NEL, LS, PS."""


def clean_text(value: Any, multiline: bool = False, limit: int | None = None) -> str:
    """`value` as text that is safe to show: no escape sequences, no control characters.

    multiline: keep newlines (other line ends become \\n) and tabs, for log blocks and samples;
    otherwise every line end and tab becomes one space, for names, table cells and one-line messages.
    limit: cut to this many characters, ending in "…".
    """
    text = value if isinstance(value, str) else str(value)
    if not (text.isascii() and text.isprintable()):
        text = _SEQUENCES.sub("", text)
        text = _BREAKS.sub("\n", text)
        if not multiline:
            text = text.replace("\n", " ").replace("\t", " ")
        text = _CONTROLS.sub(_replacement, text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def _replacement(match: re.Match[str]) -> str:
    char = match.group()
    return "\ufffd" if "\ud800" <= char <= "\udfff" else ""


def clean_data(value: Any, depth: int = 0) -> Any:
    """A decoded record (or any JSON/msgpack value) with every string in it, keys included, cleaned;
    numbers and bools untouched. Deeper than 32 levels is cut off (None): no record nests that far."""
    if isinstance(value, str):
        return clean_text(value, multiline=True)
    if isinstance(value, dict):
        if depth >= 32:
            return None
        return {
            clean_text(k) if isinstance(k, str) else k: clean_data(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        if depth >= 32:
            return None
        return [clean_data(v, depth + 1) for v in value]
    return value
