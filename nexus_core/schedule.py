"""LR schedules as multipliers on each param group's peak LR, and the resume ramp.

Pure Python on purpose: the torch-free dashboard previews a schedule through `python -m engine
lr-preview`, which must start in a blink, so this module never imports torch.

A schedule maps `step` (optimizer steps already taken, 0-based) to a multiplier. Shapes:
- cosine: linear warmup to 1, then `min + 0.5 (1 - min)(1 + cos(pi * progress))`.
- wsd: linear warmup, hold 1, decay over the last `decay_fraction` of the run (linear, 1 - sqrt, exp).
- constant: linear warmup, then 1.

A resume ramp (`with_ramp`) re-warms a run from the LR it stopped at, instead of jumping back to the
peak (a jump can wreck a converged run): linear from `start_mult` to `target_mult`, then the
post-warmup shape stretched over what is left of the (possibly extended) run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nexus_core.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from nexus_core.config import ScheduleConfig

NAMES = ("cosine", "wsd", "constant")
SHAPES = ("linear", "sqrt", "exp")
EXP_RATE = math.log(100.0)
"""exp decay: the weight falls like exp(-rate * p), rescaled to hit the floor exactly at p = 1."""


@dataclass
class Ramp:
    """One resume: from `start_step`, go linearly from `start_mult` to `target_mult` in `ramp_steps`."""

    start_step: int
    start_mult: float
    target_mult: float
    ramp_steps: int
    total_steps: int
    """Where the stretched shape after this ramp ends (the run's new total)."""

    @property
    def end_step(self) -> int:
        return self.start_step + self.ramp_steps


@dataclass
class Schedule:
    """Plain data (JSON-able via `to_dict`) so a checkpoint can keep the schedule and its ramps."""

    name: str = "cosine"
    warmup_steps: int = 0
    min_ratio: float = 0.1
    decay_fraction: float = 0.2
    decay_shape: str = "linear"
    total_steps: int = 1
    """The run's total now (the last ramp's new total when resumed)."""
    ramps: list[Ramp] = field(default_factory=list)
    """Resumes in step order; the last ramp that started at or before a step governs it."""
    base_total_steps: int = 0
    """Total of the schedule as first configured (0 = total_steps); keeps pre-resume history intact."""

    def __post_init__(self) -> None:
        _check(self.name in NAMES, f"schedule.name must be one of {', '.join(NAMES)}; got {self.name!r}")
        _check(
            self.decay_shape in SHAPES,
            f"schedule.decay_shape must be one of {', '.join(SHAPES)}; got {self.decay_shape!r}",
        )
        _check(self.total_steps >= 1, f"total steps must be at least 1, got {self.total_steps}")
        if self.base_total_steps <= 0:
            self.base_total_steps = self.total_steps
        _check(self.warmup_steps >= 0, f"schedule.warmup_steps must be 0 or more, got {self.warmup_steps}")
        _check(0.0 <= self.min_ratio <= 1.0, f"schedule.min_lr_ratio must be in [0, 1], got {self.min_ratio}")
        _check(
            0.0 < self.decay_fraction <= 1.0,
            f"schedule.decay_fraction must be in (0, 1], got {self.decay_fraction}",
        )

    @classmethod
    def from_config(cls, cfg: ScheduleConfig, total_steps: int) -> Schedule:
        """Build from the run's schedule config; `total_steps` is train.steps."""
        return cls(
            name=cfg.name,
            warmup_steps=cfg.warmup_steps,
            min_ratio=cfg.min_lr_ratio,
            decay_fraction=cfg.decay_fraction,
            decay_shape=cfg.decay_shape,
            total_steps=total_steps,
        )

    @property
    def warmup(self) -> int:
        """Warmup actually used: at most half the run, so a short run still decays to its floor."""
        return min(self.warmup_steps, self.base_total_steps // 2)

    def multiplier(self, step: float) -> float:
        """LR multiplier after `step` optimizer steps (floats allowed, for continuity checks)."""
        ramp = self._ramp_at(step)
        if ramp is None:
            return self._base(step)
        if step < ramp.end_step:
            frac = (step - ramp.start_step) / ramp.ramp_steps
            return ramp.start_mult + (ramp.target_mult - ramp.start_mult) * frac
        return self._shape(step, ramp.end_step, ramp.total_steps, ramp.target_mult)

    def with_ramp(
        self,
        start_step: int,
        start_mult: float,
        target_mult: float,
        ramp_steps: int,
        new_total: int | None = None,
    ) -> Schedule:
        """A copy that ramps from `start_mult` at `start_step` to `target_mult`, then decays by `new_total`.

        `start_mult` should be `self.multiplier(start_step)` (the LR the run is at) so nothing jumps.
        Ramps later than `start_step` are dropped: resuming from an earlier checkpoint rewrites the future.
        """
        total = self.total_steps if new_total is None else new_total
        _check(start_step >= 0, f"ramp start step must be 0 or more, got {start_step}")
        _check(ramp_steps >= 0, f"ramp steps must be 0 or more, got {ramp_steps}")
        _check(
            start_mult >= 0 and target_mult >= 0 and math.isfinite(start_mult) and math.isfinite(target_mult),
            f"ramp LR multipliers must be finite and not negative, got {start_mult} -> {target_mult}",
        )
        _check(
            total > start_step + ramp_steps,
            f"total steps ({total}) must be more than the resume step plus ramp steps "
            f"({start_step} + {ramp_steps}); raise the total or shorten the ramp",
        )
        kept = [r for r in self.ramps if r.start_step < start_step]
        new = Ramp(int(start_step), float(start_mult), float(target_mult), int(ramp_steps), int(total))
        return replace(self, total_steps=int(total), ramps=[*kept, new])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (ramps as a list of dicts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        """Inverse of `to_dict`; malformed data (a damaged checkpoint) raises CheckpointError."""
        try:
            fields = dict(data)
            ramps = [Ramp(**dict(r)) for r in fields.pop("ramps", [])]
            return cls(**fields, ramps=ramps)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"schedule state is malformed: {e}") from None
        except ConfigError as e:
            raise CheckpointError(f"schedule state is invalid: {e}") from None

    # -- the shapes ------------------------------------------------------------------------------

    def _ramp_at(self, step: float) -> Ramp | None:
        for ramp in reversed(self.ramps):
            if step >= ramp.start_step:
                return ramp
        return None

    def _base(self, step: float) -> float:
        """The schedule as configured: warmup to 1, then the post-warmup shape."""
        w = self.warmup
        if step < w:
            # (step + 1) / (w + 1): the first step already learns, and step w lands exactly on 1.
            return (max(step, 0.0) + 1.0) / (w + 1.0)
        total = self.base_total_steps
        return self._shape(step, w, total, 1.0, decay_over=total)

    def _floor(self, peak: float) -> float:
        """Where the decay ends: min_ratio, unless the peak itself is lower (then hold the peak)."""
        return min(self.min_ratio, peak)

    def _shape(
        self, step: float, start: float, total: int, peak: float, decay_over: float | None = None
    ) -> float:
        """The post-warmup shape: `peak` at `start` down to the floor at `total`, held after it.

        wsd decays over the last `decay_fraction` of `decay_over` steps (the whole run as configured;
        by default the span after `start`, which is what a resume stretches the shape onto).
        """
        if self.name == "constant":
            return peak
        end = self._floor(peak)
        span = total - start
        if span <= 0 or step >= total:
            return end
        if self.name == "cosine":
            progress = (step - start) / span
            return end + 0.5 * (peak - end) * (1.0 + math.cos(math.pi * progress))
        decay_len = self.decay_fraction * (span if decay_over is None else decay_over)
        decay_start = max(start, total - decay_len)
        if step <= decay_start:
            return peak
        p = (step - decay_start) / (total - decay_start)
        return end + (peak - end) * _decay_weight(self.decay_shape, p)


def _decay_weight(shape: str, p: float) -> float:
    """1 at p = 0 down to exactly 0 at p = 1, monotone."""
    if shape == "linear":
        return 1.0 - p
    if shape == "sqrt":
        return 1.0 - math.sqrt(p)
    lo = math.exp(-EXP_RATE)
    return (math.exp(-EXP_RATE * p) - lo) / (1.0 - lo)


def preview(schedule: Schedule, start: int, end: int, points: int) -> list[tuple[int, float]]:
    """About `points` evenly spaced (step, multiplier) pairs over [start, end], both ends included."""
    _check(end >= start, f"preview end ({end}) must not be before start ({start})")
    _check(points >= 1, f"preview needs at least 1 point, got {points}")
    if points == 1 or end == start:
        steps = [start]
    else:
        n = min(points, end - start + 1)
        steps = sorted({start + round(i * (end - start) / (n - 1)) for i in range(n)})
    return [(s, schedule.multiplier(s)) for s in steps]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
