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

import bisect
from dataclasses import dataclass, field

import numpy as np

from nexus_tui.downsample import downsample, ema_continue
from nexus_tui.runview import Series

BLOCK = 256
"""Points per summarised block: 1e6 points become ~8k candidates for the bucketing."""


class Column:
    """A float64 buffer that grows by doubling (amortised O(1) per appended point)."""

    __slots__ = ("buf", "n")

    def __init__(self) -> None:
        self.buf = np.empty(1024, dtype=np.float64)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.buf):
            grown = np.empty(max(need, 2 * len(self.buf)), dtype=np.float64)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.buf[: self.n]


class Envelope:
    """Points plus the index of the min and max of each full block of BLOCK points."""

    def __init__(self) -> None:
        self.x = Column()
        self.y = Column()
        self.extremes = Column()
        """Indices (as floats) of each full block's min and max y, two per block, in block order."""

    def __len__(self) -> int:
        return self.x.n

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        done = self.x.n // BLOCK
        self.x.extend(xs)
        self.y.extend(ys)
        full = self.x.n // BLOCK
        if full > done:
            blocks = self.y.buf[done * BLOCK : full * BLOCK].reshape(full - done, BLOCK)
            nan = np.isnan(blocks)  # NaN is never an extreme (a block of NaNs yields its first point)
            lo = np.argmin(np.where(nan, np.inf, blocks), axis=1)
            hi = np.argmax(np.where(nan, -np.inf, blocks), axis=1)
            base = np.arange(done, full) * BLOCK
            self.extremes.extend(np.column_stack((base + lo, base + hi)).ravel().astype(np.float64))

    def candidates(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """The points from index `start` on that can be a bucket's min or max: raw points in the
        partial blocks at both ends, block extremes in between, in index order."""
        n = self.x.n
        first_full = -(-start // BLOCK)
        last_full = n // BLOCK
        if last_full - first_full < 4:  # few blocks: the raw points are as cheap
            idx = np.arange(start, n)
        else:
            ext = self.extremes.view[2 * first_full : 2 * last_full].astype(np.int64)
            # `start` and the last point always: they fix the x range and the number being watched.
            idx = np.unique(np.concatenate((np.arange(start, first_full * BLOCK), ext,
                                            np.arange(last_full * BLOCK, n), [start, n - 1])))
        return self.x.view[idx], self.y.view[idx]


@dataclass
class CachedCurve:
    """One series on one x axis with one EMA weight, as of `n` points and `edits` of its Series."""

    weight: float
    n: int = 0
    edits: int = -1
    raw: Envelope = field(default_factory=Envelope)
    smooth: Envelope = field(default_factory=Envelope)
    state: tuple[float, int] = (0.0, 0)
    """EMA carry-over: the un-debiased average and how many finite points went into it."""

    def update(self, series: Series, x: str) -> None:
        if series.edits != self.edits or len(series) < self.n:
            self.__init__(self.weight)  # type: ignore[misc] - start over from the whole series
            self.edits = series.edits
        if len(series) == self.n:
            return
        xs = np.array(series.column(x)[self.n :], dtype=np.float64)
        ys = np.array(series.value[self.n :], dtype=np.float64)
        self.raw.extend(xs, ys)
        if self.weight > 0:
            smoothed, self.state = ema_continue(ys, self.weight, self.state)
            self.smooth.extend(xs, smoothed)
        self.n = len(series)


class CurveCache:
    """Chart-ready (x, y) per (run, key, x axis, EMA weight); entries not asked for in a redraw are
    dropped after it, so old weights and closed runs do not pile up."""

    def __init__(self) -> None:
        self._curves: dict[tuple[str, str, str, float], CachedCurve] = {}
        self._used: set[tuple[str, str, str, float]] = set()

    def curve(
        self, run: str, key: str, series: Series, x: str, weight: float, last_n: int, buckets: int,
    ) -> tuple[tuple[list[float], list[float]], tuple[list[float], list[float]] | None]:
        """((raw x, raw y), (smoothed x, smoothed y) or None when weight is 0), each downsampled to
        about 2 * buckets points, from the points within the last `last_n` steps (0 = all)."""
        cache_key = (run, key, x, round(weight, 3))
        self._used.add(cache_key)
        cached = self._curves.get(cache_key)
        if cached is None:
            cached = self._curves[cache_key] = CachedCurve(max(0.0, weight))
        cached.update(series, x)
        start = 0
        if last_n and cached.n:
            start = bisect.bisect_left(series.step, series.step[cached.n - 1] - last_n, 0, cached.n)
        raw = _prepared(cached.raw, start, buckets, x)
        smooth = _prepared(cached.smooth, start, buckets, x) if cached.weight > 0 else None
        return raw, smooth

    def sweep(self) -> None:
        """After a redraw: forget the curves it did not use."""
        for key in set(self._curves) - self._used:
            del self._curves[key]
        self._used.clear()


def _prepared(env: Envelope, start: int, buckets: int, x: str) -> tuple[list[float], list[float]]:
    if start >= len(env):
        return [], []
    xs, ys = env.candidates(start)
    if x == "time":
        xs = xs - env.x.buf[start]  # seconds since the first point shown
    return downsample(xs, ys, buckets)
