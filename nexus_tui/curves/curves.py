"""Chart-ready copies of the store's series, kept between redraws and extended as points append.

A redraw used to copy every series out of the store, smooth all of it and bucket all of it: O(N) per
series per frame, 0.8 s at 200k steps. Here each (run, metric, x axis, EMA weight) keeps its x, raw y
and smoothed y in growable numpy buffers, extended by only the points that arrived since the last
frame (the EMA carries its state over), plus the min and max of every full block of BLOCK points. A
redraw then downsamples the block extremes instead of the raw points: O(N / BLOCK + buckets).
Anything other than an append (a late backfill inserted mid-series, a resume cutting it back) bumps
the series' `edits` counter and the cached copy is rebuilt once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nexus_tui.curves.downsample import downsample, ema_continue
from nexus_tui.history.columnar.growable import Grow
from nexus_tui.history.runview import Series

BLOCK = 256
"""Points per summarised block: 1e6 points become ~8k candidates for the bucketing."""
FAN = 8
"""Blocks of one level a block of the level above summarises: 256, 2048, 16384, ... points."""
PER_BUCKET = 8
"""Blocks a chart bucket must hold at the level a redraw reads (the edge blocks of a bucket may
straddle its neighbour: with 8 or more a bucket, its min and max are nearly always exact)."""
CHUNK = 256 * BLOCK
"""A whole history is smoothed and summarised this many points at a time (the EMA carries its state
over, as between live frames): the temporaries stay ~0.5 MB instead of several copies of the series,
which is most of the peak memory of opening a million-step run."""


class Envelope:
    """The indices of the min and max of each full block of a y column it does not own (the
    series' own buffer, or a smoothed copy), at several block sizes, extended as the column grows:
    level 0 has blocks of BLOCK points, each level above blocks of FAN blocks of the one below. A
    redraw takes its candidates from the coarsest level that still has PER_BUCKET blocks for each of
    the chart's buckets, so it costs O(chart width) however long the run; a block's extremes are
    its real points, so a spike is always among them."""

    def __init__(self) -> None:
        self.levels: list[Grow] = [Grow(dtype=np.int64)]
        """Per level, the (min, max) point indices of each full block, two per block, in block order."""
        self.n = 0

    def update(self, y: np.ndarray) -> None:
        done = self.n // BLOCK
        self.n = len(y)
        full = self.n // BLOCK
        for first in range(done, full, CHUNK // BLOCK):
            last = min(full, first + CHUNK // BLOCK)
            blocks = y[first * BLOCK : last * BLOCK].reshape(last - first, BLOCK)
            nan = np.isnan(blocks)  # NaN is never an extreme (a block of NaNs yields its first point)
            lo = np.argmin(np.where(nan, np.inf, blocks), axis=1)
            hi = np.argmax(np.where(nan, -np.inf, blocks), axis=1)
            base = np.arange(first, last) * BLOCK
            self.levels[0].extend(np.column_stack((base + lo, base + hi)).ravel())
        for level in range(1, 64):
            below = self.levels[level - 1].view.reshape(-1, 2)
            groups = len(below) // FAN
            if groups == 0:
                break
            if level == len(self.levels):
                self.levels.append(Grow(dtype=np.int64))
            have = len(self.levels[level].view) // 2
            if groups > have:
                pairs = below[have * FAN : groups * FAN].reshape(groups - have, FAN, 2)
                lows, highs = pairs[:, :, 0], pairs[:, :, 1]
                low_y, high_y = y[lows], y[highs]
                lo = np.argmin(np.where(np.isnan(low_y), np.inf, low_y), axis=1)
                hi = np.argmax(np.where(np.isnan(high_y), -np.inf, high_y), axis=1)
                rows = np.arange(len(pairs))
                self.levels[level].extend(np.column_stack((lows[rows, lo], highs[rows, hi])).ravel())

    def candidates(
        self, x: np.ndarray, y: np.ndarray, start: int, stop: int, buckets: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The points in [start, stop) that can be a bucket's min or max, in index order: the
        extremes of the coarsest level's blocks with PER_BUCKET blocks a bucket, those of finer
        blocks and then raw points toward the partial ends, plus `start` and the last point (they
        fix the x range and the number being watched)."""
        level = 0
        while level + 1 < len(self.levels) and (stop - start) // (
            BLOCK * FAN ** (level + 1)
        ) >= PER_BUCKET * max(1, buckets):
            level += 1
        if (min(stop, self.n) - start) // BLOCK < 4:  # few blocks: the raw points are as cheap
            idx = np.arange(start, stop)
        else:
            idx = np.concatenate(([start], *self._indices(start, stop, level), [stop - 1]))
            idx = idx[np.r_[True, idx[1:] != idx[:-1]]]  # a block's min and max can be one point
        return x[idx], y[idx]

    def _indices(self, start: int, stop: int, level: int) -> list[np.ndarray]:
        """Sorted candidate indices in [start, stop): full blocks of `level`, the ends from below."""
        if level < 0:
            return [np.arange(start, stop)]
        size = BLOCK * FAN**level
        first = -(-start // size)
        last = min(stop, len(self.levels[level].view) // 2 * size) // size
        if last <= first:
            return self._indices(start, stop, level - 1)
        middle = np.sort(self.levels[level].view[2 * first : 2 * last].reshape(-1, 2), axis=1).ravel()
        return [
            *self._indices(start, first * size, level - 1),
            middle,
            *self._indices(last * size, stop, level - 1),
        ]


@dataclass
class CachedCurve:
    """One series on one x axis with one EMA weight, as of `n` points and `edits` of its Series. The
    raw points are the series' own buffers (no copy); only the smoothed y is held here."""

    weight: float
    n: int = 0
    edits: int = -1
    raw: Envelope = field(default_factory=Envelope)
    smooth_y: Grow = field(default_factory=lambda: Grow(dtype=np.float32))
    """The EMA as drawn: float32 (7 digits, more than a chart shows; half the memory of a copy of
    every smoothed series). The EMA itself runs in float64 and carries its state in `state`."""
    smooth: Envelope = field(default_factory=Envelope)
    state: tuple[float, int] = (0.0, 0)
    """EMA carry-over: the un-debiased average and how many finite points went into it."""

    def update(self, series: Series) -> None:
        if series.edits != self.edits or len(series) < self.n:
            CachedCurve.__init__(self, self.weight)  # start over from the whole series
            self.edits = series.edits
        if len(series) == self.n:
            return
        ys = series.value.view
        self.raw.update(ys)
        if self.weight > 0:
            if len(ys) - self.n > CHUNK:
                self.smooth_y.reserve(len(ys) - self.smooth_y.n)
            for at in range(self.n, len(ys), CHUNK):
                smoothed, self.state = ema_continue(ys[at : at + CHUNK], self.weight, self.state)
                self.smooth_y.extend(smoothed)
            self.smooth.update(self.smooth_y.view)
        self.n = len(series)


class CurveCache:
    """Chart-ready (x, y) per (run, key, x axis, EMA weight); entries not asked for in a redraw are
    dropped after it, so old weights and closed runs do not pile up."""

    def __init__(self) -> None:
        self._curves: dict[tuple[str, str, float], CachedCurve] = {}
        self._used: set[tuple[str, str, float]] = set()

    def curve(
        self,
        run: str,
        key: str,
        series: Series,
        x: str,
        weight: float,
        last_n: int,
        buckets: int,
        x_range: tuple[float, float] | None = None,
        x_column: Any = None,
    ) -> tuple[tuple[list[float], list[float]], tuple[list[float], list[float]] | None]:
        """((raw x, raw y), (smoothed x, smoothed y) or None when weight is 0), each downsampled to
        about 2 * buckets points, from the points within the last `last_n` steps (0 = all) and, when
        given, inside `x_range` (in the x axis' units as drawn): zoomed in far enough, every raw point.
        `x_column`: the x values when x is a logged metric (RunView.x_column), else the series' own."""
        cached = self._entry(run, key, series, weight)
        xs = (x_column if x_column is not None else series.column(x)).view[: cached.n]
        steps = series.step.view[: cached.n]
        start, stop = 0, cached.n
        if last_n and cached.n:
            start = int(np.searchsorted(steps, steps[-1] - last_n, side="left"))
        # Time is drawn as seconds since the window's first point (the run's, for the whole run).
        origin = float(xs[start]) if x == "time" and start < cached.n else 0.0
        if x_range is not None and cached.n:
            lo, hi = x_range
            start = max(start, int(np.searchsorted(xs, lo + origin, side="left")))
            stop = min(stop, int(np.searchsorted(xs, hi + origin, side="right")))
        raw = _prepared(cached.raw, xs, series.value.view, start, stop, buckets, origin)
        smooth = (
            _prepared(cached.smooth, xs, cached.smooth_y.view, start, stop, buckets, origin)
            if cached.weight > 0
            else None
        )
        return raw, smooth

    def warm(self, run: str, key: str, series: Series, weight: float) -> None:
        """Bring one cached curve up to date with its series without drawing it (a history still
        being read, batch by batch: its one redraw when whole then only adds the last batch)."""
        self._entry(run, key, series, weight)

    def _entry(self, run: str, key: str, series: Series, weight: float) -> CachedCurve:
        """The cached curve of (run, key, weight), made if new, up to date with `series`, and kept
        by the next sweep."""
        cache_key = (run, key, round(weight, 3))
        self._used.add(cache_key)
        cached = self._curves.get(cache_key)
        if cached is None:
            cached = self._curves[cache_key] = CachedCurve(max(0.0, weight))
        cached.update(series)
        return cached

    def sweep(self) -> None:
        """After a redraw: forget the curves it did not use."""
        for key in set(self._curves) - self._used:
            del self._curves[key]
        self._used.clear()


def _prepared(
    env: Envelope,
    x: np.ndarray,
    y: np.ndarray,
    start: int,
    stop: int,
    buckets: int,
    origin: float,
) -> tuple[list[float], list[float]]:
    if start >= stop:
        return [], []
    xs, ys = env.candidates(x, y, start, stop, buckets)
    if origin:
        xs = xs - origin
    return downsample(xs, ys, buckets)
