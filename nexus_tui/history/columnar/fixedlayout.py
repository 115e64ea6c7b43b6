"""Metric records of a few shapes read as 2-D byte arrays: no Python object per record.

The writer packs every metric record alike, so a stretch of them is `count` rows of the same length
whose structure bytes (map header, keys, type tags) are equal and whose numbers sit at the same
offsets. Checking that and viewing each number column big-endian decodes a stretch ~50x faster than
msgspec. A stretch of several shapes (an int grew a byte wider, a reporter logs its own key every
tenth step) is split by record length: each length's records are gathered into their own 2-D array
and read the same way, then put back in stream order. Anything else is left to msgspec
(fastdecode.py).

A writer's own numeric keys (a reporter's `train/acc`) are read here too, as RecordDecoder keeps
them in `record.extra`: a printable str key of 1..MAX_EXTRA_KEY_LEN characters that is not a Metric
field, holding a number (nil: the record lacks it). A key or value RecordDecoder would treat any
other way (a bool, a string, an empty or unprintable key, more than MAX_EXTRA_KEYS) is not this
path's to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from graphlib import CycleError, TopologicalSorter
from typing import Any

import numpy as np

from nexus_core.recordtypes import MAX_EXTRA_KEY_LEN, MAX_EXTRA_KEYS, Metric
from nexus_tui.history.columnar.columns import BLOCK_KEYS, COLUMN_FIELDS, MetricBlock

_FIXED = {
    0xCA: (4, ">f4"),
    0xCB: (8, ">f8"),
    0xCC: (1, ">u1"),
    0xCD: (2, ">u2"),
    0xCE: (4, ">u4"),
    0xCF: (8, ">u8"),
    0xD0: (1, ">i1"),
    0xD1: (2, ">i2"),
    0xD2: (4, ">i4"),
    0xD3: (8, ">i8"),
}
"""msgpack numbers with a one-byte header and a fixed-width big-endian payload."""
_FIELDS = frozenset(Metric.__struct_fields__)
_EXACT = float(2**53)
_INTS = frozenset({"step", "tokens", "seq"})
"""Metric's int fields: a float there is a record RecordDecoder refuses, so not this path's to read."""
_METRIC_TAG = np.frombuffer(b"\xa4type\xa6metric", np.uint8)

MAX_SHAPES = 64
"""A stretch of more record shapes than this is not what a writer writes: msgspec reads it."""

Layout = tuple[np.ndarray, dict[str, tuple[int, str]], list[str]]
"""Which bytes are structure, where each number sits (offset, dtype), and the extra keys in order."""


def _key(rec: bytes, at: int) -> tuple[str, int] | None:
    """The str key at `at` (fixstr or str8) and where its value starts."""
    head = rec[at]
    if 0xA0 <= head <= 0xBF:
        klen, at = head & 0x1F, at + 1
    elif head == 0xD9 and at + 1 < len(rec):
        klen, at = rec[at + 1], at + 2
    else:
        return None
    try:
        return rec[at : at + klen].decode("utf-8"), at + klen
    except UnicodeDecodeError:
        return None


def _layout(rec: bytes) -> Layout | None:
    """Walk one metric record: which bytes are structure (must be equal in every record of the same
    shape) and where each field's number sits (offset, numpy dtype; "fix"/"nfix" for a fixint, whose
    header byte is its value; "none" for nil). None for anything but a flat map of str keys to
    numbers/nil that RecordDecoder reads the same way."""
    structure = np.ones(len(rec), bool)
    fields: dict[str, tuple[int, str]] = {}
    extras: list[str] = []
    typed = False
    if 0x80 <= rec[0] <= 0x8F:
        pairs, at = rec[0] & 0x0F, 1
    elif rec[0] == 0xDE and len(rec) >= 3:
        pairs, at = int.from_bytes(rec[1:3], "big"), 3
    else:
        return None
    for _ in range(pairs):
        if at >= len(rec):
            return None
        found = _key(rec, at)
        if found is None:
            return None
        key, at = found
        if at >= len(rec) or key in fields or key in extras:
            return None
        head = rec[at]
        if key == "type":  # the tag (checked by the caller); any other value, or a second one, is not ours
            if typed or not 0xA0 <= head <= 0xBF:
                return None
            typed = True
            at += 1 + (head & 0x1F)
            continue
        extra = key not in _FIELDS
        if extra:
            if (
                not (0 < len(key) <= MAX_EXTRA_KEY_LEN and key.isprintable())
                or len(extras) >= MAX_EXTRA_KEYS - 1
            ):
                return None  # RecordDecoder would drop or stop at it: its call
            extras.append(key)
        if head in _FIXED:
            width, dtype = _FIXED[head]
            if key in _INTS and dtype.startswith(">f"):
                return None
            structure[at + 1 : at + 1 + width] = False
            fields[key] = (at + 1, dtype)
            at += 1 + width
        elif head <= 0x7F:
            structure[at] = False
            fields[key] = (at, "fix")
            at += 1
        elif head >= 0xE0 and extra:  # a negative fixint
            structure[at] = False
            fields[key] = (at, "nfix")
            at += 1
        elif head == 0xC0 and key not in ("step", "tokens"):  # nil: the field is None (Metric's default)
            fields[key] = (at, "none")
            at += 1
        else:
            return None
    if at != len(rec):
        return None
    return structure, fields, extras


def _columns(
    rows: np.ndarray, shape: Layout
) -> tuple[dict[str, np.ndarray], dict[str, bool], list[str]] | None:
    """Rows of one shape as columns (float64; seq int64), whether each field is there at all, and
    the extra keys in order; None when they hold what this path refuses."""
    count = len(rows)
    _, fields, extras = shape
    if "step" not in fields:
        return None
    cols: dict[str, np.ndarray] = {}
    there: dict[str, bool] = {}
    for name in (*COLUMN_FIELDS, *extras):
        where = fields.get(name)
        if where is None and name == "tokens":
            cols[name], there[name] = np.zeros(count), True  # Metric's default
            continue
        if where is None or where[1] == "none":
            cols[name], there[name] = np.full(count, np.nan), False
            continue
        at, dtype = where
        if dtype == "fix":
            column = rows[:, at]
            if (column > 0x7F).any():
                return None
        elif dtype == "nfix":
            column = rows[:, at].view(np.int8)
            if (column >= 0).any():
                return None
        else:
            width = np.dtype(dtype).itemsize
            column = np.ascontiguousarray(rows[:, at : at + width]).view(dtype).reshape(count)
            if name in _INTS and width == 8 and (np.abs(column.astype(np.float64)) > _EXACT).any():
                return None  # past float64's exact integers: the per-record path keeps them exact
        cols[name] = column.astype(np.int64 if name == "seq" else np.float64)
        there[name] = True
    return cols, there, extras


def _block(count: int, parts: Sequence[tuple[np.ndarray | slice, tuple[Any, ...]]]) -> MetricBlock | None:
    """One block from the columns of each shape's rows (`where` they sit in the stretch)."""
    if len(parts) == 1:
        cols, there, extras = parts[0][1]
        present = {k: np.zeros(count, bool) for k, ok in there.items() if not ok}
        seq = np.full(count, -1, np.int64) if "seq" in present else cols["seq"]
        return MetricBlock(
            seq,
            cols["step"],
            cols["tokens"],
            cols["time"],
            {k: cols[k] for k in BLOCK_KEYS},
            present,
            {k: cols[k] for k in extras},
        )
    # One order of the extra keys that is each shape's own order (RecordDecoder keeps each record's).
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for _, (_, _, extras) in parts:
        for i, key in enumerate(extras):
            sorter.add(key, *extras[:i][-1:])
    try:
        order = list(sorter.static_order())
    except CycleError:
        return None  # two shapes hold two keys in opposite orders
    full = {k: np.full(count, np.nan) for k in (*COLUMN_FIELDS, *order)}
    mask = {k: np.zeros(count, bool) for k in full}
    for where, (cols, there, _) in parts:
        for k, column in cols.items():
            full[k][where] = column
            mask[k][where] = there[k]
    present = {k: m for k, m in mask.items() if not m.all()}
    seq = np.where(mask["seq"], full["seq"], -1).astype(np.int64)
    return MetricBlock(
        seq,
        full["step"],
        full["tokens"],
        full["time"],
        {k: full[k] for k in BLOCK_KEYS},
        present,
        {k: full[k] for k in order},
    )


