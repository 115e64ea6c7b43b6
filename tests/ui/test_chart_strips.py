"""A chart draws plotext's cells straight as strips: the same characters, colours and styles as the
ANSI canvas textual-plotext parses back (what the dashboard drew before), cell by cell."""

from __future__ import annotations

from support.pilot import Host
from support.records import falling_run
from textual.visual import Visual, visualize
from textual_plotext import PlotextPlot

from nexus_tui.history.store import MetricStore
from nexus_tui.settings import Settings
from nexus_tui.themes import PALETTES
from nexus_tui.widgets.chart import MetricChart
from nexus_tui.widgets.charts_panel import ChartsPanel


def cells(strips) -> list[list[tuple]]:
    """Each cell's character and what a terminal shows of its style."""
    return [
        [
            (ch, s.color, s.bgcolor, s.bold, s.dim, s.italic, s.underline, s.reverse)
            for seg in strip
            for s in (seg.style,)
            for ch in seg.text
        ]
        for strip in strips
    ]


async def test_strips_show_the_cells_the_ansi_canvas_showed() -> None:
    store = MetricStore()
    store.ingest("alpha", None, falling_run("alpha", 300, total=400))
    store.ingest("beta", None, falling_run("beta", 120, total=400))
    for theme, log_y in (("textual-dark", False), ("textual-light", True)):
        panel = ChartsPanel(Settings(log_scale=log_y))
        app = Host(panel)
        async with app.run_test(size=(120, 40)) as pilot:
            app.theme = theme
            await pilot.pause()
            panel.redraw(store, ["alpha", "beta"], PALETTES["nexus-dark"])
            await pilot.pause()
            charts = [c for c in panel.query(MetricChart) if c.spec.curves]
            assert len(charts) == 4
            for chart in charts:
                drawn = chart._drawn()
                assert len(drawn) == chart.size.height
                chart._plot_spec(chart.spec)  # plotext's build changes its data: a fresh figure
                ansi = Visual.to_strips(
                    chart,
                    visualize(chart, PlotextPlot.render(chart)),
                    chart.size.width,
                    chart.size.height,
                    chart.visual_style,
                )
                assert cells(drawn) == cells(ansi), (theme, chart.id)
                assert any("\u2800" < ch <= "\u28ff" for row in cells(drawn) for ch, *_ in row), (
                    "a curve is drawn"
                )
