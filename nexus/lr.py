"""LR ramps on an optimizer Nexus did not build, made real: the ramped LR is the LR in `param_groups`.

Every other observer reads the LR from the optimizer's groups or from the scheduler (`get_last_lr()`):
HF's logged `learning_rate` and trainer_state.json, Lightning's LearningRateMonitor, wandb, and the
optimizer and scheduler state saved in checkpoints. So the groups hold the LR a step uses, ramp
included, from the scheduler's step (or the ramp's start) before it until the scheduler's step after
it, and a scheduler's `get_last_lr()` says the same: torch's convention, so a logger reading either at
its usual place reads the LR the step really used.

The difficulty is the script's scheduler, which reads `group["lr"]` back: the chainable ones (StepLR,
ExponentialLR, CosineAnnealingLR's recursive form, ReduceLROnPlateau) compute the next LR from the one
in the group, so our value would be compounded; LambdaLR, OneCycleLR and HF's schedules overwrite it,
so it would be lost at the next `scheduler.step()`. So Nexus keeps the schedule's own LR per group
(`raw`) beside the one it writes, and steps every scheduler of the optimizer on the raw numbers: the
scheduler's `step()` is wrapped (`ramped_scheduler`) to put the raw LRs back into the groups, run the
scheduler's own step, take its new raw LRs, and write the effective ones again. A loop that sets
`group["lr"]` itself (nanoGPT's `get_lr(it)`) is seen at the next optimizer step: a value other than
the one Nexus wrote is the schedule's new raw LR.

The schedulers are handed over by the adapters (HF, Lightning know the trainer's) or found at the
first optimizer step and again when a ramp starts (a plain loop's, by the optimizer they drive).

The ramp itself: from the LR the last optimizer step used, linearly to `target_lr` over `ramp_steps`
optimizer steps (the schedule's own movement is overridden meanwhile), then the schedule's shape
continues, scaled so it starts at the target: factor = target / schedule's LR at the ramp's end.
Several param groups keep their ratios to the peak group, which is the one the target names.

Several processes (torch.distributed, `nexus/ranks.py`): each rank hooks its own optimizer. Rank 0's
`held` control keeps a request for `take_request()` instead of starting it, and every rank then
`begin()`s the same ramp, from the same start LR, at the same step, so the replicas stay identical.
"""

from __future__ import annotations

import copyreg
import gc
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from nexus_core.units import is_real

_CONTROLS: weakref.WeakKeyDictionary[Any, LRControl] = weakref.WeakKeyDictionary()
"""Each adopted scheduler's control (not an attribute: a scheduler's state_dict() is its __dict__)."""
_RAMPED: dict[type, type] = {}


