"""Decode a record stream a chunk at a time into numpy columns instead of one struct per record.

A million-step run is a million metric records and a few hundred others. `RecordDecoder` builds a
typed record for each (~7 µs); here each stretch of metric records between two other records becomes
numpy columns at once: read in place as a 2-D byte array when its records share one layout (the
usual case, fixedlayout.py), else by one msgspec call into gc-free structs; only the few others
become typed records (RecordDecoder's) for the store's per-record path.

The framing relies on what the one writer guarantees: every record is a map whose first key is
"type", so a record starts at a map header followed by the bytes `\\xa4type` and its tag. A chunk
takes the fast path only when it provably holds nothing but whole, known records back to back: it
must start at a record header, every `\\xa4type` in it must be the start of a metric or of a known
other record, each stretch of metric records must decode as exactly that many metric maps with no
byte left over (msgspec refuses trailing bytes and wrong types), and each other record must decode
whole. Anything else (garbage, a torn record in the middle, a field of the wrong type, an unknown
type) sends that chunk to `RecordDecoder`, the one definition of what a stream holds, so both paths
give the same records (a hypothesis test checks it on damaged files).
"""

from __future__ import annotations

import contextlib
import re
from operator import attrgetter
from typing import Any

import msgpack
import msgspec
import numpy as np

from nexus_core.records import DecodeWarning, RecordDecoder
from nexus_core.recordtypes import Metric
from nexus_core.schema import _UNPACK_LIMITS, RECORD_TYPES
from nexus_tui.history.columnar.columns import (
    BLOCK_KEYS,
    COLUMN_FIELDS,
    VALUE_KEYS,
    MetricBlock,
    Piece,
    batch_records,
)
from nexus_tui.history.columnar.fixedlayout import fixed_layout

__all__ = ["ColumnDecoder", "MetricBlock", "Piece", "VALUE_KEYS", "batch_records"]

METRIC_TAG = b"\xa4type\xa6metric"
TYPE_KEY = b"\xa4type"
_OTHER_START = re.compile(rb"\xa4type(?!\xa6metric)")
MAX_METRIC_BYTES = 4096
READ_CHUNK = 4 << 20
"""Bytes read from a metrics file per `ColumnDecoder.feed` (the history reader's and the watcher's)."""
"""A metric stretch whose records average more than this is not what the writer writes: slow path."""


class _Metric(msgspec.Struct, tag_field="type", tag="metric", gc=False, forbid_unknown_fields=True):
    """A metric record as msgspec reads it here (stretches fixedlayout cannot read): nexus_core's
    Metric field for field (same types, same defaults, unknown keys refused), without the dict and
    gc overhead. A field of another type, or a key beyond Metric's (a reporter's own series, which
    fixedlayout reads when it can), fails the decode, and RecordDecoder decides (msgspec skips keys
    msgpack cannot even build a dict from)."""

    step: int
    tokens: int = 0
    time: float | None = None
    seq: int | None = None
    loss: float | None = None
    ce: float | None = None
    lr: float | None = None
    gnorm: float | None = None
    tok_s: float | None = None
    mem: float | None = None
    step_s: float | None = None


_EXACT = float(2**53)
_GET = attrgetter(*COLUMN_FIELDS)
_DECODE = msgspec.msgpack.Decoder(list[_Metric]).decode


def _block(recs: list[_Metric]) -> MetricBlock:
    """Structs to columns: one 2-D numpy conversion (a missing field, None, becomes NaN there), and a
    per-record look only at columns that hold a NaN, to tell a missing field from a real NaN."""
    rows = list(map(_GET, recs))
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(COLUMN_FIELDS))
    present: dict[str, np.ndarray] = {}
    for j in np.flatnonzero(np.isnan(table).any(axis=0)).tolist():
        mask = np.fromiter((r[j] is not None for r in rows), bool, len(rows))
        if not mask.all():
            present[COLUMN_FIELDS[j]] = mask
    cols = dict(zip(COLUMN_FIELDS, table.T, strict=True))
    if any((np.abs(cols[k]) > _EXACT).any() for k in ("step", "tokens", "seq")):
        raise _NotClean  # past float64's exact integers: the per-record path keeps them exact
    seq = np.where(present["seq"], cols["seq"], -1) if "seq" in present else cols["seq"]
    return MetricBlock(
        seq.astype(np.int64),
        cols["step"].copy(),
        cols["tokens"].copy(),
        cols["time"].copy(),
        {k: cols[k].copy() for k in BLOCK_KEYS},
        present,
    )


