"""GPU and host telemetry: per-GPU util/memory/temperature/power/clocks with sparklines and per-process
memory, or one plain line when there is no NVIDIA driver; host CPU/RAM; each run's CPU and RSS.

The pane draws a `TelemetryView` (plain numbers, NaN or None for "not available"), which the app
builds from the telemetry service's snapshot, so this widget never calls NVML or psutil itself and
can be tested with hand-made views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Sparkline, Static

from nexus_tui.widgets import format as fmt


@dataclass
class GpuView:
    """One GPU's latest reading; None or NaN where NVML could not say."""

    index: int
    name: str = ""
    util: float | None = None
    mem_used: float | None = None
    mem_total: float | None = None
    temp: float | None = None
    power: float | None = None
    power_limit: float | None = None
    sm_clock: float | None = None
    mem_clock: float | None = None
    processes: list[tuple[int, str, float]] = field(default_factory=list)
    """(pid, run name or '', GPU memory bytes)."""
    util_history: list[float] = field(default_factory=list)
    mem_history: list[float] = field(default_factory=list)


@dataclass
class TelemetryView:
    """What the pane shows."""

    gpus: list[GpuView] = field(default_factory=list)
    gpu_error: str = ""
    """Why there is no GPU telemetry (no driver, no GPU); '' when there is."""
    cpu: float | None = None
    ram_used: float | None = None
    ram_total: float | None = None
    cpu_history: list[float] = field(default_factory=list)
    runs: list[tuple[str, str, float | None, float | None]] = field(default_factory=list)
    """(run name, colour #rrggbb, CPU %, RSS bytes) for each live run process."""


def _n(x: Any, spec: str = ".0f", unit: str = "") -> str:
    if x is None or not isinstance(x, (int, float)) or (isinstance(x, float) and not math.isfinite(x)):
        return "N/A"
    return f"{x:{spec}}{unit}"


def _gib(x: Any) -> str:
    return _n(x / 2**30 if isinstance(x, (int, float)) else None, ".1f")


def gpu_lines(gpu: GpuView) -> Text:
    """Two lines of numbers for one GPU, then one per process on it."""
    t = Text()
    t.append(f"GPU{gpu.index} {gpu.name}\n", style="bold")
    t.append(
        f"util {_n(gpu.util, '.0f', '%')}  mem {_gib(gpu.mem_used)}/{_gib(gpu.mem_total)} GiB  "
        f"{_n(gpu.temp, '.0f', '°C')}\n"
        f"power {_n(gpu.power, '.0f')}/{_n(gpu.power_limit, '.0f')} W  "
        f"clocks {_n(gpu.sm_clock)}/{_n(gpu.mem_clock)} MHz"
    )
    for pid, run, mem in gpu.processes:
        t.append(f"\n  {pid} {run or '?'}  {fmt.mib(mem)}", style="dim" if not run else "")
    return t


def host_lines(view: TelemetryView) -> Text:
    t = Text()
    t.append("Host ", style="bold")
    t.append(f"CPU {_n(view.cpu, '.0f', '%')}  RAM {_gib(view.ram_used)}/{_gib(view.ram_total)} GiB")
    for name, color, cpu, rss in view.runs:
        t.append("\n  ")
        t.append(name, style=f"bold {color}" if color else "bold")
        t.append(f"  cpu {_n(cpu, '.0f', '%')}  rss {fmt.mib(rss)}")
    return t


class TelemetryPane(VerticalScroll):
    """Rebuilds its GPU blocks only when the number of GPUs changes; otherwise updates in place."""

    DEFAULT_CSS = """
    TelemetryPane { height: 1fr; padding: 0 1; }
    TelemetryPane Sparkline { height: 2; margin-bottom: 1; }
    TelemetryPane .gpu-error { color: $text-muted; margin-bottom: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view = TelemetryView()
        self._gpu_count = -1

    def compose(self) -> ComposeResult:
        yield Static("", id="gpu-error", classes="gpu-error", markup=False)
        yield Static("", id="host", markup=False)
        yield Sparkline([], id="cpu-spark")

    def show(self, view: TelemetryView) -> None:
        self.view = view
        if len(view.gpus) != self._gpu_count:
            self._rebuild_gpus(len(view.gpus))
        error = self.query_one("#gpu-error", Static)
        error.display = bool(view.gpu_error)
        error.update(view.gpu_error)
        for gpu in view.gpus:
            self.query_one(f"#gpu-{gpu.index}-text", Static).update(gpu_lines(gpu))
            self.query_one(f"#gpu-{gpu.index}-util", Sparkline).data = gpu.util_history[-120:] or [0]
            self.query_one(f"#gpu-{gpu.index}-mem", Sparkline).data = gpu.mem_history[-120:] or [0]
        self.query_one("#host", Static).update(host_lines(view))
        self.query_one("#cpu-spark", Sparkline).data = view.cpu_history[-120:] or [0]

    def _rebuild_gpus(self, count: int) -> None:
        self._gpu_count = count
        for old in self.query(".gpu-block"):
            old.remove()
        blocks = []
        for gpu in self.view.gpus:
            blocks += [
                Static("", id=f"gpu-{gpu.index}-text", classes="gpu-block", markup=False),
                Sparkline([], id=f"gpu-{gpu.index}-util", classes="gpu-block"),
                Sparkline([], id=f"gpu-{gpu.index}-mem", classes="gpu-block"),
            ]
        if blocks:
            self.mount_all(blocks, before="#host")
