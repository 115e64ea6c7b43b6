"""One plotext chart that draws a list of prepared curves.

It knows nothing of runs or stores: the charts panel hands it already-downsampled `Curve`s, so a
redraw costs the same whatever the run's length (plotext pays ~8 µs per point per series). A plotext
build costs ~10 ms even for a few points, so the chart rebuilds only when what it was given
(curves, x range, cursor, title) or its size or theme changed, and otherwise shows the last build;
while only new records change it, not before its picture would (chart_dots.py). A build's cells
are drawn as strips (chart_strips.py), not through plotext's ANSI text.
The mouse zooms (wheel) and pans (drag) the x range and hovering moves the inspect cursor: the chart
only reports these (as messages with x in data units) and the charts panel applies them to all charts.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.style import Style
from textual_plotext import PlotextPlot

from nexus_tui.curves.ticks import flat_range, is_flat, x_ticks, y_ticks
from nexus_tui.widgets.chart_dots import same_picture, screen_signature
from nexus_tui.widgets.chart_spec import ChartSpec
from nexus_tui.widgets.chart_strips import Row, matrix_rows, to_strips

LIVE_REBUILD_S = 2.0
"""While only new records change a chart, it is rebuilt at most this often (a plotext build costs
tens of ms: four charts rebuilt every frame took a third of a core from the runs being watched)."""
LIVE_BUILD_SHARE = 0.005
"""...and its live rebuilds take about this share of a core: a build that took t s of CPU waits
t / LIVE_BUILD_SHARE before the next live one (8 ms: 2 s; 25 ms, a slow machine: 5 s). Four charts
then cost about 2% of a core; what a person does redraws at once."""
LIVE_REBUILD_MAX_S = 6.0
"""...but never longer than this: a chart must keep moving while records arrive, however slow."""
BUILD_COSTS_KEPT = 5
"""The live interval follows the median of this many recent builds' CPU time: one slow build (a
garbage collection in it) does not hold a chart still for half a minute."""


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
    """A chart that shows `spec` (set it with `show`; it redraws only if something changed)."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; width: 1fr; min-height: 6; }
    """

    class Zoom(Message):
        """Wheel over the chart: zoom by `factor` (<1 in) around data x `at`."""

        def __init__(self, factor: float, at: float | None) -> None:
            super().__init__()
            self.factor, self.at = factor, at

    class Pan(Message):
        """A drag: move the x window by `dx` data units."""

        def __init__(self, dx: float) -> None:
            super().__init__()
            self.dx = dx

    class Hover(Message):
        """The mouse is over data x `at` (None: it left the chart)."""

        def __init__(self, at: float | None) -> None:
            super().__init__()
            self.at = at

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = ChartSpec(title=title)
        self.points_drawn = 0
        """How many points the last draw handed plotext (the downsampling bound, checked in tests)."""
        self.builds = 0
        """plotext builds so far (each costs tens of ms): a redraw with nothing new adds none."""
        self._chart_sig: tuple | None = None
        self._chart_built: tuple | None = None
        self._chart_rows: list[Row] | None = None
        """The last build's cells as runs of equal colours (chart_strips.py)."""
        self._strips: list[Strip] = []
        self._lines: list[Strip] | None = None
        """This frame's lines (None: no data, the title alone), set by render_lines."""
        self._strips_style: Style | None = None
        """The widget style `_strips` were made over (a theme or CSS change makes them again)."""
        self._chart_x: tuple[float, float] | None = None
        """The x range the last build drew, to map mouse columns to data x."""
        self._chart_margin = (8, 1)
        self._chart_drag: int | None = None
        self._last_build = 0.0
        self._build_costs: deque[float] = deque(maxlen=BUILD_COSTS_KEPT)
        """CPU seconds the last few builds took here (thread time: a loaded machine's waiting for a
        core is not the chart's cost), for the live interval."""
        self._waiting = False
        self._drawn_dots: tuple | None = None
        """The last build's `screen_signature`: a live spec with the same one is not rebuilt."""

    def _dots(self, spec: ChartSpec) -> tuple:
        return (self.size.width, self.size.height, self.app.theme), screen_signature(
            spec, self.size.width or 40, self.size.height or 12
        )

    def _same_as_drawn(self, spec: ChartSpec) -> bool:
        assert self._drawn_dots is not None
        (where, dots), (drawn_where, drawn) = self._dots(spec), self._drawn_dots
        return where == drawn_where and same_picture(dots, drawn)

    @property
    def buckets(self) -> int:
        """One min/max bucket per character cell: two points a cell, what braille's two dot
        columns can show; more only costs plotext time."""
        return max(self.size.width or 40, 16)

    def show(self, spec: ChartSpec, live: bool = False) -> None:
        """Draw `spec` on the next refresh, if it differs from what is shown. `live` (new records
        only): at most one build per `live_interval`, the latest spec drawn when the slot comes."""
        signature = spec.signature()
        self.spec = spec
        if signature == self._chart_sig:
            return
        self._chart_sig = signature
        self.points_drawn = sum(len(_finite(c.xs, c.ys, spec.log_y)[0]) for c in spec.curves)
        wait = self._last_build + self.live_interval - time.monotonic() if live else 0.0
        if wait <= 0:
            if live and self._drawn_dots is not None and self._same_as_drawn(spec):
                return  # the new points land on the dots drawn: nothing on screen would change
            self.refresh()
        elif not self._waiting:
            self._waiting = True
            self.set_timer(wait, self._slot)

    @property
    def build_cost(self) -> float | None:
        """CPU seconds a build takes here: the median of the last few (None before the first)."""
        return statistics.median(self._build_costs) if self._build_costs else None

    @property
    def live_interval(self) -> float:
        """Seconds between live rebuilds: LIVE_REBUILD_S, longer where builds are slow
        (LIVE_BUILD_SHARE), at most LIVE_REBUILD_MAX_S."""
        return min(LIVE_REBUILD_MAX_S, max(LIVE_REBUILD_S, (self.build_cost or 0.0) / LIVE_BUILD_SHARE))

    def _slot(self) -> None:
        self._waiting = False
        if self._drawn_dots is None or not self._same_as_drawn(self.spec):
            self.refresh()

    def _has_data(self) -> bool:
        return any(len(c.xs) for c in self.spec.curves)

    def render(self) -> RenderResult:
        """What the chart shows, as one Text (the screen draws `render_line`'s strips; this is for
        whoever asks for the widget's content, e.g. tests reading the picture)."""
        if not self._has_data():
            # Nothing to plot (the first frame, no run selected): the title alone, no plotext build.
            return Text(self.spec.title.center(self.size.width or 0), style="bold")
        return Text("\n").join(
            Text.assemble(*((seg.text, seg.style or "") for seg in strip)) for strip in self._drawn()
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        lines = self._drawn() if self._has_data() else None  # once a frame, not once a line
        if lines is not self._lines:
            # A new picture: every line must be drawn again. A repaint this chart did not ask for
            # (another widget's layout, a screenshot) would otherwise build it but show the lines
            # Textual cached from the last one, and the slot would find it already drawn.
            self.refresh()
        self._lines = lines
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        if self._lines is None:
            return super().render_line(y)  # the title, through render()
        return (
            self._lines[y]
            if y < len(self._lines)
            else Strip.blank(self.size.width, self.visual_style.rich_style)
        )

    def _drawn(self) -> list[Strip]:
        """The chart's lines: built with plotext when the spec, size or theme changed since the last
        build, else the last build's (a refresh alone, e.g. something drawn over it, builds nothing)."""
        # plotext's build transforms its data in place (a log axis takes log10 of the stored ys), so
        # building twice from the same data breaks; rebuild the figure from the spec when it changed.
        key = (self._chart_sig, self.size.width, self.size.height, self.app.theme)
        started = time.thread_time()
        built = key != self._chart_built or self._chart_rows is None
        if built:
            self._drawn_dots = self._dots(self.spec)
            self._plot_spec(self.spec)
            self._chart_rows = self._build_rows()
            self._chart_built = key
            self._strips_style = None
            self.builds += 1
        style = self.visual_style
        if style != self._strips_style:
            assert self._chart_rows is not None
            self._strips = to_strips(self._chart_rows, style, self.app.ansi_theme)
            self._strips_style = style
        if built:  # the whole cost of a new picture, its strips included: the live interval's measure
            self._build_costs.append(time.thread_time() - started)
            self._last_build = time.monotonic()
        return self._strips

    def _build_rows(self) -> list[Row]:
        """Build the figure at the widget's size and theme (what PlotextPlot.render does) and read
        its cells, without plotext's ANSI canvas."""
        plt = self.plt
        width, height = self.size
        plt.plotsize(width, height)
        plt._set_size(width, height)  # as PlotextPlot.render: plotsize alone does not always resize
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        plt._set_sizes()  # type: ignore[attr-defined]  # plotext's own build steps: private, untyped
        plt._build_matrix()  # type: ignore[attr-defined]
        return matrix_rows(plt.monitor.matrix)  # type: ignore[attr-defined]

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
        x_lo = y_lo = math.inf
        x_hi = y_hi = -math.inf
        for curve in spec.curves:
            xs, ys = _finite(curve.xs, curve.ys, spec.log_y)
            if not xs:
                continue
            has_data = True
            x_lo, x_hi = min(x_lo, min(xs)), max(x_hi, max(xs))
            y_lo, y_hi = min(y_lo, min(ys)), max(y_hi, max(ys))
            if curve.scatter:
                plt.scatter(xs, ys, color=curve.color, marker=curve.marker)
            else:
                plt.plot(xs, ys, color=curve.color, marker=curve.marker)
        if not has_data:
            self._chart_x = None
            return
        for y, color in spec.hlines:
            if math.isfinite(y) and (y > 0 or not spec.log_y):
                plt.hline(y, color)
                y_lo, y_hi = min(y_lo, y), max(y_hi, y)
        if spec.x_range is not None:
            x_lo, x_hi = spec.x_range
        if x_hi > x_lo:
            plt.xlim(x_lo, x_hi)
        self._chart_x = (x_lo, x_hi)
        xt, xl = x_ticks(x_lo, x_hi, self.size.width or 40, spec.x_integer)
        plt.xticks(xt, xl)
        width = 6
        if not spec.log_y and is_flat(y_lo, y_hi):  # a constant (or an EMA of one, wobbling in its last bits)
            plt.ylim(*flat_range((y_lo + y_hi) / 2))
        # On a log axis: round values (2, 3, 4, 5; 1e-4, 1e-3), placed by plotext on its log scale.
        yt, yl = y_ticks(y_lo, y_hi, self.size.height or 12, spec.log_y)
        if yt:
            plt.yticks(yt, yl)
            width = max((len(t) for t in yl), default=6)
        self._chart_margin = (width + 2, 1)
        if spec.cursor is not None and x_lo <= spec.cursor[0] <= x_hi:
            plt.vline(spec.cursor[0], spec.cursor[1])

    # -- mouse: reported to the charts panel in data units -------------------------------------

    def x_at(self, column: int) -> float | None:
        """The data x under a column of this widget (None outside the plot area or with no data)."""
        if self._chart_x is None:
            return None
        lo, hi = self._chart_x
        left, right = self._chart_margin
        span = (self.size.width or 0) - left - right
        if span <= 1 or hi <= lo:
            return None
        frac = (column - left) / (span - 1)
        if not 0.0 <= frac <= 1.0:
            return None
        return lo + frac * (hi - lo)

    def _per_column(self) -> float:
        if self._chart_x is None:
            return 0.0
        lo, hi = self._chart_x
        return (hi - lo) / max(1, (self.size.width or 0) - sum(self._chart_margin) - 1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.post_message(self.Zoom(0.8, self.x_at(event.x)))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.post_message(self.Zoom(1.25, self.x_at(event.x)))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._chart_drag = event.x
        self.capture_mouse()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self._chart_drag = None
        self.release_mouse()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._chart_drag is not None and event.button:
            moved = event.x - self._chart_drag
            if moved:
                self._chart_drag = event.x
                self.post_message(self.Pan(-moved * self._per_column()))
            return
        self.post_message(self.Hover(self.x_at(event.x)))

    def on_leave(self, event: events.Leave) -> None:
        self.post_message(self.Hover(None))
