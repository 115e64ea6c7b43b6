"""downsample keeps what the eye needs (spikes, dips, the last point) and caps the size; ema matches
TensorBoard's debiased recurrence."""

from __future__ import annotations

import math
import random
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_tui.curves.downsample import downsample, ema_continue


def ema(ys: list[float], w: float) -> list[float]:
    return ema_continue(ys, w)[0].tolist()


def _reference_ema(ys: list[float], w: float) -> list[float]:
    """TensorBoard's smoothing loop, written the slow obvious way."""
    out, last, n = [], 0.0, 0
    for y in ys:
        if not math.isfinite(y):
            out.append(y)
            continue
        last = last * w + (1 - w) * y
        n += 1
        out.append(last / (1 - w**n))
    return out


def test_short_series_come_back_unchanged() -> None:
    xs, ys = [1, 2, 3], [3.0, 1.0, 2.0]
    assert downsample(xs, ys, 10) == ([1.0, 2.0, 3.0], [3.0, 1.0, 2.0])
    assert downsample([], [], 10) == ([], [])


def test_size_is_capped_and_spikes_and_last_point_survive() -> None:
    rng = random.Random(0)
    n = 200_000
    xs = array("d", range(n))
    ys = array("d", (2.0 + rng.random() * 0.1 for _ in range(n)))
    ys[123_457] = 50.0  # a loss spike
    ys[77_001] = -3.0  # a dip
    ys[-1] = 2.05
    dx, dy = downsample(xs, ys, 500)
    assert len(dx) <= 2 * 500 + 1
    assert 50.0 in dy and dx[dy.index(50.0)] == 123_456 + 1
    assert -3.0 in dy and dx[dy.index(-3.0)] == 77_001
    assert dx[-1] == n - 1 and dy[-1] == 2.05
    assert dx == sorted(dx)


def test_each_bucket_keeps_its_min_and_max() -> None:
    xs = list(range(1000))
    ys = [math.sin(i / 7.0) + (i % 13) * 0.01 for i in xs]
    dx, dy = downsample(xs, ys, 10)
    for b in range(10):
        lo, hi = b * 99.9, (b + 1) * 99.9
        inside = [y for x, y in zip(xs, ys, strict=True) if lo <= x < hi or (b == 9 and x == 999)]
        kept = [y for x, y in zip(dx, dy, strict=True) if lo <= x < hi or (b == 9 and x == 999)]
        assert min(inside) in kept and max(inside) in kept


def test_unsorted_x_and_nan_values_are_handled() -> None:
    xs = list(range(3000, 0, -1))
    ys = [float("nan") if i % 5 == 0 else float(i) for i in range(3000)]
    dx, dy = downsample(xs, ys, 20)
    assert dx == sorted(dx)
    assert all(math.isfinite(y) for y in dy[:-1])
    assert max(dy) == 2999.0  # the largest finite value survives


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.integers(1, 50),
)
def test_downsample_never_invents_points(ys: list[float], buckets: int) -> None:
    xs = list(range(len(ys)))
    dx, dy = downsample(xs, ys, buckets)
    assert len(dx) <= max(len(ys), 2 * buckets + 1)
    assert dx[-1] == xs[-1] and dy[-1] == ys[-1]
    for x, y in zip(dx, dy, strict=True):
        assert ys[int(x)] == y
    assert min(dy) == min(ys) and max(dy) == max(ys)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=700),
    st.sampled_from([0.0, 0.003, 0.3, 0.6, 0.9, 0.99, 0.999]),
)
def test_ema_matches_the_tensorboard_recurrence(ys: list[float], w: float) -> None:
    got, want = ema(ys, w), _reference_ema(ys, w)
    assert len(got) == len(want)
    for g, r in zip(got, want, strict=True):
        assert math.isclose(g, r, rel_tol=1e-9, abs_tol=1e-6)


def test_ema_is_debiased_and_skips_non_finite() -> None:
    assert all(math.isclose(v, 5.0) for v in ema([5.0, 5.0, 5.0], 0.9))  # no pull towards 0
    out = ema([1.0, float("nan"), 3.0], 0.5)
    assert math.isnan(out[1])
    assert math.isclose(out[2], _reference_ema([1.0, 3.0], 0.5)[1])
    assert ema([], 0.6) == []
