"""Byte counts as people read them: the one GiB formatter (telemetry, the launch form, the panes)."""

from __future__ import annotations

import math
from typing import Any

GIB = 1 << 30


def gib(nbytes: Any, missing: str = "N/A") -> str:
    """`nbytes` in GiB with one decimal ("70.1"); `missing` for None, a bool, NaN or anything not a number."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or not math.isfinite(nbytes):
        return missing
    return f"{nbytes / GIB:.1f}"
