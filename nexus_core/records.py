"""The record stream: one writer (file first, pipe best effort) and one garbage-tolerant reader."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import msgspec

from nexus_core.recordtypes import LENIENT_RECORD, AnyRecord, Hello, Record, with_extras
from nexus_core.safefile import data_end, open_append, open_regular
from nexus_core.schema import _UNPACK_LIMITS, MAX_RECORD_BYTES, PROTOCOL_VERSION, RECORD_TYPES
from nexus_core.units import is_real

_TYPE_KEY = b"\xa4type"
_TYPED = msgspec.msgpack.Decoder(AnyRecord)
_LENIENT = msgspec.msgpack.Decoder(LENIENT_RECORD)
_PLAIN = msgspec.msgpack.Decoder()


def pack(record: dict[str, Any] | Record) -> bytes:
    """One record as msgpack bytes, "type" first so a reader can find the next record after garbage."""
    if isinstance(record, Record):
        if record.extra:
            return bytes(msgpack.packb(record.to_dict(), use_bin_type=True))
        return msgspec.msgpack.encode(record)  # msgspec writes the tag field first
    return bytes(msgpack.packb({"type": record["type"], **record}, use_bin_type=True))


def _decode(raw: bytes) -> Record:
    """One record from one msgpack map: AnyRecord first (the engine's records: one pass), else the
    lenient types plus a metric's or eval's extra numeric keys."""
    try:
        return _TYPED.decode(raw)
    except msgspec.ValidationError:
        record = _LENIENT.decode(raw)
    return with_extras(record, _PLAIN.decode(raw))


@dataclass
class DecodeWarning:
    """Something a reader skipped: garbage bytes, an unknown type, a newer protocol."""

    text: str
    skipped_bytes: int = 0


@dataclass
class RecordDecoder:
    """Incremental, garbage-tolerant decoder for a record stream (a pipe or a file being tailed).

    `feed(bytes)` returns the whole records decoded so far, each a typed `Record` (recordtypes.py):
    msgpack finds where a record ends, msgspec checks it against its kind in the same pass that
    builds it. A map of an unknown kind, or of a known kind with fields of the wrong type, is skipped
    with a warning. Bytes that are not a record are skipped
    one at a time until a record decodes again; each such run becomes one DecodeWarning in
    `warnings`. An unfinished record at the end stays buffered (`pending` bytes) for the next feed.
    """

    warnings: list[DecodeWarning] = field(default_factory=list)
    _pending: bytearray = field(default_factory=bytearray)
    _unpacker: Any = None
    _base: int = 0
    _garbage: int = 0
    _newer_warned: bool = False

    def _fresh(self) -> None:
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, **_UNPACK_LIMITS)
        self._unpacker.feed(bytes(self._pending))
        self._base = 0

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a record that has not fully arrived."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[Record]:
        out: list[Record] = []
        self._pending += data
        if self._unpacker is None:
            self._fresh()
        elif data:
            self._unpacker.feed(data)
        while self._pending:
            try:
                self._unpacker.skip()  # find the end of the next msgpack object without building it
            except msgpack.OutOfData:
                if len(self._pending) <= 2 * MAX_RECORD_BYTES and not self._whole_record_after_head():
                    break
                self._resync()  # a head that never ends, or one that a later whole record proves garbage
                continue
            except Exception:  # noqa: BLE001 - any decode failure means garbage here
                self._resync()
                continue
            end = self._unpacker.tell()
            raw = bytes(self._pending[: end - self._base])
            try:
                record: Record | None = _decode(raw)
                kind: str | None = None
            except Exception:  # noqa: BLE001 - invalid fields, bad UTF-8, ...: not a valid record
                record = None
                kind = self._kind_of(raw)
                if kind is None:
                    self._resync()  # garbage that happened to decode as msgpack
                    continue
            del self._pending[: end - self._base]
            self._base = end
            self._flush_garbage()
            if kind is not None:  # a map with a "type" that is not a valid record
                self._skip_invalid(raw, kind)
            elif record is not None and self._accept(record):
                out.append(record)
        return out

    @staticmethod
    def _kind_of(raw: bytes) -> str | None:
        """The "type" of a map that is not a valid record, or None when it is not a record at all."""
        try:
            obj = _PLAIN.decode(raw)
        except Exception:  # noqa: BLE001 - bad UTF-8, an ext type, ...: garbage
            return None
        kind = obj.get("type") if isinstance(obj, dict) else None
        return kind if isinstance(kind, str) else None

    def _skip_invalid(self, raw: bytes, kind: str) -> None:
        if kind not in RECORD_TYPES:
            self.warnings.append(DecodeWarning(f"skipped a record of unknown type {kind!r}"))
            return
        try:
            _LENIENT.decode(raw)
        except Exception as e:  # noqa: BLE001 - say what was wrong, whatever it was
            why = str(e)
        else:  # pragma: no cover - it decoded a moment ago
            why = "?"
        self.warnings.append(DecodeWarning(f"skipped a {kind} record with bad fields ({why[:200]})"))

    def _accept(self, record: Record) -> bool:
        if isinstance(record, Hello):
            version = record.protocol
            if version > PROTOCOL_VERSION and not self._newer_warned:
                self._newer_warned = True
                self.warnings.append(
                    DecodeWarning(
                        f"stream speaks protocol {version}, this Nexus speaks {PROTOCOL_VERSION}: "
                        "unknown fields are ignored; upgrade Nexus to see them"
                    )
                )
        return True

    def _record_starts(self) -> Iterator[int]:
        """Offsets after the head where a record could start: a map header before the key "type"."""
        buf = self._pending
        at = buf.find(_TYPE_KEY, 1)
        while at != -1:
            if at >= 2 and 0x80 <= buf[at - 1] <= 0x8F:
                yield at - 1
            elif at >= 4 and buf[at - 3] == 0xDE:
                yield at - 3
            at = buf.find(_TYPE_KEY, at + 1)

    def _whole_record_after_head(self) -> bool:
        """A stream writes records in order, so if a whole record sits after an unfinished head,
        the head is garbage (say, a length header claiming megabytes) and waiting for it would stall."""
        for tries, start in enumerate(self._record_starts()):
            if tries >= 3:
                break
            probe = msgpack.Unpacker(raw=False, strict_map_key=False, **_UNPACK_LIMITS)
            probe.feed(bytes(self._pending[start:]))
            try:
                probe.skip()
            except Exception:  # noqa: BLE001 - not a record there
                continue
            if self._kind_of(bytes(self._pending[start : start + probe.tell()])) is not None:
                return True
        return False

    def _resync(self) -> None:
        """Skip to the next place a record could start (writers put "type" first), or all but the
        last few bytes. Linear in the garbage, however long it is."""
        start = next(self._record_starts(), 0) or max(1, len(self._pending) - len(_TYPE_KEY) - 2)
        del self._pending[:start]
        self._garbage += start
        self._fresh()

    def _flush_garbage(self) -> None:
        if self._garbage:
            self.warnings.append(
                DecodeWarning(f"skipped {self._garbage} bytes that were not records", self._garbage)
            )
            self._garbage = 0

    def finish(self) -> int:
        """End of input: report skipped garbage; return the torn tail's length (0 if none)."""
        self._flush_garbage()
        return len(self._pending)


@dataclass
class ReadResult:
    """Everything a file held: whole records, the torn tail's size, and what was skipped."""

    records: list[Record]
    torn_bytes: int
    warnings: list[DecodeWarning]
    size: int


def read_records(path: str | Path, offset: int = 0) -> ReadResult:
    """Read a metrics file from `offset` up to its size when opened (a file still being appended to
    is read up to there, never chased). A file cut mid-record yields every whole record before it.
    A path that is not a regular file raises UnsafeFileError (an OSError) instead of blocking."""
    decoder = RecordDecoder()
    records: list[Record] = []
    size = offset
    with open_regular(path) as f:  # a FIFO, a device or a folder is refused, never read forever
        full = os.fstat(f.fileno()).st_size
        end = data_end(f, full)  # a planted sparse file is read up to its first hole, not for minutes
        if end < full:
            decoder.warnings.append(
                DecodeWarning(
                    f"{full - end} bytes after a hole at byte {end} ignored "
                    "(a sparse file is not a metrics file)",
                    full - end,
                )
            )
        f.seek(offset)
        while size < end and (chunk := f.read(min(1 << 20, end - size))):
            size += len(chunk)
            records.extend(decoder.feed(chunk))
    torn = decoder.finish()
    if torn:
        decoder.warnings.append(DecodeWarning(f"last record is torn ({torn} bytes): ignored", torn))
    return ReadResult(records, torn, decoder.warnings, size)


class RecordWriter:
    """Writes each record to the append-only metrics file and, if given, to a metrics pipe.

    The file is the truth and is written first. The pipe is best effort: it is non-blocking, a full
    pipe drops the record there (readers can backfill from the file by `seq`), and a broken pipe (the
    dashboard quit or died) is closed and never slows training.
    """

    def __init__(self, path: str | Path, pipe_fd: int | None = None) -> None:
        self.path = Path(path)
        self.seq = count_records(self.path) if self.path.exists() else 0
        self._file = open_append(
            self.path, buffering=0
        )  # lives as long as the writer; never through a link or FIFO
        self._pipe = pipe_fd
        self.pipe_dropped = 0
        self._packer = msgpack.Packer(use_bin_type=True)
        if pipe_fd is not None:
            os.set_blocking(pipe_fd, False)

    def write(self, record: dict[str, Any], tell_failure: bool = True) -> dict[str, Any]:
        """File (then pipe) one record, stamped with its seq and, unless it carries a numeric "time"
        already (a writer that files records after the fact, like nexus's reporter), the time now.
        A record the file refuses goes to the pipe as seq -1 unless `tell_failure` is False (a
        record held for a full disk, which the pipe heard of when it was first refused)."""
        at = record.get("time")
        at = at if is_real(at) else time.time()
        record = {**record, "seq": self.seq, "time": at}
        data = pack(record)
        try:
            self._append(data)
        except OSError:
            # Not filed (disk full, size limit): the pipe still hears of it, as seq -1 ("not in the file").
            if tell_failure:
                self._to_pipe(pack({**record, "seq": -1}))
            raise  # the caller turns it into an alert
        self.seq += 1
        self._to_pipe(data)
        return record

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """File many records with one append (then one pipe write): the writer thread's fast path, a
        few hundred thousand records a second where one write() each manages half that. Each record
        is stamped with its seq (and, lacking a numeric time, the time now) in place, so the records
        must be the caller's own. All or nothing: on OSError none is filed and `seq` stays; a value
        msgpack cannot hold raises its OverflowError/TypeError/ValueError before anything is written."""
        if not records:
            return
        pack_one = self._packer.pack
        parts = []
        seq = self.seq
        for record in records:
            if next(iter(record)) != "type":  # "type" first: readers resync on it after garbage
                record = {"type": record["type"], **record}
            record["seq"] = seq
            at = record.get("time")
            if not isinstance(at, (int, float)) or isinstance(at, bool):
                record["time"] = time.time()
            parts.append(pack_one(record))
            seq += 1
        self._append(b"".join(parts))
        self.seq = seq
        if self._pipe is not None:
            self._to_pipe_in_pieces(parts)

    def _to_pipe_in_pieces(self, parts: list[bytes]) -> None:
        """The pipe gets whole records in writes of at most PIPE_BUF bytes, which a pipe takes whole
        or not at all: a full pipe drops those records (readers backfill them from the file by seq)
        instead of leaving half a record in it."""
        piece: list[bytes] = []
        size = 0
        for data in parts:
            if piece and size + len(data) > select.PIPE_BUF:
                self._to_pipe(b"".join(piece))
                piece, size = [], 0
            piece.append(data)
            size += len(data)
        if piece:
            self._to_pipe(b"".join(piece))

    def tell_pipe(self, record: dict[str, Any]) -> None:
        """Send a record that is not filed (yet) to the pipe only, as seq -1 ("not in the file")."""
        self._to_pipe(pack({**record, "seq": -1}))

    def _append(self, data: bytes) -> None:
        """Append one whole record or nothing: a short write (size limit, full disk) is taken back,
        so the file never holds a torn record in its middle."""
        written = self._file.write(data)
        if written is not None and written != len(data):
            self._file.truncate(self._file.tell() - written)
            raise OSError(errno.EFBIG, f"short write to {self.path.name} ({written} of {len(data)} bytes)")

    def _to_pipe(self, data: bytes) -> None:
        if self._pipe is None:
            return
        try:
            sent = os.write(self._pipe, data)
            view = memoryview(data)[sent:]
            deadline = time.monotonic() + 0.5
            while view and time.monotonic() < deadline:
                select.select([], [self._pipe], [], 0.05)
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(self._pipe, view) :]
            if view:
                self._close_pipe()  # a half record went out: the reader will resync; stop using it
        except BlockingIOError:
            self.pipe_dropped += 1
        except OSError:
            self._close_pipe()

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None

    @property
    def has_pipe(self) -> bool:
        return self._pipe is not None

    def close(self) -> None:
        self._close_pipe()
        self._file.close()


def count_records(path: str | Path) -> int:
    """How many whole records a metrics file holds (the next record's seq)."""
    return len(read_records(path).records)


def iter_records(path: str | Path, types: frozenset[str] | None = None) -> Iterator[Record]:
    """Whole records of a file, optionally only some types."""
    for r in read_records(path).records:
        if types is None or r.type in types:
            yield r