def _header_at(buf: bytes | bytearray, at: int) -> int:
    """Where the map holding the key `type` at `at` starts, or -1 if no map header is there."""
    if at >= 1 and 0x80 <= buf[at - 1] <= 0x8F:
        return at - 1
    if at >= 3 and buf[at - 3] == 0xDE:
        return at - 3
    return -1


def _one(data: bytes) -> tuple[Any, int] | None:
    """The first msgpack object in `data` and its length; None when it is not whole or not valid."""
    u = msgpack.Unpacker(raw=False, strict_map_key=False, **_UNPACK_LIMITS)
    u.feed(data)
    try:
        obj = u.unpack()
    except Exception:  # noqa: BLE001 - torn or garbage: the caller decides
        return None
    return obj, u.tell()


class _NotClean(Exception):
    """This chunk needs the per-record decoder."""


class ColumnDecoder:
    """Incremental like RecordDecoder (`feed` bytes, `finish` at the end), but returns pieces."""

    def __init__(self) -> None:
        self._pending = b""
        self._slow: RecordDecoder | None = None
        self.warnings: list[DecodeWarning] = []
        self.fast_bytes = 0
        self.slow_bytes = 0

    @property
    def pending(self) -> int:
        return self._slow.pending if self._slow is not None else len(self._pending)

    @property
    def skipping(self) -> bool:
        """Whether garbage has been skipped that no warning has told of yet (it is told when a
        record decodes after it, or at `finish`)."""
        return bool(self._slow is not None and getattr(self._slow, "_garbage", 0))

    def feed(self, data: bytes) -> list[Piece]:
        if self._slow is not None and not self._leave_slow():
            return self._slow_feed(data)
        buf = self._pending + data if self._pending else bytes(data)
        try:
            pieces, used = self._fast(buf)
        except _NotClean:
            self._slow = RecordDecoder()
            self._pending = b""
            return self._slow_feed(buf)
        self._pending = buf[used:]
        self.fast_bytes += used
        return pieces

    def finish(self) -> int:
        """End of input: decode a last whole record still held; return the torn tail's length."""
        if self._slow is not None:
            torn = self._slow.finish()
            self.warnings += self._slow.warnings
            self._slow.warnings.clear()
            return torn
        return len(self._pending)

    # -- the two paths ---------------------------------------------------------------------------

    def _slow_feed(self, data: bytes) -> list[Piece]:
        assert self._slow is not None
        self.slow_bytes += len(data)
        records = self._slow.feed(data)
        self.warnings += self._slow.warnings
        self._slow.warnings.clear()
        return [records] if records else []

    def _leave_slow(self) -> bool:
        """Back to the fast path once the per-record decoder holds nothing but the start of a record
        (its skipped-garbage count reported first)."""
        slow = self._slow
        assert slow is not None
        held = getattr(slow, "_pending", None)
        if held is None or getattr(slow, "_garbage", True):
            return False
        held = bytes(held)
        at = held.find(TYPE_KEY)
        if held and (at == -1 or _header_at(held, at) != 0):
            return False
        self._pending, self._slow = held, None
        return True

    def _fast(self, buf: bytes) -> tuple[list[Piece], int]:
        """Pieces from a clean buffer and how many bytes they used; raises _NotClean otherwise.
        The last record is held back (it may be torn) unless it decodes whole right away."""
        if not buf:
            return [], 0
        last = buf.rfind(TYPE_KEY)
        if last == -1:
            if len(buf) > 2 * MAX_METRIC_BYTES:
                raise _NotClean  # a long stretch with no record start: garbage
            return [], 0
        end = _header_at(buf, last)
        first = buf.find(TYPE_KEY)
        if end == -1 or _header_at(buf, first) != 0:
            raise _NotClean
        # Every record start in the body is a metric or a known other record.
        others = [m.start() for m in _OTHER_START.finditer(buf, 0, end)]
        pieces: list[Piece] = []
        pos = 0
        for at in others:
            if at < pos:
                continue  # inside the record just decoded whole (a sample's text): not a start
            head = _header_at(buf, at)
            if head < pos:
                raise _NotClean
            self._metrics(buf, pos, head, pieces)
            pos = head + self._other(buf, head, end, pieces)
        self._metrics(buf, pos, end, pieces)
        # The last record: whole now (a stream's latest), torn (keep it), or garbage (slow path).
        tail = _one(buf[end:])
        if tail is None:
            return pieces, end
        obj, size = tail
        if not _record_prefix(buf[end + size :]):
            raise _NotClean
        if not isinstance(obj, dict) or obj.get("type") not in _KNOWN:
            raise _NotClean
        self._metrics_or_other(buf[end : end + size], obj, pieces)
        return pieces, end + size

    def _metrics(self, buf: bytes, start: int, stop: int, pieces: list[Piece]) -> None:
        """The metric records in buf[start:stop], all of them or _NotClean."""
        if stop <= start:
            return
        count = buf.count(METRIC_TAG, start, stop)
        if count == 0 or stop - start > count * MAX_METRIC_BYTES:
            raise _NotClean
        block = fixed_layout(buf, start, stop, count)
        if block is None:
            try:
                block = _block(_DECODE(b"\xdd" + count.to_bytes(4, "big") + buf[start:stop]))
            except Exception:  # noqa: BLE001 - DecodeError, ValidationError, UnicodeDecodeError...
                raise _NotClean from None
        _append(pieces, block)

    def _other(self, buf: bytes, start: int, stop: int, pieces: list[Piece]) -> int:
        """The one other record at buf[start:], which must end by `stop`; returns its size."""
        one = _one(buf[start : min(stop, start + 2 * (1 << 20))])
        if one is None:
            raise _NotClean
        obj, size = one
        if not isinstance(obj, dict) or obj.get("type") not in _KNOWN or obj.get("type") == "metric":
            raise _NotClean
        self._metrics_or_other(buf[start : start + size], obj, pieces)
        return size

    def _metrics_or_other(self, raw: bytes, obj: dict[str, Any], pieces: list[Piece]) -> None:
        """One whole record: through RecordDecoder (its warnings, e.g. a newer protocol's hello)."""
        dec = RecordDecoder()
        recs = dec.feed(raw)
        self.warnings += dec.warnings
        if recs and type(recs[0]) is Metric:
            block = fixed_layout(raw, 0, len(raw), 1)
            if block is not None:
                _append(pieces, block)
                return
            if not recs[0].extra:
                with contextlib.suppress(Exception):
                    _append(pieces, _block(_DECODE(b"\x91" + raw)))
                    return
        if recs:
            _append(pieces, recs)


_KNOWN = RECORD_TYPES


def _append(pieces: list[Piece], piece: Piece) -> None:
    """Add a piece, merging it into the last one when both are record lists (fewer, larger pieces)."""
    if pieces and isinstance(piece, list) and isinstance(pieces[-1], list):
        pieces[-1].extend(piece)
    else:
        pieces.append(piece)


def _record_prefix(rest: bytes) -> bool:
    """Whether these last bytes can be the start of the next record (cut before its "type")."""
    if not rest:
        return True
    if 0x80 <= rest[0] <= 0x8F:
        return TYPE_KEY.startswith(rest[1:])
    return rest[0] == 0xDE and len(rest) < 3 + len(TYPE_KEY) and TYPE_KEY.startswith(rest[3:])
