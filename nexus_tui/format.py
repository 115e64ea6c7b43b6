"""Short, fixed-width text for numbers the dashboard shows everywhere (table cells, labels).

One place so the run table, the compare screen and the chart labels agree on how a loss or an ETA
looks, and so a missing value is always a dash rather than 'None' or 'nan'.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text

from nexus_core.text import clean_text
from nexus_core.units import as_num

DASH = "–"


def plain(value: Any, limit: int | None = None) -> Text:
    """Any value as a one-line rich Text for a table cell or label: cleaned of control characters
    and never parsed as markup (DataTable and Label parse a plain str as markup)."""
    return Text(clean_text(value, limit=limit))


def _bad(x: Any) -> bool:
    return as_num(x) is None


def loss(x: Any) -> str:
    """A loss in nats: 4 significant digits is what people compare by eye."""
    if x is not None and isinstance(x, float) and math.isnan(x):
        return "NaN"
    return DASH if _bad(x) else f"{x:.4f}"


def count(x: Any) -> str:
    """Tokens, steps, params: 1234 -> 1.2k, 3400000 -> 3.4M."""
    if _bad(x):
        return DASH
    x = float(x)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.1f}{unit}"
    return f"{x:.0f}"


def duration(seconds: Any) -> str:
    """ETA / wall time: 75 -> 1m15s, 4000 -> 1h06m."""
    if _bad(seconds) or seconds < 0:
        return DASH
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def lr(x: Any) -> str:
    return DASH if _bad(x) else f"{x:.2e}"


def ppl(ce: Any) -> str:
    """Perplexity from a cross-entropy in nats."""
    if _bad(ce) or ce > 50:
        return DASH
    return f"{math.exp(ce):.2f}"


def mib(nbytes: Any) -> str:
    if _bad(nbytes):
        return DASH
    return f"{nbytes / 2**20:.0f}MiB" if nbytes < 2**30 * 10 else f"{nbytes / 2**30:.1f}GiB"
