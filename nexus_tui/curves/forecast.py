"""Where will the val loss end up? A power-law fit to the eval points, projected to the last step.

Loss curves of language models follow L(s) = a + b * s^-c closely once past warmup (Kaplan et al.
2020; Hoffmann et al. 2022), so a few eval points already say roughly where a run is heading, which
is what decides whether to let it finish. No scipy: for a fixed exponent c the model is linear in
(a, b), so we solve that in closed form on a grid of c and keep the best; the exponents that fit
almost as well give the band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_C_GRID = tuple(0.02 * 1.06**i for i in range(80))
"""Exponents tried: 0.02 .. ~2, log-spaced (real runs sit around 0.05-1)."""
MIN_POINTS = 4


def _fit_fixed_c(s: list[float], y: list[float], c: float) -> tuple[float, float, float] | None:
    """Least squares for y = a + b * s^-c with c fixed: (a, b, sum of squared residuals)."""
    x = [v**-c for v in s]
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((v - mx) ** 2 for v in x)
    if sxx <= 0.0:
        return None
    b = sum((xv - mx) * (yv - my) for xv, yv in zip(x, y, strict=True)) / sxx
    a = my - b * mx
    sse = sum((yv - (a + b * xv)) ** 2 for xv, yv in zip(x, y, strict=True))
    return a, b, sse


def forecast_final(
    eval_steps: Sequence[float], val_losses: Sequence[float], total_steps: float
) -> tuple[float, float, float] | None:
    """(projected val loss at total_steps, low, high), or None when there is too little to go on
    (fewer than 4 usable points, or a curve that is not coming down). Points at step <= 0 and
    non-finite losses are ignored. A run already at its end returns its last value."""
    pts = sorted(
        (float(s), float(v))
        for s, v in zip(eval_steps, val_losses, strict=False)
        if isinstance(s, (int, float))
        and isinstance(v, (int, float))
        and s > 0
        and math.isfinite(v)
        and math.isfinite(s)
    )
    if not isinstance(total_steps, (int, float)) or not math.isfinite(total_steps) or len(pts) < MIN_POINTS:
        return None
    s = [p[0] for p in pts]
    y = [p[1] for p in pts]
    if total_steps <= s[-1]:
        return y[-1], y[-1], y[-1]
    fits = []
    for c in _C_GRID:
        fit = _fit_fixed_c(s, y, c)
        if fit is not None and fit[1] > 0:  # b > 0: the loss is falling
            fits.append((fit[2], c, fit[0], fit[1]))
    if not fits:
        return None
    best_sse = min(f[0] for f in fits)
    n = len(s)
    # Exponents whose fit is within an F-test-like margin of the best are as plausible as it.
    margin = best_sse * (1.0 + 4.0 / max(1, n - 3)) + 1e-12
    preds = [a + b * total_steps**-c for sse, c, a, b in fits if sse <= margin]
    _, c, a, b = min(fits)
    value = a + b * total_steps**-c
    noise = math.sqrt(best_sse / max(1, n - 3))  # residual scatter: the band is never thinner than that
    # A cross-entropy never goes below 0, so a curve that never did is not projected below it; a
    # "val loss" that is already negative (a log-likelihood, a reward) has no such floor. Either way
    # the band holds the value: low <= value <= high (a band read "0.000 (0.000–-0.622)" for a
    # negative loss, the floor applied to the value and the low end but not to the high end).
    floor = 0.0 if min(y) >= 0.0 else -math.inf
    value = max(floor, value)
    low = max(floor, min(min(preds), value) - noise)
    high = max(min(max(max(preds), value) + noise, y[-1] + noise), value)
    return value, min(low, value), high
