"""LR ramps on an optimizer Nexus did not build, composing with whatever scheduler the loop runs.

Why hooks and not "set param_groups' lr at step_end": torch's schedulers read `group["lr"]` back.
The chainable ones (StepLR, ExponentialLR, CosineAnnealingLR's recursive form, ReduceLROnPlateau)
compute the next LR from the one in the group, so a value written there would be compounded by them
step after step; LambdaLR and friends overwrite it, so the value would be lost at the next
`scheduler.step()`. So the group keeps the *scheduler's* LR at all times, and the change exists only
inside `optimizer.step()`: a step pre-hook saves each group's LR and replaces it with the effective
one, the post-hook puts the scheduler's value back. Whatever the scheduler does, it does to its own
numbers; the update uses ours.

The ramp itself: from the LR the last optimizer step used, linearly to `target_lr` over `ramp_steps`
optimizer steps (the scheduler's own movement is overridden meanwhile), then the scheduler's shape
continues, scaled so it starts at the target: factor = target / scheduler's LR at the ramp's end.
Several param groups keep their ratios to the peak group, which is the one the target names.

Several processes (torch.distributed, `nexus/ranks.py`): each rank hooks its own optimizer. Rank 0's
`held` control keeps a request for `take_request()` instead of starting it, and every rank then
`begin()`s the same ramp, from the same start LR, at the same step, so the replicas stay identical.
"""

from __future__ import annotations

import threading
from typing import Any

from nexus_core.units import is_real


class LRControl:
    """Hooks on one optimizer. `request(target, steps)` may be called from any thread; it takes effect
    at the next optimizer step. `last_lr` is the peak group's LR the last step really used."""

    def __init__(self, optimizer: Any) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if not groups or not all(_is_float(g.get("lr")) for g in groups):
            raise ValueError("run.watch() needs a torch optimizer whose param groups have a float lr")
        self.optimizer = optimizer
        self.factor = 1.0
        """Multiplier on the scheduler's LR once a ramp is over (1.0 until the first ramp)."""
        self.last_lr: float | None = None
        self.active = False
        """A ramp was requested: the optimizer's LR is no longer the scheduler's."""
        self.steps = 0
        self.held = False
        """Requests wait for `take_request()` (rank 0 of several) instead of starting at the next step."""
        self._lock = threading.Lock()
        self._pending: tuple[float, int, float | None] | None = None  # target, steps, start (None: ours)
        self._requested: tuple[float, int] | None = None
        self._ramp: tuple[float, float, int, int] | None = None  # start, target, steps, done
        self._saved: list[float] = []
        self._ratios: list[float] = [1.0] * len(groups)
        self._handles = (optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post))

    def request(self, target_lr: float, ramp_steps: int) -> str:
        """Ask for a ramp; returns the sentence the control reply carries."""
        with self._lock:
            if self.held:
                self._requested = (float(target_lr), int(ramp_steps))
            else:
                self._pending = (float(target_lr), int(ramp_steps), None)
        where = "on every rank, after the next step end" if self.held else "from the next optimizer step"
        return f"LR ramp from {self.current():.4g} to {target_lr:.4g} over {ramp_steps} steps, {where}"

    def take_request(self) -> tuple[float, int] | None:
        """The ramp asked for since the last call (held controls only): (target, steps), or None."""
        with self._lock:
            got, self._requested = self._requested, None
        return got

    def begin(self, target_lr: float, ramp_steps: int, start_lr: float) -> None:
        """Start a ramp at the next optimizer step from `start_lr` (the same on every rank)."""
        with self._lock:
            self._pending = (float(target_lr), max(int(ramp_steps), 1), float(start_lr))

    def current(self) -> float:
        """The peak group's LR now: what the last step used, else what the next would use without a ramp."""
        return self.last_lr if self.last_lr is not None else self._scheduled_peak() * self.factor

    def _scheduled_peak(self) -> float:
        return max(float(g["lr"]) for g in self.optimizer.param_groups)

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        groups = optimizer.param_groups
        saved = [float(g["lr"]) for g in groups]
        self._saved = saved
        ref = max(range(len(saved)), key=saved.__getitem__)
        if saved[ref] > 0:
            self._ratios = [s / saved[ref] for s in saved]
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            start = pending[2]
            if start is None:
                start = self.last_lr if self.last_lr is not None else saved[ref] * self.factor
            self._ramp = (start, pending[0], pending[1], 0)
            self.active = True
        if self._ramp is not None:
            start, target, steps, done = self._ramp
            done += 1
            peak = target if done >= steps else start + (target - start) * done / steps
            if done >= steps:
                self._ramp = None
                self.factor = target / saved[ref] if saved[ref] > 0 else 1.0
            else:
                self._ramp = (start, target, steps, done)
            lrs = [peak * r for r in self._ratios]
        else:
            lrs = [s * self.factor for s in saved]
        for g, lr in zip(groups, lrs, strict=True):
            g["lr"] = lr
        self.last_lr = lrs[ref]
        self.steps += 1

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        for g, lr in zip(optimizer.param_groups, self._saved, strict=False):
            g["lr"] = lr

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _is_float(x: Any) -> bool:
    return is_real(x)