def _starts(data: np.ndarray, count: int) -> np.ndarray | None:
    """Where each of the `count` metric records of a stretch starts (the map header before its
    `\\xa4type\\xa6metric`), or None when they cannot all be found or the first is not at 0."""
    tag = len(_METRIC_TAG)
    padded = np.concatenate((np.zeros(3, np.uint8), data))  # room to look three bytes before a tag
    at = np.flatnonzero(padded[3 : len(padded) - tag + 1] == _METRIC_TAG[0]) + 3
    for i in range(1, tag):
        at = at[padded[at + i] == _METRIC_TAG[i]]
    if len(at) != count:
        return None
    fix = (padded[at - 1] >= 0x80) & (padded[at - 1] <= 0x8F)
    if not (fix | (padded[at - 3] == 0xDE)).all():
        return None
    starts = np.where(fix, at - 1, at - 3) - 3
    return starts if starts[0] == 0 else None


def fixed_layout(buf: bytes, start: int, stop: int, count: int) -> MetricBlock | None:
    """`count` metric records in buf[start:stop] as columns without a Python object per record, when
    they have one shape (reshape to (count, length), check every structure byte equals the first
    record's, read each number column as a big-endian view) or a few (the same for the records of
    each length and shape). None: not shapes this path reads."""
    size = stop - start
    if count <= 0:
        return None
    data = np.frombuffer(buf, np.uint8, size, start)
    if size % count == 0:
        rows = data.reshape(count, size // count)
        shape = _layout(bytes(rows[0]))
        if shape is not None and (rows[:, shape[0]] == rows[0, shape[0]]).all():
            cols = _columns(rows, shape)
            return None if cols is None else _block(count, [(slice(None), cols)])
    starts = _starts(data, count)
    if starts is None:
        return None
    lengths = np.diff(starts, append=size)
    parts: list[tuple[np.ndarray, tuple[Any, ...]]] = []
    for length in np.unique(lengths).tolist():
        todo = np.flatnonzero(lengths == length)
        while len(todo):
            if len(parts) >= MAX_SHAPES:
                return None  # not a writer's few shapes
            rows = data[starts[todo, None] + np.arange(length)]
            shape = _layout(bytes(rows[0]))
            if shape is None:
                return None
            same = (rows[:, shape[0]] == rows[0, shape[0]]).all(axis=1)
            cols = _columns(rows[same], shape)
            if cols is None:
                return None
            parts.append((todo[same], cols))
            todo = todo[~same]
    parts.sort(key=lambda part: int(part[0][0]))
    return _block(count, parts)
