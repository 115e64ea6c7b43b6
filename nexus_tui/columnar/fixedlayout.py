"""Metric records of one shape read as a 2-D byte array: no Python object per record.

The writer packs every metric record alike, so a stretch of them is `count` rows of the same length
whose structure bytes (map header, keys, type tags) are equal and whose numbers sit at the same
offsets. Checking that and viewing each number column big-endian decodes a stretch ~50x faster than
msgspec; any stretch that is not one shape is left to msgspec (fastdecode.py).
"""

from __future__ import annotations

import numpy as np

from nexus_core.recordtypes import Metric
from nexus_tui.columnar.columns import BLOCK_KEYS, COLUMN_FIELDS, MetricBlock

_FIXED = {0xCA: (4, ">f4"), 0xCB: (8, ">f8"), 0xCC: (1, ">u1"), 0xCD: (2, ">u2"), 0xCE: (4, ">u4"),
          0xCF: (8, ">u8"), 0xD0: (1, ">i1"), 0xD1: (2, ">i2"), 0xD2: (4, ">i4"), 0xD3: (8, ">i8")}
"""msgpack numbers with a one-byte header and a fixed-width big-endian payload."""
_KEYS = frozenset(Metric.__struct_fields__) | {"type"}
"""The keys a Metric may have: any other (a reporter's own series) goes to RecordDecoder's extras."""
_EXACT = float(2**53)
_INTS = frozenset({"step", "tokens", "seq"})
"""Metric's int fields: a float there is a record RecordDecoder refuses, so not this path's to read."""


def _layout(rec: bytes) -> tuple[np.ndarray, dict[str, tuple[int, str]]] | None:
    """Walk one metric record: which bytes are structure (must be equal in every record of the same
    shape) and where each wanted field's number sits (offset, numpy dtype; "fix" for a fixint, whose
    header byte is its value). None for anything but a flat map of short keys to numbers/nil/bools."""
    structure = np.ones(len(rec), bool)
    fields: dict[str, tuple[int, str]] = {}
    if 0x80 <= rec[0] <= 0x8F:
        pairs, at = rec[0] & 0x0F, 1
    elif rec[0] == 0xDE and len(rec) >= 3:
        pairs, at = int.from_bytes(rec[1:3], "big"), 3
    else:
        return None
    for _ in range(pairs):
        if at >= len(rec) or not 0xA0 <= rec[at] <= 0xBF:
            return None
        klen = rec[at] & 0x1F
        try:
            key = rec[at + 1 : at + 1 + klen].decode("utf-8")
        except UnicodeDecodeError:
            return None
        at += 1 + klen
        if at >= len(rec) or key not in _KEYS or key in fields:
            return None
        head = rec[at]
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
        elif head == 0xC0 and key not in ("step", "tokens"):  # nil: the field is None (Metric's default)
            fields[key] = (at, "none")
            at += 1
        elif 0xA0 <= head <= 0xBF and key == "type":
            at += 1 + (head & 0x1F)
        else:
            return None
    if at != len(rec):
        return None
    return structure, fields


def fixed_layout(buf: bytes, start: int, stop: int, count: int) -> MetricBlock | None:
    """`count` metric records in buf[start:stop] as columns without a Python object per record, when
    they all have the first one's shape (the writer packs every metric alike; the width of an int
    changes only a few times a run): reshape to (count, length), check every structure byte equals
    the first record's, and read each number column as a big-endian view. None: not one shape."""
    size = stop - start
    if count <= 0 or size % count:
        return None
    length = size // count
    rows = np.frombuffer(buf, np.uint8, size, start).reshape(count, length)
    shape = _layout(bytes(rows[0]))
    if shape is None:
        return None
    structure, fields = shape
    if "type" in fields or not (rows[:, structure] == rows[0, structure]).all():
        return None
    cols: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for name in COLUMN_FIELDS:
        where = fields.get(name)
        if where is None and name == "step":
            return None  # Metric requires it: RecordDecoder skips the record
        if where is None and name == "tokens":
            cols[name] = np.zeros(count)  # Metric's default
            continue
        if where is None or where[1] == "none":
            cols[name] = np.full(count, np.nan)
            present[name] = np.zeros(count, bool)
            continue
        at, dtype = where
        if dtype == "fix":
            column = rows[:, at]
            if (column > 0x7F).any():
                return None
        else:
            width = np.dtype(dtype).itemsize
            column = np.ascontiguousarray(rows[:, at : at + width]).view(dtype).reshape(count)
            if name in _INTS and width == 8 and (np.abs(column.astype(np.float64)) > _EXACT).any():
                return None  # past float64's exact integers: the per-record path keeps them exact
        cols[name] = column
    seq = np.full(count, -1, np.int64) if "seq" in present else cols["seq"].astype(np.int64)
    floats = {k: cols[k].astype(np.float64) for k in COLUMN_FIELDS if k != "seq"}
    return MetricBlock(seq, floats["step"], floats["tokens"], floats["time"],
                       {k: floats[k] for k in BLOCK_KEYS}, present)
