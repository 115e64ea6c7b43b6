"""GPU and host telemetry, one reading a line: label, value, then a sparkline of its recent history.

Per GPU: util, memory, temperature and power, clocks, and each process's memory; one plain line when
there is no NVIDIA driver. Then host CPU and RAM, and each run's CPU and RSS. The pane is ~40 cells
wide, so every line is cut to its width rather than wrapped ("rss\n481MiB" is unreadable), and the
sparklines are drawn in the line's text on a fixed 0-100 % scale: Textual's Sparkline widget scales
to the data's own min..max, so a steady 97 % CPU read as a wall of full blocks.

The pane draws a `TelemetryView` (plain numbers, NaN or None for "not available"), which the app
builds from the telemetry service's snapshot, so this widget never calls NVML or psutil itself and
can be tested with hand-made views.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Static

from nexus_core.text import clean_text
from nexus_core.units import gib
from nexus_tui import format as fmt
from nexus_tui.telemetry.view import GpuView, TelemetryView

BARS = " ▁▂▃▄▅▆▇█"
LABEL = 5
"""Label column width ("util ", "mem  "): values line up under each other."""
VALUE = 16


def _n(x: Any, spec: str = ".0f", unit: str = "") -> str:
    if x is None or not isinstance(x, (int, float)) or (isinstance(x, float) and not math.isfinite(x)):
        return "N/A"
    return f"{x:{spec}}{unit}"


def spark(history: list[float], width: int, top: float = 100.0) -> str:
    """The last `width` readings as one line of bars on a fixed 0..top scale (N/A readings blank)."""
    out = []
    for v in history[-width:] if width > 0 else []:
        ok = isinstance(v, (int, float)) and math.isfinite(v)
        out.append(BARS[max(0, min(8, round(8 * v / top)))] if ok else " ")
    return "".join(out)


def _row(t: Text, label: str, value: str, history: list[float] | None, width: int, style: str = "") -> None:
    """One line: label, value, and a sparkline in what width is left."""
    if t.plain:
        t.append("\n")
    t.append(f"{label:<{LABEL}}", style="dim")
    t.append(f"{value:<{VALUE}}", style=style)
    if history:
        t.append(spark(history, width - LABEL - VALUE), style="cyan")


def gpu_lines(gpu: GpuView, width: int = 40) -> Text:
    """A title, util, memory, temperature/power, clocks; then one line per process on the GPU."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"GPU{gpu.index} {clean_text(gpu.name)}".strip(), style="bold")
    _row(t, "util", _n(gpu.util, ".0f", "%"), gpu.util_history, width)
    _row(t, "mem", f"{gib(gpu.mem_used)}/{gib(gpu.mem_total)} GiB", gpu.mem_history, width)
    _row(
        t,
        "temp",
        f"{_n(gpu.temp, '.0f', '°C')}  power {_n(gpu.power, '.0f')}/{_n(gpu.power_limit, '.0f')} W",
        None,
        width,
    )
    _row(t, "clk", f"sm {_n(gpu.sm_clock)}  mem {_n(gpu.mem_clock)} MHz", None, width)
    for pid, run, mem in gpu.processes:
        t.append("\n  ")
        t.append(f"{fmt.mib(mem):>8} ", style="" if run else "dim")
        t.append(f"{clean_text(run, limit=40) or 'other'} ({pid})", style="bold" if run else "dim")
    return t


def host_lines(view: TelemetryView, width: int = 40) -> Text:
    """Host CPU and RAM with their sparklines, then one line per run: name, CPU, RSS."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("Host", style="bold")
    _row(t, "CPU", _n(view.cpu, ".0f", "%"), view.cpu_history, width)
    _row(t, "RAM", f"{gib(view.ram_used)}/{gib(view.ram_total)} GiB", view.ram_history, width)
    if view.runs:
        t.append("\nRuns", style="bold")
    name_w = max(6, width - 21)
    for name, color, cpu, rss in view.runs:
        name = clean_text(name)
        shown = name if len(name) <= name_w else name[: name_w - 1] + "…"
        t.append("\n")
        t.append(f"{shown:<{name_w}}", style=f"bold {color}" if color else "bold")
        t.append(f" cpu {_n(cpu, '.0f', '%'):>4} {fmt.mib(rss):>8}")
    return t


class TelemetryPane(VerticalScroll):
    """A GPU section (or the line saying why there is none) above the host section."""

    DEFAULT_CSS = """
    TelemetryPane { height: 1fr; padding: 0 1; }
    TelemetryPane Static { margin-bottom: 1; }
    TelemetryPane .gpu-error { color: $text-muted; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view = TelemetryView()
        self._gpu_count = -1
        self._lines: dict[str, tuple[int, str]] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="gpu-error", classes="gpu-error", markup=False)
        yield Static("", id="host", markup=False)

    def show(self, view: TelemetryView) -> None:
        self.view = view
        width = max(20, self.scrollable_content_region.width)
        if len(view.gpus) != self._gpu_count:
            self._rebuild_gpus(len(view.gpus))
        try:
            error = self.query_one("#gpu-error", Static)
            error.display = bool(view.gpu_error)
            self._set(error, view.gpu_error)
            for gpu in view.gpus:
                self._set(self.query_one(f"#gpu-{gpu.index}-text", Static), gpu_lines(gpu, width))
            self._set(self.query_one("#host", Static), host_lines(view, width))
        except NoMatches:  # not composed yet, or unmounting: the next sample draws it
            return

    def _set(self, widget: Static, content: Text | str) -> None:
        """Update a block, re-laying out the pane only when its number of lines changed (a layout
        pass over the whole screen every second was most of the idle dashboard's CPU)."""
        text = str(content)
        lines = text.count("\n")
        before = self._lines.get(widget.id or "")
        if before is not None and before[1] == text:
            return
        self._lines[widget.id or ""] = (lines, text)
        widget.update(content, layout=before is None or before[0] != lines)

    def _rebuild_gpus(self, count: int) -> None:
        self._gpu_count = count
        self._lines.clear()
        for old in self.query(".gpu-block"):
            old.remove()
        blocks = [Static("", id=f"gpu-{gpu.index}-text", classes="gpu-block") for gpu in self.view.gpus]
        if blocks:
            self.mount_all(blocks, before="#host")
