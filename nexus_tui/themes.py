"""Nexus themes: Textual `Theme` objects plus the chart palette that goes with each.

Charts draw with plotext, which knows nothing of Textual's CSS variables, so every theme carries an
explicit palette of run colours (a run keeps its index into it everywhere) and the colours for the
faint raw curve and the forecast line. Switching theme re-reads the palette on the next redraw.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import App
from textual.theme import Theme

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ChartPalette:
    """Colours plotext uses for one theme."""

    runs: tuple[RGB, ...]
    """One colour per run, by the run's colour index (wraps around)."""
    faint: RGB
    """The raw (unsmoothed) curve behind the EMA."""
    forecast: RGB
    """The projected-final-loss line."""

    def run(self, index: int) -> RGB:
        return self.runs[index % len(self.runs)]

    def hex(self, index: int) -> str:
        r, g, b = self.run(index)
        return f"#{r:02x}{g:02x}{b:02x}"


NEXUS_DARK = Theme(
    name="nexus-dark",
    primary="#4EA8DE",
    secondary="#B388EB",
    accent="#F4A259",
    warning="#F4D35E",
    error="#EF476F",
    success="#06D6A0",
    foreground="#D8DEE9",
    background="#11151C",
    surface="#1A202B",
    panel="#232B38",
    dark=True,
)

NEXUS_LIGHT = Theme(
    name="nexus-light",
    primary="#1D5FA8",
    secondary="#7B3FB5",
    accent="#C1580A",
    warning="#9A6B00",
    error="#C0142F",
    success="#11803F",
    foreground="#1E2430",
    background="#F7F7F2",
    surface="#FFFFFF",
    panel="#E6E8EC",
    dark=False,
)

NEXUS_CONTRAST = Theme(
    name="nexus-contrast",
    primary="#00FFFF",
    secondary="#FF00FF",
    accent="#FFFF00",
    warning="#FFFF00",
    error="#FF3030",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#202020",
    dark=True,
)

THEMES: tuple[Theme, ...] = (NEXUS_DARK, NEXUS_LIGHT, NEXUS_CONTRAST)
DEFAULT_THEME = NEXUS_DARK.name

PALETTES: dict[str, ChartPalette] = {
    NEXUS_DARK.name: ChartPalette(
        runs=((78, 168, 222), (244, 162, 89), (6, 214, 160), (239, 71, 111), (179, 136, 235), (244, 211, 94)),
        faint=(80, 88, 104),
        forecast=(150, 150, 150),
    ),
    NEXUS_LIGHT.name: ChartPalette(
        runs=((29, 95, 168), (193, 88, 10), (17, 128, 63), (192, 20, 47), (123, 63, 181), (120, 90, 0)),
        faint=(190, 194, 202),
        forecast=(110, 110, 110),
    ),
    NEXUS_CONTRAST.name: ChartPalette(
        runs=((0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 0, 255), (255, 255, 255), (255, 128, 0)),
        faint=(128, 128, 128),
        forecast=(255, 255, 255),
    ),
}


def palette_for(theme_name: str) -> ChartPalette:
    """The chart palette for a theme; Textual's built-in themes get the dark or light one."""
    if theme_name in PALETTES:
        return PALETTES[theme_name]
    return PALETTES[NEXUS_LIGHT.name if "light" in theme_name else NEXUS_DARK.name]


def register_themes(app: App) -> None:
    """Make the Nexus themes selectable (command palette "Change theme", key t)."""
    for theme in THEMES:
        app.register_theme(theme)


def next_theme(current: str) -> str:
    """The Nexus theme after `current`, wrapping; a non-Nexus theme goes to the first."""
    names = [t.name for t in THEMES]
    if current not in names:
        return names[0]
    return names[(names.index(current) + 1) % len(names)]
