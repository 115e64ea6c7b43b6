"""Hostile text a run folder may carry: escape sequences that retitle the terminal or write its
clipboard, C1 controls, and markup that crashes Textual's parser; and what may reach the terminal."""

from __future__ import annotations

import re

OSC_TITLE = "\x1b]0;PWNED-TITLE\x07"
OSC_CLIP = "\x1b]52;c;UFdORUQtQ0xJUA==\x1b\\"
CSI = "\x1b[2J\x1b[31m"
C1 = "\x9b1;1H\x9d0;C1-TITLE\x9c"
BAD_MARKUP = '[link="x]y[@click=app.quit]q[$accent]'
"""`[link="x` is a MarkupError in Textual's parser; `@click` would make a clickable action."""
EVIL = OSC_TITLE + OSC_CLIP + CSI + C1 + BAD_MARKUP
PAYLOADS = ("PWNED-TITLE", "UFdORUQtQ0xJUA", "C1-TITLE")

# What may reach the terminal: printable text, newlines, and Textual's own colour (SGR) and
# cursor-position sequences; the planted CSI is `2J` (clear) and `31m` after it, and the C1 one is 8-bit.
SGR = re.compile(r"\x1b\[[0-9;:]*[mH]")
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
