"""Charts as plain text: plotext's own drawing, built to a string with colours off, in a code block.

A report is read in a terminal, a pull request and an editor alike, so the chart is characters and
nothing else: plotext still ends lines with a colour reset, which `safe.block` strips like any other
escape sequence. Without colour, curves differ by their marker, named in the legend.

plotext draws on one module-wide figure; a lock keeps two reports built at once (the dashboard builds
in a worker thread) from drawing on each other. The dashboard's live charts use textual-plotext's own
copy of plotext, not this one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import plotext as plt

from nexus_tui.curves.downsample import downsample
from nexus_tui.curves.ticks import x_ticks, y_ticks
from nexus_tui.documents.report.safe import block, one_line

WIDTH, HEIGHT = 78, 18
LINE_MARKERS = ("•", "+", "x", "*", "#", "%", "@", "=")
POINT_MARKERS = ("◆", "o", "▲", "■", "●", "△", "□", "◇")
_LOCK = threading.Lock()


@dataclass
class Line:
    """One curve: a label for the legend, points, its marker, and whether to join the points."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    marker: str
    scatter: bool = False


def _finite(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(x) and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def chart(title: str, xlabel: str, lines: Sequence[Line], width: int = WIDTH, height: int = HEIGHT) -> str:
    """A fenced code block holding the chart; a sentence instead when there is nothing to draw."""
    drawn = [(ln, *_finite(ln.xs, ln.ys)) for ln in lines]
    drawn = [(ln, xs, ys) for ln, xs, ys in drawn if xs]
    if not drawn:
        return f"_No {one_line(title).lower()} to draw yet._"
    try:
        text = _build(title, xlabel, drawn, width, height)
    except Exception as e:  # noqa: BLE001 - plotext on garbage numbers (1e308 spans): say so, keep the report
        return f"_The {one_line(title).lower()} chart could not be drawn ({one_line(type(e).__name__)})._"
    lines_out = [line.rstrip() for line in block(text).splitlines()]
    return "```text\n" + "\n".join(lines_out).strip("\n") + "\n```"


def _build(
    title: str, xlabel: str, drawn: list[tuple[Line, list[float], list[float]]], width: int, height: int
) -> str:
    with _LOCK:
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.theme("clear")
        plt.title(one_line(title, width - 4))
        plt.xlabel(one_line(xlabel))
        # Round ticks, as the dashboard's charts have (curves/ticks.py): plotext's own split the
        # range evenly (`1.0 100.8 200.5 300.2 400.0`, `0.00252`).
        all_x = [x for _, xs, _ in drawn for x in xs]
        all_y = [y for _, _, ys in drawn for y in ys]
        integer = xlabel in ("step", "tokens")
        x_at, x_text = x_ticks(min(all_x), max(all_x), width, integer)
        y_at, y_text = y_ticks(min(all_y), max(all_y), height, False)
        if x_at:
            plt.xticks(x_at, x_text)
        if y_at:
            plt.yticks(y_at, y_text)
        for ln, xs, ys in drawn:
            xs, ys = downsample(xs, ys, width)
            label = one_line(ln.label, 40)
            if ln.scatter:
                plt.scatter(xs, ys, marker=ln.marker, label=label)
            else:
                plt.plot(xs, ys, marker=ln.marker, label=label)
        try:
            return plt.build()
        finally:
            plt.clear_figure()
