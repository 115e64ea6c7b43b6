"""Zoom, pan and the inspect cursor of the charts panel: one x window and one cursor for all charts.

A mixin of `ChartsPanel`, which holds the state (`extent`, `x_view`, `cursor`, `pinned`) and redraws
(`_again`); keys, the wheel, a drag and hovering all come here.
"""

from __future__ import annotations

from nexus_tui.widgets.chart import MetricChart


class ChartView:
    """The x window (zoomed or the whole extent) and the inspect cursor, in data units as drawn."""

    extent: tuple[float, float] | None
    x_view: tuple[float, float] | None
    cursor: float | None
    pinned: bool

    def _again(self) -> None:
        raise NotImplementedError

    def zoom(self, factor: float, at: float | None = None) -> None:
        """Scale the x window by `factor` (<1 zooms in) keeping `at` (default: the cursor, else the
        middle) where it is; zooming out past the data's extent shows it all again."""
        if self.extent is None:
            return
        lo, hi = self.x_view or self.extent
        if at is None:
            at = self.cursor if self.cursor is not None and lo <= self.cursor <= hi else (lo + hi) / 2
        new_lo, new_hi = at - (at - lo) * factor, at + (hi - at) * factor
        full_lo, full_hi = self.extent
        if new_hi - new_lo >= full_hi - full_lo:
            self.x_view = None
        else:
            self.x_view = self._clamp(new_lo, new_hi)
        self._again()

    def pan(self, dx: float) -> None:
        """Move the x window by dx data units (stops at the data's ends)."""
        if self.x_view is None:
            return
        lo, hi = self.x_view
        self.x_view = self._clamp(lo + dx, hi + dx)
        self._again()

    def pan_fraction(self, fraction: float) -> None:
        if self.x_view is not None:
            self.pan(fraction * (self.x_view[1] - self.x_view[0]))

    def _clamp(self, lo: float, hi: float) -> tuple[float, float]:
        assert self.extent is not None
        full_lo, full_hi = self.extent
        width = max(hi - lo, 1e-9)
        if lo < full_lo:
            lo, hi = full_lo, full_lo + width
        if hi > full_hi:
            lo, hi = full_hi - width, full_hi
        return (max(lo, full_lo), hi)

    def reset_view(self) -> None:
        self.x_view = None
        self._again()

    def toggle_cursor(self) -> None:
        """Pin an inspect cursor in the middle of the view, or take it away."""
        if self.cursor is not None and self.pinned:
            self.cursor, self.pinned = None, False
        elif self.extent is not None:
            lo, hi = self.x_view or self.extent
            self.cursor, self.pinned = (lo + hi) / 2, True
        self._again()

    def move_cursor(self, fraction: float) -> None:
        """Move the cursor by a fraction of the view (one chart column is about 1/60)."""
        if self.cursor is None or self.extent is None:
            return
        lo, hi = self.x_view or self.extent
        self.cursor = min(max(self.cursor + fraction * (hi - lo), lo), hi)
        self._again()

    def on_metric_chart_zoom(self, event: MetricChart.Zoom) -> None:
        self.zoom(event.factor, event.at)

    def on_metric_chart_pan(self, event: MetricChart.Pan) -> None:
        self.pan(event.dx)

    def on_metric_chart_hover(self, event: MetricChart.Hover) -> None:
        if self.pinned and event.at is None:
            return
        if event.at != self.cursor:
            self.cursor = event.at
            self.pinned = self.pinned and event.at is not None
            self._again()
