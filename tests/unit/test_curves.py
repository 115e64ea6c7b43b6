"""The chart cache: appending points extends it and gives what recomputing from scratch gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nexus_tui.curves.curves import BLOCK, FAN, CurveCache, Envelope
from nexus_tui.curves.downsample import downsample, ema_continue
from nexus_tui.history.runview import Series


def _series(n: int, start: int = 1, nan_every: int = 0) -> Series:
    s = Series()
    rng = np.random.default_rng(n)
    for step in range(start, start + n):
        y = 3.0 / math.sqrt(step) + 0.1 * rng.standard_normal()
        if nan_every and step % nan_every == 0:
            y = float("nan")
        s.append(step, step * 64.0, 1000.0 + step, y)
    return s


def test_ema_continue_in_chunks_equals_ema_of_the_whole() -> None:
    ys = list(_series(5000, nan_every=97).value)
    whole = ema_continue(ys, 0.9)[0]  # the whole series in one call
    state, parts = (0.0, 0), []
    for a, b in ((0, 1), (1, 300), (300, 301), (301, 5000)):
        out, state = ema_continue(ys[a:b], 0.9, state)
        parts.append(out)
    chunked = np.concatenate(parts)
    assert np.allclose(chunked, whole, equal_nan=True, rtol=1e-12)
    assert np.isnan(chunked[96]) and np.isfinite(chunked[97])


def test_cached_curve_grows_by_appends_and_matches_a_fresh_computation() -> None:
    series = _series(10 * BLOCK + 17)
    cache = CurveCache()
    cache.curve("r", "loss", series, "step", 0.8, 0, 100)
    for step in range(len(series) + 1, len(series) + 3 * BLOCK):  # a live run: points keep coming
        series.append(step, step * 64.0, 1000.0 + step, 1.0 / step)
        if step % 50 == 0:
            cache.curve("r", "loss", series, "step", 0.8, 0, 100)
    (rx, ry), (sx, sy) = cache.curve("r", "loss", series, "step", 0.8, 0, 100)
    fresh = CurveCache().curve("r", "loss", series, "step", 0.8, 0, 100)
    assert (rx, ry) == fresh[0], "raw points: exactly what a fresh computation picks"
    assert sx == fresh[1][0] and sy == pytest.approx(fresh[1][1], rel=1e-12), "EMA: the same up to rounding"
    values = np.array(series.value)
    smoothed = ema_continue(list(values), 0.8)[0]
    # The drawn EMA is stored float32: equal to 7 digits.
    assert sy == pytest.approx([smoothed[int(x) - 1] for x in sx], rel=1e-6), (
        "each point is the EMA at its step"
    )
    assert len(rx) <= 2 * 100 + 1 and rx[-1] == series.step[-1], "bounded, and the last point is kept"
    assert min(ry) == values.min() and max(ry) == values.max(), "spikes survive the block summaries"
    # Every bucket's extremes are those of the raw points in it (the block summaries lose nothing).
    ex, ey = downsample(list(series.step), list(values), 100)
    assert min(ey) == min(ry) and max(ey) == max(ry)


def test_a_backfill_or_resume_cut_rebuilds_the_cache() -> None:
    series = _series(3 * BLOCK)
    cache = CurveCache()
    cache.curve("r", "loss", series, "step", 0.6, 0, 64)
    series.cut_from(100)  # a resume re-draws from step 100
    for step in range(100, 200):
        series.append(step, step * 64.0, 5000.0 + step, 10.0)
    again = cache.curve("r", "loss", series, "step", 0.6, 0, 64)
    assert again == CurveCache().curve("r", "loss", series, "step", 0.6, 0, 64)
    assert again[0][0][-1] == 199 and again[0][1][-1] == 10.0


def test_window_and_time_axis() -> None:
    series = _series(4000)
    cache = CurveCache()
    (rx, _), smooth = cache.curve("r", "lr", series, "time", 0.0, 500, 64)
    assert smooth is None
    assert 0.0 <= rx[0] < 10 and rx[-1] == pytest.approx(500.0), (
        "the last 500 steps, seconds from the first shown"
    )
    cache.sweep()
    cache.sweep()
    assert not cache._curves, "curves no redraw asked for are dropped"


def test_the_smoothed_copy_is_float32_and_the_ema_float64_underneath() -> None:
    """The cache's only series-sized copy (the EMA) takes 4 bytes a point; what it draws is the
    float64 EMA rounded once (no drift over a million points: the carry-over state stays float64)."""
    series = _series(3 * BLOCK + 5, nan_every=50)
    cache = CurveCache()
    cache.curve("r", "ce", series, "step", 0.9, 0, 40)
    cached = next(iter(cache._curves.values()))
    assert cached.smooth_y.view.dtype == np.float32 and len(cached.smooth_y.view) == len(series)
    exact = ema_continue(list(series.value), 0.9)[0]
    assert np.allclose(cached.smooth_y.view, exact, rtol=1e-6, equal_nan=True)
    assert np.array_equal(np.isnan(cached.smooth_y.view), np.isnan(exact))


def test_a_curve_warmed_batch_by_batch_draws_as_one_worked_out_at_once() -> None:
    """A history still being read is warmed as each batch arrives (nothing drawn); the redraw when it
    is whole then gives exactly what a cache that never saw the batches gives, and a warmed curve is
    kept by the sweep after a redraw that did not draw it."""
    whole = _series(40 * BLOCK + 5, nan_every=301)
    growing = Series()
    warm = CurveCache()
    for at in range(0, len(whole), 7 * BLOCK + 3):  # batches that do not line up with the blocks
        for i in range(at, min(at + 7 * BLOCK + 3, len(whole))):
            growing.append(whole.step[i], whole.tokens[i], whole.time[i], whole.value[i])
        for weight in (0.0, 0.6):
            warm.warm("r", "ce", growing, weight)
        warm.sweep()
    assert len(warm._curves) == 2, "warmed curves survive the sweep of a redraw that did not draw them"
    fresh = CurveCache()
    for weight in (0.0, 0.6):
        assert warm.curve("r", "ce", growing, "step", weight, 0, 60) == fresh.curve(
            "r", "ce", whole, "step", weight, 0, 60
        )


def _long_series(n: int, seed: int = 0) -> tuple[Series, np.ndarray]:
    """n points in one bulk load (as a history arrives), with a few spikes and dips; returns the
    series and the indices of the spikes and dips."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1, dtype=np.float64)
    ys = 3.0 / np.sqrt(steps) + 0.01 * rng.standard_normal(n)
    odd = rng.choice(n, 12, replace=False)
    ys[odd[:6]] += 5.0
    ys[odd[6:]] -= 5.0
    ys[rng.choice(n, 50, replace=False)] = np.nan
    s = Series()
    Series.extend_group([s], steps, steps * 64.0, 1000.0 + steps, [ys])
    return s, odd