class LRControl:
    """Hooks on one optimizer. `request(target, steps)` may be called from any thread; it takes effect
    at the next optimizer step. `last_lr` is the peak group's LR the last step really used.
    `on_schedulers(control)` is called on the training thread at the first step (schedulers searched)
    and whenever a later search finds another."""

    def __init__(
        self,
        optimizer: Any,
        schedulers: Iterable[Any] = (),
        on_schedulers: Callable[[LRControl], None] | None = None,
    ) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if not groups or not all(_is_float(g.get("lr")) for g in groups):
            raise ValueError("run.watch() needs a torch optimizer whose param groups have a float lr")
        self.optimizer = optimizer
        self.factor = 1.0
        """Multiplier on the schedule's LR once a ramp is over (1.0 until the first ramp)."""
        self.last_lr: float | None = None
        self.active = False
        """A ramp was requested: the optimizer's LR is no longer the schedule's."""
        self.steps = 0
        self.held = False
        """Requests wait for `take_request()` (rank 0 of several) instead of starting at the next step."""
        self.schedulers: list[Any] = []
        """The schedulers stepped on the raw LRs (adopted: their step() is wrapped)."""
        self.on_schedulers = on_schedulers
        self._lock = threading.Lock()
        self._pending: tuple[float, int, float | None] | None = None  # target, steps, start (None: ours)
        self._requested: tuple[float, int] | None = None
        self._ramp: tuple[float, float, int, int] | None = None  # start, target, steps, done
        self._raw = [float(g["lr"]) for g in groups]
        """The schedule's own LR per group: what the groups would hold without Nexus."""
        self._written = list(self._raw)
        """What Nexus last wrote into the groups: another value there is the loop's (or a scheduler's)."""
        self._raw_last: dict[int, list[Any]] = {}
        self._ratios: list[float] = [1.0] * len(groups)
        self._searched = False
        self._inside = 0
        for scheduler in schedulers:
            self.adopt(scheduler)
        self._handles = (
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
        )

    # -- requests (any thread) ---------------------------------------------------------------------

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
        """The peak group's LR now: what the last step used, else what the next one will use."""
        return self.last_lr if self.last_lr is not None else max(self._written)

    def raw_lrs(self) -> list[float]:
        """The schedule's own LR per group (what the scheduler alone would have set)."""
        return list(self._raw)

    # -- schedulers --------------------------------------------------------------------------------

    def adopt(self, scheduler: Any) -> None:
        """Step `scheduler` on the raw LRs from now on (a wrapper such as accelerate's is unwrapped)."""
        scheduler = _unwrap(scheduler)
        if scheduler is None or any(s is scheduler for s in self.schedulers):
            return
        other = _CONTROLS.get(scheduler)
        if other is not None and other is not self:
            other._drop(scheduler)
        base = getattr(type(scheduler), "_nexus_base", type(scheduler))
        scheduler.__class__ = ramped_scheduler(base)
        _CONTROLS[scheduler] = self
        self.schedulers.append(scheduler)
        if hasattr(scheduler, "_last_lr"):
            self._raw_last[id(scheduler)] = list(scheduler._last_lr)

    def find_schedulers(self) -> None:
        """Adopt every torch LR scheduler alive in the process that drives this optimizer's groups."""
        self._searched = True
        module = sys.modules.get("torch.optim.lr_scheduler")
        if module is None:
            return
        kinds = tuple(
            k
            for k in (getattr(module, "LRScheduler", None), getattr(module, "ReduceLROnPlateau", None))
            if isinstance(k, type)
        )
        groups = self.optimizer.param_groups
        for obj in gc.get_objects():
            if (
                issubclass(type(obj), kinds)
                and getattr(getattr(obj, "optimizer", None), "param_groups", None) is groups
            ):
                self.adopt(obj)

    def _drop(self, scheduler: Any) -> None:
        self.schedulers = [s for s in self.schedulers if s is not scheduler]
        _CONTROLS.pop(scheduler, None)
        base = getattr(type(scheduler), "_nexus_base", None)
        if base is not None:
            scheduler.__class__ = base

    def _scheduler_step(self, scheduler: Any, base: Any, args: Any, kwargs: Any) -> Any:
        """A wrapped scheduler's step(): its own step on the raw LRs, then the effective ones written."""
        if self._inside:  # SequentialLR, ChainedScheduler stepping their parts: the outer one wraps it all
            return base.step(scheduler, *args, **kwargs)
        self._inside += 1
        groups = self.optimizer.param_groups
        try:
            self._sync_raw()
            for g, lr in zip(groups, self._raw, strict=False):
                g["lr"] = lr
            if id(scheduler) in self._raw_last:
                scheduler._last_lr = list(self._raw_last[id(scheduler)])
            return base.step(scheduler, *args, **kwargs)
        finally:
            self._inside -= 1
            self._raw = [float(g["lr"]) for g in groups]
            if hasattr(scheduler, "_last_lr"):
                self._raw_last[id(scheduler)] = list(scheduler._last_lr)
            self._write(self._effective())

    # -- the optimizer's hooks (training thread) ---------------------------------------------------

    @property
    def pending(self) -> bool:
        """A ramp was asked for and has not started yet."""
        return self._pending is not None

    def settle(self) -> None:
        """Start a requested ramp now (training thread, between steps): the groups say at once what the
        next step will use, so a logger reading them before that step is already right."""
        self._sync_raw()
        with self._lock:
            pending, self._pending = self._pending, None
        if not self._searched or pending is not None:
            first, before = not self._searched, len(self.schedulers)
            self.find_schedulers()
            if (first or len(self.schedulers) != before) and self.on_schedulers is not None:
                self.on_schedulers(self)
        if pending is not None:
            start = pending[2]
            if start is None:
                start = self.last_lr if self.last_lr is not None else max(self._written)
            self._ramp = (start, pending[0], pending[1], 0)
            self.active = True
            self._write(self._effective())

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.settle()
        lrs = self._effective()
        self._write(lrs)
        self.last_lr = lrs[self._ref()]
        self.steps += 1

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._ramp is not None:
            start, target, steps, done = self._ramp
            done += 1
            if done >= steps:
                self._ramp = None
                peak = self._raw[self._ref()]
                self.factor = target / peak if peak > 0 else 1.0
            else:
                self._ramp = (start, target, steps, done)
        # The groups keep the LR this step used until the scheduler steps (HF logs get_last_lr() in
        # between) or the next step begins: torch's own convention.

    # -- the numbers -------------------------------------------------------------------------------

    def _ref(self) -> int:
        return max(range(len(self._raw)), key=self._raw.__getitem__)

    def _sync_raw(self) -> None:
        """A group LR other than the one Nexus wrote was set by the loop (or an unadopted scheduler):
        it is the schedule's new raw LR."""
        for i, g in enumerate(self.optimizer.param_groups):
            lr = g["lr"]
            if i < len(self._written) and lr != self._written[i] and _is_float(lr):
                self._raw[i] = float(lr)

    def _effective(self) -> list[float]:
        """The LR per group the next optimizer step uses: the ramp's, else the schedule's times factor."""
        raw = self._raw
        ref = self._ref()
        if raw[ref] > 0:
            self._ratios = [r / raw[ref] for r in raw]
        if self._ramp is None:
            return [r * self.factor for r in raw]
        start, target, steps, done = self._ramp
        at = done + 1
        peak = target if at >= steps else start + (target - start) * at / steps
        return [peak * r for r in self._ratios]

    def _write(self, lrs: list[float]) -> None:
        """The groups, and each scheduler's get_last_lr(), say what the next step uses."""
        for g, lr in zip(self.optimizer.param_groups, lrs, strict=False):
            g["lr"] = lr
        self._written = list(lrs)
        if not self._inside:
            for scheduler in self.schedulers:
                if hasattr(scheduler, "_last_lr"):
                    scheduler._last_lr = list(lrs)

    def close(self) -> None:
        """Unhook: the groups keep the LR they hold (the ramped one), the schedulers step on their own."""
        for h in self._handles:
            h.remove()
        for scheduler in list(self.schedulers):
            self._drop(scheduler)


