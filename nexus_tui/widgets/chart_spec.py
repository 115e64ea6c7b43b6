"""What one chart shows (`ChartSpec`, its `Curve`s): plain data, built by the charts panel and the
dialogs, drawn by `chart.MetricChart` and summarised by `chart_dots`. Its own module so the drawing
modules that read it import it, not each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nexus_tui.themes import RGB


@dataclass
class Curve:
    """A line (or scatter) ready to draw."""

    xs: Sequence[float]
    ys: Sequence[float]
    color: RGB
    marker: str = "braille"
    scatter: bool = False


@dataclass
class ChartSpec:
    """Everything one redraw needs."""

    title: str
    curves: list[Curve] = field(default_factory=list)
    xlabel: str = ""
    log_y: bool = False
    hlines: list[tuple[float, RGB]] = field(default_factory=list)
    """Horizontal guide lines (the forecast), drawn behind the curves."""
    x_range: tuple[float, float] | None = None
    """The x window shown (zoomed); None: the data's own extent."""
    x_integer: bool = True
    """The x axis counts (steps, tokens): integer tick labels."""
    cursor: tuple[float, RGB] | None = None
    """The inspect cursor: a vertical line at this x."""

    def signature(self) -> tuple:
        """Everything a build depends on, to rebuild only when it changed."""
        return (
            self.title,
            self.xlabel,
            self.log_y,
            tuple(self.hlines),
            self.x_range,
            self.x_integer,
            self.cursor,
            tuple((tuple(c.xs), tuple(c.ys), c.color, c.marker, c.scatter) for c in self.curves),
        )