def test_a_redraw_of_a_long_series_reads_a_bounded_number_of_points_and_keeps_every_spike() -> None:
    """The block summaries have levels: a redraw reads the coarsest with PER_BUCKET blocks a bucket,
    so the points it looks at do not grow with the run (O(chart width)); a spike or dip is a block
    extreme at every level, so each that bucketing every raw point would show is drawn."""
    buckets = 6
    read: dict[int, int] = {}
    for n in (300_000, 2_400_000):
        series, odd = _long_series(n)
        cache = CurveCache()
        envelope_candidates = Envelope.candidates

        def counting(env: Envelope, x, y, start, stop, b, n=n, real=envelope_candidates):  # noqa: ANN001
            got = real(env, x, y, start, stop, b)
            read[n] = max(read.get(n, 0), len(got[0]))
            return got

        Envelope.candidates = counting  # type: ignore[method-assign]
        try:
            (rx, ry), _ = cache.curve("r", "ce", series, "step", 0.6, 0, buckets)
        finally:
            Envelope.candidates = envelope_candidates  # type: ignore[method-assign]
        values = series.value.view
        full_x, _ = downsample(series.step.view, values, buckets)  # min/max bucketing of every raw point
        shown_odd = {float(series.step.view[i]) for i in odd} & set(full_x)
        assert shown_odd and shown_odd <= set(rx), "every spike and dip a bucket shows is drawn"
        assert max(ry) == np.nanmax(values) and min(ry) == np.nanmin(values)
        assert rx[-1] == float(n), "the last point: the number being watched"
        assert all(values[int(x) - 1] == y for x, y in zip(rx, ry, strict=True)), "only real points"
    assert read[2_400_000] <= 2 * read[300_000], read  # 8x the points, not 8x the work


def test_the_levels_grown_point_by_point_equal_those_of_one_bulk_load() -> None:
    series, _ = _long_series(BLOCK * FAN**2 * 3 + 77, seed=3)
    ys = series.value.view
    grown = Envelope()
    for stop in range(0, len(ys) + 1, 5003):  # live batches that do not line up with any block
        grown.update(ys[:stop])
    grown.update(ys)
    bulk = Envelope()
    bulk.update(ys)
    assert len(bulk.levels) == 3
    for a, b in zip(grown.levels, bulk.levels, strict=True):
        assert np.array_equal(a.view, b.view)
    for level, column in enumerate(bulk.levels):  # each block's pair is that block's real min and max
        size = BLOCK * FAN**level
        for block, (lo, hi) in enumerate(column.view.reshape(-1, 2)[:5]):
            part = ys[block * size : (block + 1) * size]
            assert ys[lo] == np.nanmin(part) and ys[hi] == np.nanmax(part)