def ramped_scheduler(base: Any) -> type:
    """`base` with a step() that runs on the raw LRs of its control (one subclass per scheduler class;
    isinstance checks, state_dict() and load_state_dict() are the base class's; a pickled or copied
    one is a plain `base`, so torch.save(scheduler) never needs Nexus to load)."""
    cls = _RAMPED.get(base)
    if cls is None:

        def step(self: Any, *args: Any, **kwargs: Any) -> Any:
            control = _CONTROLS.get(self)
            if control is None:
                return base.step(self, *args, **kwargs)
            return control._scheduler_step(self, base, args, kwargs)

        def __reduce_ex__(self: Any, protocol: Any) -> Any:  # noqa: N807 - pickled, copied as the plain class
            return copyreg._reconstructor, (base, object, None), dict(self.__dict__)  # type: ignore[attr-defined]

        cls = type(
            base.__name__,
            (base,),
            {
                "step": step,
                "__reduce_ex__": __reduce_ex__,
                "_nexus_base": base,
                "__module__": base.__module__,
                "__qualname__": base.__qualname__,
                "__doc__": base.__doc__,
            },
        )
        _RAMPED[base] = cls
    return cls


def _unwrap(scheduler: Any) -> Any:
    """The torch scheduler under a wrapper (accelerate's AcceleratedScheduler keeps it as .scheduler)."""
    for _ in range(4):
        if (
            scheduler is None
            or hasattr(scheduler, "optimizer")
            and callable(getattr(scheduler, "get_last_lr", None))
            and type(scheduler).__name__ != "AcceleratedScheduler"
        ):
            return scheduler
        scheduler = getattr(scheduler, "scheduler", None)
    return None


def _is_float(x: Any) -> bool:
    return is_real(x)
