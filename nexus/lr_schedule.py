"""The future of a loop's LR schedule, sampled on a copy, so the dashboard's ramp preview can draw it.

The dashboard cannot know what a script's scheduler will do (a LambdaLR's lambda is code), but the
reporter can: it copies the schedulers onto a stand-in optimizer that holds only the groups' numbers
(never the parameters or their state), steps the copies to the end of the run and publishes the peak
group's LR every few steps in the hello (`lr_schedule`, docs/PROTOCOL.md). The copy is made on the
training thread (the live scheduler is not touched meanwhile); stepping it happens on a thread of
its own. A schedule that depends on what the run measures (ReduceLROnPlateau) or a loop that sets
the LR itself has no knowable future: the hello says so in `source`, with no points.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.lr import LRControl

POINTS = 400
"""Points published: enough for a chart at any terminal width, a few kB in the hello."""
UNKNOWN_SPAN = 10_000
"""Steps sampled when the run does not know its total."""
MAX_SPAN = 1_000_000
"""Steps stepped at most (LambdaLR: about 10 s on a thread of its own)."""


class _Groups:
    """Stands in for the optimizer under the copies: the param groups' numbers, no parameters."""

    def __init__(self, groups: list[dict[str, Any]]) -> None:
        self.param_groups = groups
        self.defaults: dict[str, Any] = {}

    def peak(self) -> float:
        return max(float(g["lr"]) for g in self.param_groups)


def unknown_reason(control: LRControl) -> str:
    """Why the schedule's future cannot be sampled, or "" when it can."""
    if not control.schedulers:
        return "no torch LR scheduler drives this optimizer (the loop may set the LR itself)"
    plateau = [type(s).__name__ for s in control.schedulers if hasattr(s, "num_bad_epochs")]
    if plateau:
        return f"{plateau[0]} moves the LR on what the run measures"
    return ""


def snapshot(control: LRControl) -> tuple[list[Any], _Groups]:
    """Copies of the control's schedulers on a stand-in optimizer that holds the raw LRs (the training
    thread calls it, between two of its own steps)."""
    groups = [
        {k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in control.optimizer.param_groups
    ]
    for g, raw in zip(groups, control.raw_lrs(), strict=False):
        g["lr"] = raw
    stand_in = _Groups(groups)
    memo: dict[int, Any] = {id(control.optimizer): stand_in}
    for s in control.schedulers:
        memo[id(s.optimizer)] = stand_in
    clones = copy.deepcopy(control.schedulers, memo)
    for clone, live in zip(clones, control.schedulers, strict=True):
        if hasattr(clone, "_last_lr"):
            clone._last_lr = list(control._raw_last.get(id(live), clone._last_lr))
        if hasattr(clone, "_step_count"):
            clone._step_count = max(int(clone._step_count), 2)  # no "optimizer.step() overridden" warning
    return clones, stand_in


def sample(
    clones: list[Any], stand_in: _Groups, steps: int, points: int = POINTS
) -> tuple[list[int], list[float]]:
    """(offsets, peak LRs): offset 0 is the LR of the step the copy was made at, offset i the LR the
    i-th optimizer step after it uses; at most `points` of them, the last one included."""
    every = max(1, math.ceil(steps / max(points - 1, 1)))
    offsets, lrs = [0], [stand_in.peak()]
    for i in range(1, steps + 1):
        for clone in clones:
            clone.step()
        if i % every == 0 or i == steps:
            offsets.append(i)
            lrs.append(stand_in.peak())
    return offsets, lrs


def publish_future(
    control: LRControl, first_step: int, total_steps: int | None, publish: Callable[[dict[str, Any]], None]
) -> None:
    """Sample the schedule from run step `first_step` (the step this optimizer step belongs to) to the
    run's end and hand `publish` the hello's `lr_schedule` map; never raises into the loop."""
    names = ", ".join(type(s).__name__ for s in control.schedulers)
    reason = unknown_reason(control)
    if reason:
        publish({"source": f"unknown: {reason}", "step": [], "lr": []})
        return
    try:
        clones, stand_in = snapshot(control)
    except Exception as e:  # noqa: BLE001 - a scheduler that cannot be copied: its future is unknown
        publish(
            {"source": f"unknown: {names} could not be copied ({type(e).__name__})", "step": [], "lr": []}
        )
        return
    span = total_steps - first_step if total_steps and total_steps > first_step else UNKNOWN_SPAN
    span = max(1, min(span, MAX_SPAN))

    def work() -> None:
        try:
            offsets, lrs = sample(clones, stand_in, span)
        except Exception as e:  # noqa: BLE001
            publish(
                {
                    "source": f"unknown: {names} failed on a copy ({type(e).__name__}: {e})"[:300],
                    "step": [],
                    "lr": [],
                }
            )
            return
        publish({"source": names, "step": [first_step + o for o in offsets], "lr": lrs})

    threading.Thread(target=work, name="nexus-lr-schedule", daemon=True).start()
