"""Numbers from untrusted places, and byte counts as people read them.

`finite` and `as_int` are the number checks the dashboard's readers share (a status file, a table
cell); `gib` is the one GiB formatter (telemetry, the launch form, the panes). Records need none of
this: the decoder types them (recordtypes.py).
"""

from __future__ import annotations

import math
from typing import Any

GIB = 1 << 30


def finite(value: Any) -> float | None:
    """A real, finite number as a float; None for NaN, inf, bools, strings, None and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def as_int(value: Any) -> int | None:
    """An int that is not a bool, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def gib(nbytes: Any, missing: str = "N/A") -> str:
    """`nbytes` in GiB with one decimal ("70.1"); `missing` for None, a bool, NaN or anything not a number."""
    n = finite(nbytes)
    return missing if n is None else f"{n / GIB:.1f}"
