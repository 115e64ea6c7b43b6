"""Nexus themes: Textual `Theme` objects plus the chart palette that goes with each, read from TOML files.

The built-in themes are the files in the top-level `themes/` folder (shipped inside the package as
`nexus_tui.builtin_themes`); a person's own are `*.toml` files in $XDG_CONFIG_HOME/nexus/themes/
(the app passes that folder). Charts
draw with plotext, which knows nothing of Textual's CSS variables, so every theme carries an explicit
palette of run colours (a run keeps its index into it everywhere) and the colours for the faint raw
curve and the forecast line. Switching theme re-reads the palette on the next redraw.

A user's theme file is untrusted: anything wrong with it (not a regular file, too big, not TOML, a
wrong type, a colour Textual cannot parse, a taken name) skips that file with a one-line reason.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from textual.app import App
from textual.color import Color, ColorParseError
from textual.theme import Theme

from nexus_core.safefile import UnsafeFileError, read_bytes

RGB = tuple[int, int, int]

MAX_THEME_BYTES = 64 * 1024
"""A theme is a few hundred bytes; anything past this is not one."""
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
HEX_RE = re.compile(r"#[0-9A-Fa-f]{6}")
DEFAULT_THEME = "nexus-dark"
BUILTIN_ORDER = ("nexus-dark", "nexus-light", "nexus-contrast")
"""The order `t` cycles the built-in themes in (any other built-in file follows, by name)."""


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


class _Colors(msgspec.Struct, forbid_unknown_fields=True):
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None


class _Chart(msgspec.Struct, forbid_unknown_fields=True):
    runs: list[str]
    faint: str
    forecast: str


class _ThemeFile(msgspec.Struct, forbid_unknown_fields=True):
    """The shape of a theme file (see themes/nexus-dark.toml)."""

    name: str
    colors: _Colors
    dark: bool = True
    chart: _Chart | None = None


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class NexusTheme:
    theme: Theme
    palette: ChartPalette


def _rgb(text: str, where: str) -> RGB:
    if not HEX_RE.fullmatch(text):
        raise ThemeFileError(f"{where} must be a #rrggbb colour")
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def parse_theme(data: bytes, fallback: dict[bool, ChartPalette] | None = None) -> NexusTheme:
    """A theme from a file's bytes; raises ThemeFileError with what to fix."""
    try:
        spec = msgspec.toml.decode(data.decode("utf-8"), type=_ThemeFile)
    except UnicodeDecodeError:
        raise ThemeFileError("is not UTF-8 text") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise ThemeFileError(str(e).splitlines()[0] if str(e) else "not a theme") from None
    if not NAME_RE.fullmatch(spec.name):
        raise ThemeFileError("name must be 1-40 letters, digits, '-', '_' or '.'")
    colors = msgspec.structs.asdict(spec.colors)
    for key, value in colors.items():
        if value is None:
            continue
        try:
            Color.parse(value)
        except ColorParseError:
            raise ThemeFileError(f"colors.{key} is not a colour Textual knows") from None
    if spec.chart is not None:
        if not 1 <= len(spec.chart.runs) <= 64:
            raise ThemeFileError("chart.runs needs 1 to 64 colours")
        palette = ChartPalette(
            runs=tuple(_rgb(c, f"chart.runs[{i}]") for i, c in enumerate(spec.chart.runs)),
            faint=_rgb(spec.chart.faint, "chart.faint"),
            forecast=_rgb(spec.chart.forecast, "chart.forecast"),
        )
    elif fallback is not None:
        palette = fallback[spec.dark]
    else:
        raise ThemeFileError("needs a [chart] table")
    theme = Theme(name=spec.name, dark=spec.dark, **{k: v for k, v in colors.items() if v is not None})
    return NexusTheme(theme, palette)


