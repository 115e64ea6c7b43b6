"""Axis ticks as a person writes them: 20k not 20000.0, 1.2M tokens, 3e-4 for an LR, a constant
series labelled once instead of with 18 digits, and never `8981.0`.

plotext picks ticks by splitting the range evenly and prints them with up to 15 digits; here ticks
fall on 1, 2, 5 x 10^k and each label carries only the digits that tell two neighbours apart.
"""

from __future__ import annotations

import math

FLAT = 1e-9
"""A span this small against the values it spans is float noise (an EMA of a constant wobbles in
its last bits), not a range: such a series is drawn as the constant it is."""


def is_flat(lo: float, hi: float) -> bool:
    """Whether [lo, hi] is one value as far as a person reading a chart can tell."""
    return abs(hi - lo) <= FLAT * max(abs(lo), abs(hi))


def flat_range(value: float) -> tuple[float, float]:
    """The y range to draw a constant series in: the value in the middle, 5% of it either side
    (or 1 either side of zero), so the line sits mid-chart instead of on an edge."""
    pad = abs(value) * 0.05 or 1.0
    return value - pad, value + pad


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """About `count` round values covering [lo, hi] (1, 2 or 5 times a power of ten apart;
    whole numbers apart on an `integer` axis); one value for a flat range."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if is_flat(lo, hi):
        return [(lo + hi) / 2]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    # The round step whose ticks inside the range come closest to `count` (never more than one
    # over; on a tie the finer): 1..1819 in three is 500, 1000, 1500, not a lone 1000.
    steps = [m * mag for m in (0.5, 1, 2, 5, 10)]
    if integer:  # steps count whole things: no tick at step 1.5
        steps = sorted({float(round(c)) for c in steps if c >= 1 and abs(c - round(c)) < 1e-9} | {1.0})
    step, best = steps[-1], None
    for candidate in steps:
        n = math.floor(hi / candidate + 1e-9) - math.ceil(lo / candidate - 1e-9) + 1
        if n <= count + 1 and (best is None or abs(n - count) < best):
            step, best = candidate, abs(n - count)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = [first + i * step for i in range(int((hi + step * 1e-9 - first) / step) + 1)]
    return [0.0 if abs(t) < step * 1e-9 else float(t) for t in ticks]


def tick_labels(ticks: list[float], integer: bool = False) -> list[str]:
    """Labels for these ticks. `integer`: the axis counts something (steps, tokens)."""
    if not ticks:
        return []
    step = min((abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False)), default=0.0)
    big = max(abs(t) for t in ticks)
    return [label(t, step, big, integer) for t in ticks]


def label(value: float, step: float, big: float, integer: bool = False) -> str:
    """One tick's text, with the digits `step` needs."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    spread = step or abs(value)
    if integer or (abs(value) >= 1 and float(value).is_integer() and spread >= 1):
        for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if big >= size:
                digits = max(0, math.ceil(-math.log10(spread / size) - 1e-9)) if spread < size else 0
                return f"{value / size:.{min(digits, 3)}f}{unit}"
        return f"{value:.0f}"
    if big < 1e-2 or big >= 1e6:  # learning rates, tiny or huge values: 3e-4, 2.5e-5
        digits = max(0, math.ceil(math.log10(abs(value)) - math.log10(spread) - 1e-9)) if step else 1
        text = f"{value:.{min(digits, 4)}e}"
        mant, exp = text.split("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        return f"{mant}e{int(exp)}"
    digits = max(0, math.ceil(-math.log10(spread) - 1e-9)) if spread < 1 else 0
    return f"{value:.{min(digits, 6)}f}"


def _short(value: float, digits: int = 4) -> str:
    text = f"{value:.{digits}g}"
    return text.replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def axis(lo: float, hi: float, count: int = 5, integer: bool = False) -> tuple[list[float], list[str]]:
    """Ticks and labels for an axis showing [lo, hi]; a constant series gets one labelled tick, and
    no two ticks ever read the same (more digits, else the one tick in the middle)."""
    ticks = nice_ticks(lo, hi, count, integer)
    if len(ticks) == 1:
        value = ticks[0]
        if float(value).is_integer() and abs(value) < 1e6:
            return ticks, [f"{value:.0f}"]
        if value and (abs(value) < 1e-2 or abs(value) >= 1e6):  # a constant LR reads 3e-4, as the others
            return ticks, [_sci(value)]
        return ticks, [_short(value)]
    labels = tick_labels(ticks, integer)
    for digits in range(5, 13):
        if len(set(labels)) == len(labels):
            return ticks, labels
        labels = [_short(t, digits) for t in ticks]
    if len(set(labels)) == len(labels):
        return ticks, labels
    middle = (ticks[0] + ticks[-1]) / 2
    return [middle], [_short(middle)]


def log_axis(lo: float, hi: float, count: int = 5) -> tuple[list[float], list[str]]:
    """Ticks and labels for a log axis showing [lo, hi] (both > 0): 1, 2, 5 or 1..9 times powers of
    ten, or whole decades, whichever puts nearest `count` ticks inside (plotext's own are the log
    range split evenly: 5.19, 4.39, 3.71...). No ticks for a range a log axis cannot show."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi <= 0:
        return [], []
    lo, hi = min(lo, hi), max(lo, hi)
    if is_flat(lo, hi):
        return axis(lo, hi, count)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    best: tuple[int, list[float]] | None = None
    # Every k-th decade, or 1-2-5, or 1..9 within each decade.
    grids = [((1,), every) for every in (1, 2, 3, 5, 10)] + [((1, 2, 5), 1), ((1, 2, 3, 4, 5, 6, 7, 8, 9), 1)]
    for mults, every in grids:
        ticks = [m * 10.0**k for k in range(first, last + 1) if k % every == 0 for m in mults]
        ticks = [float(f"{t:.12g}") for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(ticks) <= count + 1 and (best is None or abs(len(ticks) - count) < best[0]):
            best = (abs(len(ticks) - count), ticks)
    ticks = best[1] if best is not None else []
    if len(ticks) < 2:  # less than a decade and no round value inside twice: the linear rule's
        return axis(lo, hi, count)
    return ticks, [_log_label(t) for t in ticks]


def _log_label(value: float) -> str:
    """One log tick (a round value): 0.05, 2, 300, 20k, 1M; 1e-6 and 2e9 outside 0.01..1e9."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if size <= value < 1e9:
            return f"{value / size:g}{unit}"
    if 1e-2 <= value < 1e3:
        return f"{value:g}"
    return _sci(value)


def _sci(value: float) -> str:
    """A value as a person writes it in scientific notation: 3e-4, 2.5e-5, 1e9 (up to 4 digits)."""
    mant, exp = f"{value:.3e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def x_ticks(lo: float, hi: float, width: int, integer: bool) -> tuple[list[float], list[str]]:
    """A chart's x axis at this width: a label every ~14 columns."""
    return axis(lo, hi, max(2, width // 14), integer)


def y_ticks(lo: float, hi: float, height: int, log: bool) -> tuple[list[float], list[str]]:
    """A chart's y axis at this height (a label every ~4 rows), linear or log; the chart and its
    picture signature (chart_dots.py) both ask here, so they agree on what is drawn."""
    count = max(2, height // 4)
    return log_axis(lo, hi, count) if log else axis(lo, hi, count)
