"""A RichLog that wraps every line to the width it is shown at, now and after each resize.

RichLog renders a line once, when written, at max(its measure, `min_width`) with `min_width` 78 by
default: in a 34-column side pane a long error was rendered 78 wide and the columns past 34 were
never seen (the middle of every long line, often the part that says what to fix). And a line written
at one width stays cut to it after the terminal grows or shrinks. So this log renders at the pane's
width (min_width 1), keeps what it was given, and re-renders it all when the width changes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import RichLog


class ReflowLog(RichLog):
    """Wrapped, plain (never markup) log lines that re-wrap on resize; keeps the last `max_lines`."""

    DEFAULT_CSS = """
    ReflowLog { scrollbar-gutter: stable; }
    """

    def __init__(self, max_lines: int, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=max_lines, min_width=1, **kwargs)
        self._kept: deque[Text] = deque(maxlen=max_lines)
        self._wrapped_at = 0

    def add(self, text: Text) -> None:
        """Write one renderable line (which may wrap to several rows) and keep it for re-wrapping."""
        self._kept.append(text)
        self.write(text)

    def on_resize(self, event: events.Resize) -> None:
        # RichLog's own on_resize runs after this one (Textual calls each class's handler) and
        # renders what was deferred until the size was known; here only a change of width matters.
        width = event.size.width
        if width and self._wrapped_at and width != self._wrapped_at and self._size_known:
            at_end = self.is_vertical_scroll_end
            self.clear()
            for text in self._kept:
                self.write(text, scroll_end=False)
            if at_end:
                self.scroll_end(animate=False, immediate=True)
        if width:
            self._wrapped_at = width
