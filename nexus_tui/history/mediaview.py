"""What a run logged beyond numbers, as lines a pane can show: tables, histograms over steps, media.

Headless (no textual): the widget (`widgets/media_pane.py`) only colours and writes these lines, so
the layout is tested without a screen. Strings arrive cleaned by the store (clean_record).
"""

from __future__ import annotations

import math

from nexus_core.recordtypes import Histogram, Media, Table, Text

SHADES = " ▁▂▃▄▅▆▇█"
MAX_ROWS = 20
MAX_COLUMNS = 12
MAX_CELL = 24


def header(run_label: str, rec: Text | Table | Histogram | Media) -> str:
    what = {
        "text": "text",
        "table": rec.chart if isinstance(rec, Table) and rec.chart else "table",
        "histogram": "histogram",
        "media": getattr(rec, "kind", "media"),
    }[rec.type]
    return f"▍{run_label} · step {rec.step} · {what} {rec.key}"


def table_lines(rec: Table, max_rows: int = MAX_ROWS) -> list[str]:
    """The table as aligned text: a header row, a rule, at most max_rows rows and MAX_COLUMNS columns
    (and how many more of each)."""
    columns = [_cell(c) for c in rec.columns[:MAX_COLUMNS]]
    rows = [[_cell(v) for v in row[:MAX_COLUMNS]] for row in rec.rows[:max_rows]]
    width = max([len(columns)] + [len(r) for r in rows])
    columns += [""] * (width - len(columns))
    sizes = [max([len(columns[i])] + [len(r[i]) for r in rows if i < len(r)]) for i in range(width)]
    lines = [
        " │ ".join(c.ljust(sizes[i]) for i, c in enumerate(columns)).rstrip(),
        "─┼─".join("─" * s for s in sizes),
    ]
    lines += [
        " │ ".join(r[i].ljust(sizes[i]) if i < len(r) else " " * sizes[i] for i in range(width)).rstrip()
        for r in rows
    ]
    if len(rec.rows) > max_rows:
        lines.append(f"… {len(rec.rows) - max_rows} more rows")
    wide = max([len(rec.columns)] + [len(r) for r in rec.rows[:max_rows]])
    if wide > MAX_COLUMNS:
        lines.append(f"… {wide - MAX_COLUMNS} more columns")
    return lines


def _cell(value: object) -> str:
    text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def histogram_line(rec: Histogram, width: int = 32) -> str:
    """One row of a distribution-over-steps view: the counts resampled to `width` shade characters
    (darkest = fullest bin) and the range they span. Rows of one key stacked by step read as
    TensorBoard's distributions."""
    counts = list(rec.counts)
    if not counts or len(rec.edges) < 2:
        return "(empty)"
    cells = [0.0] * width
    for i, c in enumerate(counts):
        if math.isfinite(c) and c > 0:  # a run folder is untrusted: NaN or negative counts draw nothing
            cells[min(width - 1, i * width // len(counts))] += c
    top = max(cells) or 1.0
    bar = "".join(SHADES[round(c / top * (len(SHADES) - 1))] for c in cells)
    total = sum(c for c in counts if math.isfinite(c) and c > 0)
    return f"{bar} [{rec.edges[0]:.3g}, {rec.edges[-1]:.3g}] n={total:g}"


def media_line(rec: Media) -> str:
    """A picture's or sound's text stand-in: its file, its size and caption."""
    size = f" {rec.width}×{rec.height}" if rec.width and rec.height else ""
    caption = f" “{rec.caption}”" if rec.caption else ""
    return f"{rec.path or '(no file)'}{size}{caption}"


def lines_of(rec: Text | Table | Histogram | Media) -> list[str]:
    """The body lines for one record (under its header)."""
    if isinstance(rec, Text):
        return rec.text.splitlines() or [""]
    if isinstance(rec, Table):
        return table_lines(rec)
    if isinstance(rec, Histogram):
        return [histogram_line(rec)]
    return [media_line(rec)]
