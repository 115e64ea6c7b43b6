"""The data model of one run as the widgets see it: compact per-metric series and a RunView.

Split from store.py (which folds records into these) so each file has one job. Nothing here knows
about records arriving twice or out of order; MetricStore handles that.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nexus_core.recordtypes import Alert, Ckpt, Histogram, Log, Media, Sample, Table, Text
from nexus_core.schema import LIVE_STATES, PAUSED
from nexus_core.state import RunState
from nexus_core.text import clean_text
from nexus_tui.history.columnar.growable import Grow
from nexus_tui.history.series_keys import SERIES_KEYS

MAX_SAMPLES = 500
MAX_MEDIA = 2000
MediaRecord = Text | Table | Histogram | Media
"""What a run logged beyond numbers (nexus/media.py writes them; docs/PROTOCOL.md)."""
MAX_LOGS = 2000
MAX_ALERTS = 500
MAX_EXTRA_SERIES = 256
"""Series a run may add beyond ours from its records' extra keys: a writer logging a new key every
step must not grow the dashboard without bound."""
LABEL_MAX = 80
"""Longest run name shown whole (a folder name may be 255 bytes); longer ones end in '…'."""
_RATE_WINDOW = 50
"""Metric records used for the steps/s behind the ETA: recent enough to follow a pause or a slower phase."""
_SEQ_SET_LIMIT = 100_000
"""Out-of-order seqs remembered above the contiguous mark before the oldest gap is given up on."""


class Series:
    """One metric over a run: append-only columns (step, tokens, time, value) in growable numpy
    buffers, ordered by step. 8 bytes per number; a bulk load (`extend`) is one copy per column."""

    __slots__ = ("step", "tokens", "time", "value", "edits", "shared")

    def __init__(self) -> None:
        self.shared = False
        """step/tokens/time are the same Grow objects as other series' of the run (a bulk load of
        records that all had these metrics): one copy of the x columns, not six. Any change made to
        this series alone copies them first."""
        self.step = Grow()
        self.tokens = Grow()
        self.time = Grow()
        self.value = Grow()
        self.edits = 0
        """Changes other than appends (an insert, a cut): chart caches that extend by appending
        compare it to know when to start over."""

    def __len__(self) -> int:
        return len(self.step)

    def _own(self) -> None:
        if self.shared:
            self.step, self.tokens, self.time = (
                Grow(self.step.view),
                Grow(self.tokens.view),
                Grow(self.time.view),
            )
            self.shared = False

    @staticmethod
    def extend_group(
        group: list[Series],
        step: np.ndarray,
        tokens: np.ndarray,
        time: np.ndarray,
        values: list[np.ndarray],
    ) -> None:
        """Append a block to several series of one run at once, sharing their x columns when they
        all start empty or already share them; else each is extended on its own."""
        first = group[0]
        if all(not len(s) for s in group):
            x = (first.step, first.tokens, first.time)  # kept: a history load reserved their room
            for s in group:
                s.step, s.tokens, s.time = x
                s.shared = len(group) > 1
        if all(
            s.step is first.step
            and s.tokens is first.tokens
            and s.time is first.time
            and len(s.value) == len(first.step)
            for s in group
        ):
            first.step.extend(step)
            first.tokens.extend(tokens)
            first.time.extend(time)
            for s, v in zip(group, values, strict=True):
                s.value.extend(v)
            return
        for s, v in zip(group, values, strict=True):
            s.extend(step, tokens, time, v)

    @staticmethod
    def append_shared(
        group: list[Series],
        everyone: list[Series],
        step: float,
        tokens: float,
        time: float,
        values: list[float],
    ) -> bool:
        """Append one point to series that share their x columns, the x once, when `group` is every
        series sharing them (`everyone`: the run's) and they are in step; False (nothing done) if
        not, and the caller appends one by one (each then owns its x columns)."""
        first = group[0]
        if not first.shared or (first.step and step <= first.step[-1]):
            return False
        n = len(first.step)
        if any(
            s.step is not first.step
            or s.tokens is not first.tokens
            or s.time is not first.time
            or len(s.value) != n
            for s in group
        ):
            return False
        if sum(1 for s in everyone if s.step is first.step) != len(group):
            return False
        first.step.append(step)
        first.tokens.append(tokens)
        first.time.append(time)
        for s, v in zip(group, values, strict=True):
            s.value.append(v)
        return True

    def append(self, step: float, tokens: float, time: float, value: float) -> None:
        if self.shared:
            self._own()
        self.step.append(step)
        self.tokens.append(tokens)
        self.time.append(time)
        self.value.append(value)

    def extend(self, step: np.ndarray, tokens: np.ndarray, time: np.ndarray, value: np.ndarray) -> None:
        """Append a block of points (steps increasing, all after the last one: the caller checks)."""
        self._own()
        self.step.extend(step)
        self.tokens.extend(tokens)
        self.time.extend(time)
        self.value.extend(value)

    def insert_sorted(self, step: float, tokens: float, time: float, value: float) -> None:
        """A late point (a backfill from the file): put it where its step belongs."""
        at = int(np.searchsorted(self.step.view, step, side="right"))
        if at and self.step[at - 1] == step:
            return  # that step is already there
        self._own()
        self.edits += 1
        for column, v in ((self.step, step), (self.tokens, tokens), (self.time, time), (self.value, value)):
            column.insert(at, v)

    def cut_from(self, step: float) -> None:
        """Drop every point at or after `step`: a resumed run is re-drawing that stretch."""
        at = int(np.searchsorted(self.step.view, step, side="left"))
        self._own()
        self.edits += 1
        for column in (self.step, self.tokens, self.time, self.value):
            del column[at:]

    def column(self, x: str) -> Grow:
        """The x column for step | tokens | time (another name: step; a run maps a logged metric
        as x with RunView.x_column)."""
        return {"step": self.step, "tokens": self.tokens, "time": self.time}.get(x, self.step)

    @property
    def last(self) -> float | None:
        return self.value[-1] if self.value else None


@dataclass(kw_only=True)
class RunView(RunState):
    """One run as the widgets see it: the core's RunState (state, step, best val, ...) plus its
    series, samples, checkpoints, alerts and logs. Updated by MetricStore.ingest only."""

    name: str
    run_dir: Path | None
    color: int
    """Stable index of this run (order first seen): pick its palette colour with color % len(palette)."""
    samples: list[Sample] = field(default_factory=list)
    media: list[MediaRecord] = field(default_factory=list)
    """What the run logged beyond numbers (text, tables, histograms, pictures), in step order, at most
    MAX_MEDIA."""
    ckpts: list[Ckpt] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    logs: deque[Log] = field(default_factory=lambda: deque(maxlen=MAX_LOGS))
    loading: float | None = None
    """How much of the run's history has been read (0..1) while a large file loads; None after."""
    series: dict[str, Series] = field(default_factory=lambda: {k: Series() for k in SERIES_KEYS})
    _rate: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=_RATE_WINDOW), repr=False)
    label: str = field(default="", init=False)
    """The name as shown: `name` is the run folder's name (untrusted, the key commands use), `label`
    is it cleaned of escape sequences and control characters and cut to LABEL_MAX characters."""

    def __post_init__(self) -> None:
        self.label = clean_text(self.name, limit=LABEL_MAX)

    def x_axes(self) -> list[str]:
        """The logged metrics this run asked to be drawn against (define_metric's step_metric, e.g.
        nanoGPT's `iter`, an epoch count) that it has logged."""
        metrics = ((self.hello.meta or {}).get("metrics") if self.hello is not None else None) or {}
        if not isinstance(metrics, dict):
            return []
        named = {d.get("step_metric") for d in metrics.values() if isinstance(d, dict)}
        return sorted(x for x in named if isinstance(x, str) and x in self.series and len(self.series[x]))

    def x_column(self, series: Series, x: str) -> Grow:
        """`series`' x values on axis x: its own step/tokens/time, or for a logged metric (a
        step_metric) that metric's latest value at or before each point's step (its first value
        before it was logged); a metric this run never logged: the steps."""
        if x in ("step", "tokens", "time") or x not in self.series or not len(self.series[x]):
            return series.column(x)
        by = self.series[x]
        steps, by_steps, by_values = series.step.view, by.step.view, by.value.view
        at = np.clip(np.searchsorted(by_steps, steps, side="right") - 1, 0, None)
        return Grow(by_values[at])

    @property
    def steps_per_s(self) -> float | None:
        """Recent training speed from the metric records' own timestamps (works for replayed files too)."""
        if len(self._rate) < 2:
            return None
        (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)

    @property
    def eta_s(self) -> float | None:
        """Seconds to total_steps at the recent speed; None when not training, stalled or not known."""
        if self.state not in LIVE_STATES or self.state == PAUSED or self.total_steps <= 0 or self.stalled():
            return None
        rate = self.steps_per_s
        if rate is None:
            return None
        return max(0.0, (self.total_steps - self.step) / rate)


class SeqFilter:
    """Which seqs of one run were already ingested, in O(gaps) memory: everything below `mark` plus
    the few seen above it (a pipe that dropped records leaves gaps until the file fills them)."""

    __slots__ = ("mark", "above", "max_seen")

    def __init__(self) -> None:
        self.mark = 0
        self.above: set[int] = set()
        self.max_seen = -1

    def seen(self, seq: int) -> bool:
        """Whether `seq` was ingested already (without recording it)."""
        return seq < self.mark or seq in self.above

    def first_time(self, seq: int) -> bool:
        if seq == self.mark and not self.above:  # the usual case: the next record, in order
            self.mark += 1
            self.max_seen = max(self.max_seen, seq)
            return True
        if seq < self.mark or seq in self.above:
            return False
        self.above.add(seq)
        self.max_seen = max(self.max_seen, seq)
        while self.mark in self.above:
            self.above.discard(self.mark)
            self.mark += 1
        if len(self.above) > _SEQ_SET_LIMIT:  # a gap nobody will fill: stop remembering it
            self.mark = min(self.above)
            while self.mark in self.above:
                self.above.discard(self.mark)
                self.mark += 1
        return True
