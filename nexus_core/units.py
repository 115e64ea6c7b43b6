"""Numbers from untrusted fields, asked one way (`as_int`, `as_num`, `is_real`: a bool is never a
number here, though Python's bool is an int), and byte counts as people read them (the one GiB
formatter: telemetry, the launch form, the panes)."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

GIB = 1 << 30


def gib(nbytes: Any, missing: str = "N/A") -> str:
    """`nbytes` in GiB with one decimal ("70.1"); `missing` for None, a bool, NaN or anything not a number."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or not math.isfinite(nbytes):
        return missing
    return f"{nbytes / GIB:.1f}"


def as_num(value: Any) -> float | None:
    """A finite real number from an untrusted field (a status file, a hand-written record), else None:
    bools, strings, NaN and infinities are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:  # an int past what a float holds
        return None


def is_real(value: Any) -> TypeGuard[int | float]:
    """An int or a float and not a bool (NaN and infinities included: `as_num` refuses those)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_int(value: Any) -> int | None:
    """An int from an untrusted field (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_new_best(val: float | None, best: float | None) -> bool:
    """The one best-val rule: a finite val loss below the best so far (None or inf: none yet) is the
    new best. The engine, the reporter's writer, the readers' RunState and import-tb all ask here."""
    return val is not None and math.isfinite(val) and (best is None or val < best)
