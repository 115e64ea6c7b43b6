"""One plotext chart that draws a list of prepared curves.

It knows nothing of runs or stores: the charts panel hands it already-downsampled `Curve`s, so a
redraw costs the same whatever the run's length (plotext pays ~8 µs per point per series).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from textual.app import RenderResult
from textual_plotext import PlotextPlot

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


def _finite(xs: Sequence[float], ys: Sequence[float], log_y: bool) -> tuple[list[float], list[float]]:
    """Drop NaN/inf (a NaN step must not blank the chart) and non-positive y on a log axis."""
    out_x, out_y = [], []
    for x, y in zip(xs, ys, strict=False):
        if y is None or x is None or not math.isfinite(y) or not math.isfinite(x) or (log_y and y <= 0):
            continue
        out_x.append(float(x))
        out_y.append(float(y))
    return out_x, out_y


class MetricChart(PlotextPlot):
    """A chart that shows `spec` (set it, then `refresh()` happens by itself)."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; width: 1fr; min-height: 6; }
    """

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = ChartSpec(title=title)
        self.points_drawn = 0
        """How many points the last draw handed plotext (the downsampling bound, checked in tests)."""

    @property
    def buckets(self) -> int:
        """About two points per character cell across: what braille can show, and no more."""
        return max(2 * (self.size.width or 40), 32)

    def show(self, spec: ChartSpec) -> None:
        """Draw `spec` on the next refresh."""
        self.spec = spec
        self.points_drawn = sum(len(_finite(c.xs, c.ys, spec.log_y)[0]) for c in spec.curves)
        self.refresh()

    def render(self) -> RenderResult:
        # plotext's build transforms its data in place (a log axis takes log10 of the stored ys), so
        # building twice from the same data breaks; rebuild the figure from the spec on every render.
        self._plot_spec(self.spec)
        return super().render()

    def _plot_spec(self, spec: ChartSpec) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(spec.title)
        if spec.xlabel:
            plt.xlabel(spec.xlabel)
        if spec.log_y:
            plt.yscale("log")
        has_data = False
        for curve in spec.curves:
            xs, ys = _finite(curve.xs, curve.ys, spec.log_y)
            if not xs:
                continue
            has_data = True
            if curve.scatter:
                plt.scatter(xs, ys, color=curve.color, marker=curve.marker)
            else:
                plt.plot(xs, ys, color=curve.color, marker=curve.marker)
        if has_data:
            for y, color in spec.hlines:
                if math.isfinite(y) and (y > 0 or not spec.log_y):
                    plt.hline(y, color)
