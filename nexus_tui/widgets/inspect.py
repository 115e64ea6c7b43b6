"""The inspect cursor's readout: exact step, tokens, time and every series' value of each shown run
at one x, as text under the charts (the charts draw the cursor as a line). Numpy-free at import (the
series' own arrays search themselves): the first frame imports this, not the data path."""

from __future__ import annotations

from typing import Any

from nexus_tui import format as fmt
from nexus_tui.curves.chartgrid import title

SHOWN = (
    ("ce", "H", fmt.loss),
    ("loss", "loss", fmt.loss),
    ("lr", "lr", fmt.lr),
    ("gnorm", "gnorm", None),
    ("tok_s", "tok/s", fmt.count),
)


def _at(series: Any, step: float) -> tuple[float, float] | None:
    """(step, value) of the series' last point at or before `step`."""
    steps = series.step.view
    j = int(steps.searchsorted(step, side="right")) - 1
    if j < 0:
        return None
    return float(steps[j]), float(series.value.view[j])


def nearest(series: Any, x_axis: str, x: float, window: int = 0, xs: Any = None) -> int | None:
    """Index of the series' point nearest to x (x in the axis' units as drawn: time is seconds
    since the window's first point); `xs`: the x values when x is a logged metric."""
    xs = series.column(x_axis).view if xs is None else xs
    if not len(xs):
        return None
    if x_axis == "time":
        steps = series.step.view
        start = int(steps.searchsorted(steps[-1] - window, side="left")) if window else 0
        x += float(xs[start])
    i = int(xs.searchsorted(x))
    if i >= len(xs) or (i > 0 and x - xs[i - 1] <= xs[i] - x):
        i -= 1
    return max(i, 0)


def readout(store: Any, runs: list[Any], x_axis: str, x: float, window: int = 0, extras: Any = ()) -> str:
    """One line per run: where the cursor is and what every series says there (the standard ones,
    and `extras`: the run's own series on the charts shown)."""
    lines = []
    for run in runs:
        ce = run.series["ce"]
        if not len(ce):  # a reporter's run may log only `loss`, or only its own keys
            ce = next((s for s in run.series.values() if len(s)), ce)
        i = nearest(
            ce, x_axis, x, window, run.x_column(ce, x_axis).view if hasattr(run, "x_column") else None
        )
        if i is None:
            continue
        step = float(ce.step.view[i])
        parts = [f"{run.name}: step {int(step):,}", f"tokens {fmt.count(ce.tokens.view[i])}"]
        first = float(ce.time.view[0])
        parts.append(f"t+{fmt.duration(float(ce.time.view[i]) - first)}")
        for key, label, form in SHOWN:
            got = _at(run.series[key], step)
            if got is not None and got[0] == step:
                parts.append(f"{label} {form(got[1]) if form else f'{got[1]:.4g}'}")
        for key in extras:
            got = _at(run.series[key], step) if key in run.series else None
            if got is not None:
                parts.append(f"{title(key)} {got[1]:.4g}")
        val = _at(run.series["val_loss"], step)
        if val is not None:
            parts.append(f"val {fmt.loss(val[1])} @{int(val[0]):,}")
        lines.append(" · ".join(parts))
    return "\n".join(lines)
