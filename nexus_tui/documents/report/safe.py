"""Text from a run folder made safe to print and to put in markdown.

Run names, samples, alert and log texts come from another process (or a hand-edited folder): they may
hold terminal escape sequences (a report is often `cat`ed or printed by `nexus report` to a terminal,
where ESC ] 52 can write the clipboard and CSI can redraw the screen), bidi overrides that make text
read differently than it is, and characters that end a markdown table cell or open markup. Every
such string passes through here before it reaches the report.
"""

from __future__ import annotations

import re

from nexus_core.text import clean_text

_MARKDOWN = re.compile(r"([\\`*_<>\[\]|~])")
"""Characters that open markup in GitHub markdown (or end a table cell) wherever they stand."""


def clean(text: object) -> str:
    """Printable text: escape sequences and control characters gone (nexus_core's one sanitizer),
    tabs as spaces, newlines kept."""
    return clean_text(text, multiline=True).replace("\t", "    ")


def one_line(text: object, limit: int = 0) -> str:
    """clean(), on one line: a newline reads as "⏎"; longer than `limit` (if set) ends in "…"."""
    s = clean(text).replace("\n", " ⏎ ")
    return s if not limit or len(s) <= limit else s[: limit - 1] + "…"


def md(text: object, limit: int = 0) -> str:
    """one_line() with markdown's special characters escaped: safe in a table cell or a sentence."""
    return _MARKDOWN.sub(r"\\\1", one_line(text, limit))


def code(text: object, limit: int = 0) -> str:
    """one_line() as a `code span`: backticks and pipes, which would end it or a cell, replaced."""
    return "`" + one_line(text, limit).replace("`", "'").replace("|", "¦") + "`"


def block(text: object) -> str:
    """clean() for the inside of a fenced code block: a line of backticks would close the fence."""
    return clean(text).replace("```", "'''")
