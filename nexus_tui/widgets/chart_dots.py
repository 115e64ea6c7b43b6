"""What a chart would look like, cheaply: its curves as braille dots, its axes as their labels.

A plotext build costs tens of ms, and a live run changes a chart's spec with every record, even
when the new points land on the dots already drawn (a million-step run's next step moves nothing).
`screen_signature` maps every point onto the chart's braille grid (two dot columns and four dot rows
a cell, in the data ranges the build will use) and adds the tick labels and everything else drawn;
`same_picture` says two such signatures draw the same (every point within half a dot), so a live
chart is rebuilt only when it would change on screen.
"""

from __future__ import annotations

import math

from nexus_tui.curves.ticks import flat_range, is_flat, x_ticks, y_ticks
from nexus_tui.widgets.chart_spec import ChartSpec


def _finite_points(spec: ChartSpec) -> list[list[tuple[float, float]]]:
    out = []
    for c in spec.curves:
        pts = []
        for x, y in zip(c.xs, c.ys, strict=False):
            if (
                x is None
                or y is None
                or not (math.isfinite(x) and math.isfinite(y))
                or (spec.log_y and y <= 0)
            ):
                continue
            pts.append((float(x), math.log10(y) if spec.log_y else float(y)))
        out.append(pts)
    return out


def screen_signature(spec: ChartSpec, width: int, height: int) -> tuple:
    """Everything a build of `spec` at this size draws, at the resolution it is drawn."""
    import numpy as np  # here, not above: the first frame (no curve yet) imports this module, not numpy

    curves = _finite_points(spec)
    xs = [x for pts in curves for x, _ in pts]
    ys = [y for pts in curves for _, y in pts]
    ys += [
        math.log10(y) if spec.log_y else y
        for y, _ in spec.hlines
        if math.isfinite(y) and (y > 0 or not spec.log_y)
    ]
    if not xs:
        return ("empty", spec.title), ()
    x_lo, x_hi = spec.x_range if spec.x_range is not None else (min(xs), max(xs))
    y_lo, y_hi = min(ys), max(ys)
    if is_flat(y_lo, y_hi):
        y_lo, y_hi = flat_range((y_lo + y_hi) / 2)
    cols, rows = max(1, 2 * (width - 10)), max(1, 4 * (height - 4))
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0
    dots = tuple(
        (
            np.array([(x - x_lo) / x_span * cols for x, _ in pts]),
            np.array([(y - y_lo) / y_span * rows for _, y in pts]),
        )
        for pts in curves
    )
    x_labels = x_ticks(x_lo, x_hi, width, spec.x_integer)[1]
    data_lo, data_hi = (
        (10**y_lo, 10**y_hi) if spec.log_y else (y_lo, y_hi)
    )  # ys above are log10 on a log axis
    y_labels = y_ticks(data_lo, data_hi, height, spec.log_y)[1]
    cursor = None if spec.cursor is None else (round((spec.cursor[0] - x_lo) / x_span * cols), spec.cursor[1])
    hlines = tuple(
        (round(((math.log10(y) if spec.log_y and y > 0 else y) - y_lo) / y_span * rows), c)
        for y, c in spec.hlines
        if math.isfinite(y)
    )
    styles = tuple((c.color, c.marker, c.scatter) for c in spec.curves)
    return (
        spec.title,
        spec.xlabel,
        spec.log_y,
        tuple(x_labels),
        tuple(y_labels),
        cursor,
        hlines,
        styles,
    ), dots


def same_picture(a: tuple, b: tuple) -> bool:
    """Whether two screen signatures draw the same: the same labels and styles, each scatter's
    points within half a dot of where they were, and each line within half a dot of the other at
    every vertex of either (a sub-dot shift only flips a rounding; an extra point on the line, from
    a bucket boundary moving, draws nothing new)."""
    import numpy as np

    (meta_a, dots_a), (meta_b, dots_b) = a, b
    if meta_a != meta_b or len(dots_a) != len(dots_b):
        return False
    scatter = [style[2] for style in meta_a[-1]] if meta_a and meta_a[0] != "empty" else []
    for i, ((xa, ya), (xb, yb)) in enumerate(zip(dots_a, dots_b, strict=True)):
        if not len(xa) or not len(xb):
            if len(xa) != len(xb):
                return False
            continue
        if i < len(scatter) and scatter[i]:
            if len(xa) != len(xb) or np.abs(xa - xb).max() >= 0.5 or np.abs(ya - yb).max() >= 0.5:
                return False
            continue
        if abs(xa[0] - xb[0]) >= 0.5 or abs(xa[-1] - xb[-1]) >= 0.5:
            return False
        if (np.diff(xa) < 0).any() or (np.diff(xb) < 0).any():
            return False  # x going back (a time axis across a resume): not comparable this way
        if np.abs(np.interp(xa, xb, yb) - ya).max() >= 0.5 or np.abs(np.interp(xb, xa, ya) - yb).max() >= 0.5:
            return False
    return True
