"""The writer thread's shaping of what a script handed over into records msgpack, TOML and JSON hold.

Split from writer.py (which owns the thread, the queue and the files): a committed step becomes its
metric and eval records (`step_records`), a record with a value no 64-bit field holds is repaired key
by key (`repair`), and configs and summaries are made safe for TOML and JSON, however deep or
self-containing (`toml_safe`, `json_safe`: a cycle or a depth past MAX_DEPTH becomes a short text,
never a RecursionError).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from nexus import values as V
from nexus_core import protocol as P

MAX_DEPTH = 32
"""Nesting kept in a config or summary; deeper levels (and cycles) are recorded as text."""
INT_MIN, UINT_MAX = -(2**63), 2**64 - 1
"""What a msgpack integer holds."""
_packb = msgpack.Packer(use_bin_type=True).pack


def step_records(item: dict[str, Any]) -> list[dict[str, Any]]:
    """A committed step as its metric and eval records. With a watched optimizer, `lr` is the LR its
    last step used; once a ramp changed it, the script's own `lr` is kept as `lr_schedule`."""
    metric, evals = V.route(item["values"])
    if item["lr"] is not None and metric:
        last, ramped = item["lr"]
        if ramped and "lr" in metric:
            metric["lr_schedule"] = metric.pop("lr")
        metric.setdefault("lr", last)
    step, at = item["step"], item["time"]
    if not evals:
        return [{"type": P.METRIC, "step": step, "time": at, **metric}]
    out = []
    if metric:
        out.append({"type": P.METRIC, "step": step, "time": at, **metric})
    out.append({"type": P.EVAL, "step": step, "time": at, **evals})
    return out


def repair(record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A record msgpack refused, as one it takes: an integer past 64 bits becomes the nearest float
    (2**64 -> 1.8446744073709552e19), a value that fits nothing is left out. Returns the record and
    one line per key it changed, for the warning; every other key of the record is kept."""
    out: dict[str, Any] = {}
    said: list[str] = []
    for key, value in record.items():
        try:
            _packb(value)
        except (OverflowError, TypeError, ValueError):
            fixed = _as_float(value)
            if fixed is None:
                said.append(f"key {str(key)[:100]!r}: {short(value)} fits no 64-bit number; not recorded")
                continue
            said.append(f"key {str(key)[:100]!r}: {short(value)} is past 64 bits; recorded as {fixed:.6g}")
            value = fixed
        out[str(key) if not isinstance(key, str) else key] = value
    return out, said


def _as_float(value: Any) -> float | None:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            got = float(value)
        except OverflowError:
            return None
        return got if math.isfinite(got) else None
    return None


def short(value: Any) -> str:
    """A value for a one-line warning (an int of thousands of digits is not printed whole)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, (float, str)):
        return repr(value)[:40]
    return f"a {type(value).__name__}"


def toml_safe(value: Any, depth: int = 0) -> Any:
    """A config as TOML can hold it: None dropped, tuples as lists, anything else unknown as text."""
    if depth > MAX_DEPTH:
        return f"(deeper than {MAX_DEPTH} levels: not recorded)"
    if isinstance(value, dict):
        return {str(k): toml_safe(v, depth + 1) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [toml_safe(v, depth + 1) for v in value if v is not None]
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value < 2**63:
        return str(value) if value.bit_length() <= 256 else "(an integer past 64 bits)"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def json_safe(value: Any, depth: int = 0) -> Any:
    """A config or summary as msgpack and JSON can hold it (the hello carries the config)."""
    if depth > MAX_DEPTH:
        return f"(deeper than {MAX_DEPTH} levels: not recorded)"
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= UINT_MAX:
        got = _as_float(value)
        return got if got is not None else "(an integer past 64 bits)"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    grabbed = V.grab(value)
    return grabbed if isinstance(grabbed, (int, float)) else str(value)
