"""A plotext figure's cells straight to Textual strips, without the ANSI text in between.

textual-plotext draws a chart as plotext's ANSI canvas (a string with an escape code at every colour
change) parsed back by `Text.from_ansi`, then turned into Textual `Content` and split into strips with
a style (and a mouse offset) per segment: about two thirds of what a live chart rebuild cost, on the
event loop, for cells plotext already holds as four matrices (marker, foreground, style,
background). Here each row's runs of equal colours become one segment each, styled as the ANSI path
styles them (the same codes, decoded once per colour triple), so the chart looks the same for a third
of the work.
"""

from __future__ import annotations

from typing import Any

import plotext._utility as plotext_ut
from rich.segment import Segment
from rich.style import Style as RichStyle
from rich.terminal_theme import TerminalTheme
from rich.text import Text
from textual.strip import Strip
from textual.style import Style

Colors = tuple[Any, Any, Any]
"""A cell's (foreground, style, background) as plotext holds them."""
Row = list[tuple[str, Colors]]
"""One line of the chart: runs of text sharing their colours."""

_DECODED: dict[Colors, RichStyle] = {}


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def cell_style(colors: Colors) -> RichStyle:
    """The Rich style `Text.from_ansi` gives a cell plotext writes with these colours (cached: a
    chart has a handful)."""
    found = _DECODED.get(colors)
    if found is None:
        code = plotext_ut.colors_to_ansi(*colors)
        spans = Text.from_ansi(f"{code}x{plotext_ut.ansi_end}").spans
        found = _DECODED[colors] = (
            RichStyle.combine(
                s.style if isinstance(s.style, RichStyle) else RichStyle.parse(s.style) for s in spans
            )
            if spans
            else RichStyle.null()
        )
    return found


def matrix_rows(matrix: Any) -> list[Row]:
    """The built figure's rows, top to bottom (plotext's row 0 is the bottom one), as runs."""
    rows: list[Row] = []
    cols = matrix.cols
    for r in reversed(range(matrix.rows)):
        marker, fg, st, bg = matrix.marker[r], matrix.fullground[r], matrix.style[r], matrix.background[r]
        runs: Row = []
        start = 0
        for c in range(1, cols + 1):
            if c == cols or fg[c] != fg[start] or st[c] != st[start] or bg[c] != bg[start]:
                runs.append(("".join(marker[start:c]), (_key(fg[start]), _key(st[start]), _key(bg[start]))))
                start = c
        rows.append(runs)
    return rows


def to_strips(rows: list[Row], base: Style, theme: TerminalTheme | None) -> list[Strip]:
    """The rows as strips over the widget's own style (as Textual renders text over it)."""
    styles: dict[Colors, RichStyle] = {}
    strips = []
    for runs in rows:
        segments = []
        for text, colors in runs:
            style = styles.get(colors)
            if style is None:
                style = styles[colors] = (base + Style.from_rich_style(cell_style(colors), theme)).rich_style
            segments.append(Segment(text, style))
        strips.append(Strip(segments))
    return strips
