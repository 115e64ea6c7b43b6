"""What the telemetry pane draws: plain numbers from one telemetry snapshot, NaN or None where a
reading is not available. Built by services.py from Telemetry's snapshot; the pane only draws it."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    processes: list[tuple[int, str, float | None]] = field(default_factory=list)
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
    ram_history: list[float] = field(default_factory=list)
    """RAM used, percent of total."""
    runs: list[tuple[str, str, float | None, int | None]] = field(default_factory=list)
    """(run name, colour #rrggbb, CPU %, RSS bytes) for each live run process."""
