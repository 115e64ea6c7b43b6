"""The line under the chart options: what one run is doing (starting, or H, best val, the forecast
of its final val loss and the ETA), and whether its `loss` is worth drawing beside H.

Headless: the charts panel (widgets/charts_panel.py) asks, and draws the text.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nexus_core.schema import STARTING
from nexus_tui import format as fmt
from nexus_tui.curves.forecast import forecast_final

if TYPE_CHECKING:
    from nexus_tui.history.store import MetricStore


def starting_text(run) -> str:
    """What a run with no step yet is doing, so a slow first step (torch import, data, compile)
    does not look like a dead dashboard."""
    began = run.started or run.updated  # the hello's time, or the launch's before the hello
    since = f" {time.time() - began:.0f}s" if began else ""
    return f"{run.label}: starting…{since} (importing torch, building the model, first step)"


def is_starting(run) -> bool:
    """Launched (or said hello) and no training step reported yet: the core's state says so (a loop
    that logs only `loss` has no H series, and is running all the same)."""
    return run.state == STARTING


def loss_differs(store: MetricStore, name: str) -> bool:
    """Show `loss` beside H only when it is not the same number (label smoothing, MTP, aux)."""
    run = store.get(name)
    if run is None:
        return False
    loss, ce = run.series["loss"].value[-20:], run.series["ce"].value[-20:]
    return any(abs(a - b) > 1e-6 for a, b in zip(loss, ce, strict=False))


class Forecasts:
    """Each run's forecast line, the fit redone only when an eval arrived or the total moved."""

    def __init__(self) -> None:
        self._forecasts: dict[tuple, tuple[float, float, float] | None] = {}

    def line(self, store: MetricStore, run) -> tuple[str, float | None]:
        """A line under the options for one run: H, best val, the projected final val loss, ETA.
        (Chart titles are too narrow for it: plotext drops a title that does not fit.)"""
        # H when the run reports pure CE; a loop that logs only `loss` gets its loss (as the first chart does)
        now = (
            f"H {fmt.loss(run.ce)}"
            if run.ce is not None or run.loss is None
            else f"loss {fmt.loss(run.loss)}"
        )
        title = f"{run.label}: {now} · best val ◆ {fmt.loss(run.best_val_loss)}"
        steps, vals = store.series(run.name, "val_loss", x="step")
        # The fit is pure Python over every eval: redo it only when an eval arrived or the total moved.
        key = (run.name, len(steps), steps[-1] if len(steps) else None, run.total_steps)
        if key not in self._forecasts:
            self._forecasts = {k: v for k, v in self._forecasts.items() if k[0] != run.name}
            self._forecasts[key] = (
                forecast_final(list(steps), list(vals), run.total_steps or 0) if len(steps) else None
            )
        guess = self._forecasts[key]
        if guess is None or (run.total_steps and run.step >= run.total_steps):
            return title, None  # nothing left to forecast: the run is at its total
        value, low, high = guess
        eta = f" · ETA {fmt.duration(run.eta_s)}" if run.eta_s else ""
        band = f"{low:.3f}–{high:.3f}" if low >= 0 else f"{low:.3f} to {high:.3f}"  # not "-1.2–-0.6"
        return f"{title} · forecast final val ≈ {value:.3f} ({band}){eta}", value
