"""Shrink a series to what a terminal chart can show, and smooth it the way TensorBoard does.

plotext costs about 8 µs per point per series, so a 1e6-step run would take seconds to draw. A chart
a few hundred cells wide cannot show more than a couple of points per sub-column anyway, so we keep
the minimum and the maximum of each x-bucket (a loss spike or a NaN-guard dip stays visible, unlike
with striding or averaging) and always the last point (the number the user is watching).
Both functions are numpy-vectorised: the dashboard calls them several times a second per chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_EMA_BLOCK = 128
"""Block length of the vectorised EMA: weight**-k for k < block must stay inside float64."""


def downsample(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, buckets: int
) -> tuple[list[float], list[float]]:
    """At most about 2 * `buckets` + 1 points: per equal x-range, the min and max of y (in x order),
    plus the last point. Short inputs come back unchanged (as lists); NaN values are never chosen as
    a bucket's min/max but a bucket holding only NaNs is dropped, so the chart shows a gap."""
    n = min(len(xs), len(ys))
    if n == 0:
        return [], []
    x = np.array(xs[:n], dtype=np.float64)
    y = np.array(ys[:n], dtype=np.float64)
    buckets = max(1, int(buckets))
    if n <= 2 * buckets + 1:
        return x.tolist(), y.tolist()
    if np.any(x[1:] < x[:-1]):  # not sorted by x: sort (stable, so equal x keep arrival order)
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    lo, hi = x[0], x[-1]
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        bucket = np.zeros(n, dtype=np.int64)
    else:
        bucket = np.minimum(((x - lo) * (buckets / (hi - lo))).astype(np.int64), buckets - 1)
    # x is sorted, so each bucket is one contiguous run of indices starting at `starts`.
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    seg = np.cumsum(np.r_[False, bucket[1:] != bucket[:-1]])  # segment number of each point
    with np.errstate(invalid="ignore"):
        seg_min = np.fmin.reduceat(y, starts)
        seg_max = np.fmax.reduceat(y, starts)
    keep = np.zeros(n, dtype=bool)
    keep[-1] = True
    for extreme in (seg_min, seg_max):
        hits = np.flatnonzero(y == extreme[seg])  # NaN == NaN is False: all-NaN buckets vanish
        if hits.size:
            first = hits[np.r_[True, seg[hits][1:] != seg[hits][:-1]]]  # first hit per segment
            keep[first] = True
    idx = np.flatnonzero(keep)
    return x[idx].tolist(), y[idx].tolist()


def ema(ys: Sequence[float], weight: float) -> list[float]:
    """Debiased EMA of a whole series (TensorBoard's smoothing): `ema_continue` from the start."""
    return ema_continue(ys, weight)[0].tolist()


def ema_continue(
    ys: Sequence[float] | np.ndarray, weight: float, state: tuple[float, int] = (0.0, 0)
) -> tuple[np.ndarray, tuple[float, int]]:
    """Debiased exponential moving average, as TensorBoard's smoothing slider computes it:
    s_n = w*s_{n-1} + (1-w)*y_n, shown as s_n / (1 - w**n), so the first points stay on the data
    instead of dragged towards 0. Non-finite values are passed through and skipped (one NaN does not
    poison the rest); `weight` is clamped to [0, 0.999]. `state` is what the previous call returned
    (the un-debiased average and how many finite points it holds), so appending k points costs O(k)
    and gives the same numbers as smoothing the whole series again."""
    y = np.array(ys, dtype=np.float64)
    w = min(max(float(weight), 0.0), 0.999)
    if y.size == 0 or w == 0.0:
        return y, state
    finite = np.isfinite(y)
    if finite.all():  # the usual case: smoothed in place of the copy, no masking
        last = float(_ema_raw(y, w, state[0])[-1])
        return _debias(y, w, state[1]), (last, state[1] + int(y.size))
    out = y.copy()
    v = y[finite]
    if not v.size:
        return out, state
    raw = _ema_raw(v, w, state[0])
    last = float(raw[-1])
    _debias(raw, w, state[1])
    out[finite] = raw
    return out, (last, state[1] + int(v.size))


def _debias(raw: np.ndarray, w: float, before: int) -> np.ndarray:
    """Divide the k-th smoothed value (k counted from 1 after `before` earlier ones) by 1 - w**k, in
    place. Past the k where w**k < 1e-40 the divisor is exactly 1.0 in float64, so only the first few
    thousand points need the (slow) power: a million-point series costs no more than a short one."""
    upto = int(math.ceil(-40.0 / math.log10(w))) if 0.0 < w < 1.0 else 0
    m = max(0, min(raw.size, upto - before))
    if m:
        raw[:m] /= 1.0 - np.power(w, before + np.arange(1, m + 1, dtype=np.float64))
    return raw


def _ema_raw(v: np.ndarray, w: float, state: float) -> np.ndarray:
    """The recurrence s_k = w*s_{k-1} + (1-w)*v_k from `state`, in place of `v` (returned), in
    closed form per block: inside a block of length B starting from s,
    s_k = w**k * (1-w) * cumsum_j(w**-j * v_j + [j = 0] * w*s/(1-w)). Blocks are short enough that
    w**-j stays finite (a block shrinks for tiny w), so this is exact to rounding. Each block's last
    value without its carry is one matrix-vector product; the carries from block to block are a loop
    over n / B numbers; then all blocks at once as a 2-D array, in place: four passes over the data."""
    block = _EMA_BLOCK if w >= 0.01 else max(1, int(250 / -np.log10(w)))
    n = v.size
    nb = -(-n // block)
    if n % block:  # the last block padded with zeros (its padding is never read back)
        padded = np.zeros(nb * block)
        padded[:n] = v
    else:
        padded = v
    k = np.arange(block, dtype=np.float64)
    pow_k = w**k
    grid = padded.reshape(nb, block)
    ends = (grid @ ((1.0 - w) * pow_k[::-1])).tolist()  # each block's last value, from a zero start
    w_block = w**block
    carry = np.empty(nb)
    s = state
    for b in range(nb):
        carry[b] = s
        s = ends[b] + s * w_block
    grid *= w**-k
    grid[:, 0] += carry * (w / (1.0 - w))
    np.cumsum(grid, axis=1, out=grid)
    grid *= (1.0 - w) * pow_k
    if padded is not v:
        v[:] = padded[:n]
    return v
