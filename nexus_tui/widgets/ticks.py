"""Axis ticks as a person writes them: 20k not 20000.0, 1.2M tokens, 3e-4 for an LR, a constant
series labelled once instead of with 18 digits, and never `8981.0`.

plotext picks ticks by splitting the range evenly and prints them with up to 15 digits; here ticks
fall on 1, 2, 5 x 10^k and each label carries only the digits that tell two neighbours apart.
"""

from __future__ import annotations

import math

import numpy as np


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = list(np.arange(first, hi + step * 1e-9, step))
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


def axis(lo: float, hi: float, count: int = 5, integer: bool = False) -> tuple[list[float], list[str]]:
    """Ticks and labels for an axis showing [lo, hi]; a constant series gets one labelled tick."""
    ticks = nice_ticks(lo, hi, count)
    if len(ticks) == 1:
        value = ticks[0]
        if float(value).is_integer() and abs(value) < 1e6:
            return ticks, [f"{value:.0f}"]
        text = f"{value:.4g}"
        return ticks, [text.replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")]
    return ticks, tick_labels(ticks, integer)