def _read_small_regular(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_THEME_BYTES; never blocks on a FIFO or device."""
    try:
        return read_bytes(path, MAX_THEME_BYTES)
    except UnsafeFileError as e:
        if e.errno == errno.EFBIG:
            raise ThemeFileError(f"is bigger than {MAX_THEME_BYTES // 1024} KiB") from None
        raise ThemeFileError("is not a regular file") from None
    except OSError as e:
        raise ThemeFileError(f"cannot be read ({e.strerror})") from None


def builtin_themes() -> list[NexusTheme]:
    """The themes shipped in themes/ (dark first: it is the default). A bad one is a packaging bug."""
    try:
        folder: Any = resources.files("nexus_tui.builtin_themes")
    except ModuleNotFoundError:  # an editable install made before themes/ was mapped: the checkout's
        folder = Path(__file__).resolve().parent.parent / "themes"
    found = [parse_theme(p.read_bytes()) for p in folder.iterdir() if p.name.endswith(".toml")]
    found.sort(
        key=lambda t: (
            BUILTIN_ORDER.index(t.theme.name) if t.theme.name in BUILTIN_ORDER else 99,
            t.theme.name,
        )
    )
    if not found or found[0].theme.name != DEFAULT_THEME:
        raise RuntimeError(f"the built-in themes are missing from {folder}")
    return found


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def user_themes(
    folder: Path, taken: set[str], fallback: dict[bool, ChartPalette]
) -> tuple[list[NexusTheme], list[str]]:
    """The usable theme files in `folder` (by file name) and one warning per skipped file."""
    themes: list[NexusTheme] = []
    warnings: list[str] = []
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(".toml"))[:200]
    except OSError:
        return [], []  # no folder (the usual case) or one we may not list: no user themes
    for path in paths:
        try:
            found = parse_theme(_read_small_regular(path), fallback)
            if found.theme.name in taken:
                raise ThemeFileError(f"the name {found.theme.name!r} is already a theme")
        except ThemeFileError as e:
            warnings.append(f"theme file {_printable(str(path))} {_explain(e)}; skipped")
            continue
        taken.add(found.theme.name)
        themes.append(found)
    return themes, warnings


def _explain(e: ThemeFileError) -> str:
    text = _printable(str(e))[:200]
    return text if text.startswith(("is ", "cannot ")) else f"is not usable: {text}"


_BUILTIN = builtin_themes()
THEMES: tuple[Theme, ...] = tuple(t.theme for t in _BUILTIN)
PALETTES: dict[str, ChartPalette] = {t.theme.name: t.palette for t in _BUILTIN}
"""Every palette by theme name: the built-in ones, and the user's as apps register them."""
_FALLBACK = {True: PALETTES[DEFAULT_THEME], False: PALETTES["nexus-light"]}


def palette_for(theme_name: str) -> ChartPalette:
    """The chart palette for a theme; Textual's built-in themes get the dark or light one."""
    if theme_name in PALETTES:
        return PALETTES[theme_name]
    return _FALLBACK[False] if "light" in theme_name else _FALLBACK[True]


def register_themes(app: App, folder: Path) -> tuple[list[str], list[str]]:
    """Make the Nexus themes and the user's own in `folder` selectable (command palette "Change
    theme", key t). Returns the names `t` cycles through and one warning per skipped file."""
    for theme in THEMES:
        app.register_theme(theme)
    mine, warnings = user_themes(folder, set(app.available_themes), _FALLBACK)
    for found in mine:
        app.register_theme(found.theme)
        PALETTES[found.theme.name] = found.palette
    return [t.name for t in THEMES] + [t.theme.name for t in mine], warnings


def next_theme(current: str, cycle: Sequence[str] = ()) -> str:
    """The theme after `current` in `cycle` (default: the built-in ones), wrapping; any other goes
    to the first."""
    names = list(cycle) or [t.name for t in THEMES]
    if current not in names:
        return names[0]
    return names[(names.index(current) + 1) % len(names)]
