"""Reading a run's health between steps: loss spikes, grad-norm escalation, skipped batches, and
which exceptions are a full disk or out of memory (a person's problem, said in one line)."""

from __future__ import annotations

import errno
import math
import statistics
from collections import deque

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})
"""Errors that mean "no room to write": the run pauses for a person instead of losing records."""


def is_disk_full(e: OSError) -> bool:
    return e.errno in DISK_ERRNOS


def is_oom(e: BaseException) -> bool:
    """An allocation failure: Python's MemoryError, torch's CUDA OutOfMemoryError (a RuntimeError
    saying "out of memory") or its CPU allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(e, MemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class HealthWatch:
    """Spots trouble in the loss and grad-norm series: a spike (loss above mean + k·std of a recent
    window) and grad-norm escalation (gnorm above `gnorm_factor` × the window's median).

    One alert per kind per `cooldown` steps, so a rough patch is one line, not a flood.
    """

    def __init__(
        self,
        window: int = 50,
        k: float = 4.0,
        gnorm_factor: float = 10.0,
        min_samples: int = 20,
        cooldown: int = 50,
    ) -> None:
        self.losses: deque[float] = deque(maxlen=window)
        self.gnorms: deque[float] = deque(maxlen=window)
        self.k, self.gnorm_factor, self.min_samples, self.cooldown = k, gnorm_factor, min_samples, cooldown
        self._last: dict[str, int] = {}

    def check(self, step: int, loss: float, gnorm: float) -> list[tuple[str, str]]:
        """(kind, text) alerts for this step's finite loss and gnorm, then remember them."""
        out = []
        if len(self.losses) >= self.min_samples:
            mean, std = statistics.fmean(self.losses), statistics.pstdev(self.losses)
            limit = mean + self.k * max(std, 1e-3 * abs(mean))
            if loss > limit and self._ready("spike", step):
                out.append(
                    ("spike", f"loss {loss:.4f} above recent mean {mean:.4f} + {self.k:g} std ({limit:.4f})")
                )
            median = statistics.median(self.gnorms)
            if median > 0 and gnorm > self.gnorm_factor * median and self._ready("gnorm", step):
                out.append(
                    (
                        "gnorm",
                        f"grad norm {gnorm:.3g} is {gnorm / median:.0f}x the recent median {median:.3g}",
                    )
                )
        if math.isfinite(loss) and math.isfinite(gnorm):
            self.losses.append(loss)
            self.gnorms.append(gnorm)
        return out

    def _ready(self, kind: str, step: int) -> bool:
        if step - self._last.get(kind, -(10**9)) < self.cooldown:
            return False
        self._last[kind] = step
        return True


class SkipTally:
    """nan_policy=skip drops bad batches silently otherwise, but one alert per batch would flood the
    pipe and the dashboard on a run that went bad for good. So: alert the first skip at once, then at
    most once per `every` steps, each later alert counting the skips it stands for."""

    def __init__(self, every: int = 100) -> None:
        self.every = every
        self.total = 0
        self._unsaid = 0
        self._last: int | None = None

    def skipped(self, step: int, text: str) -> str | None:
        """Count a skipped batch at `step`; the alert text to send now, or None to stay quiet."""
        self.total += 1
        self._unsaid += 1
        if self._last is not None and step - self._last < self.every:
            return None
        if self._unsaid > 1:
            text += f" ({self._unsaid} bad batches skipped since the alert at step {self._last}, {self.total} in all)"
        self._last, self._unsaid = step, 0
        return text
