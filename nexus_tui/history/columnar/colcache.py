"""A columnar cache of a run's metrics file, beside it: runs/NAME/.nexus-cache/metrics.cols.

Opening a million-step run decodes 150 MB of msgpack; the cache holds the same records already as
numpy columns (metric records) plus the few others packed as msgpack, in stream order, so a second
open maps the file and reads the columns in place (a JSON header, then raw arrays 64-byte aligned). The file stays the single truth: the cache says which bytes of the file it was
made from (the offset it covers, the file's size then, a hash of the file's head and of the bytes
just before the offset, the last seq it holds) and is used only when the file still has those bytes.
A file appended to since is read from the cached offset on; a file replaced, truncated or rewritten
in place, or a cache that is damaged, unreadable or from another version is ignored and rebuilt.
Writing is best effort (a read-only runs folder just has no cache) and atomic (temp file, rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import queue
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nexus_core.protocol import METRICS_FILE
from nexus_core.records import RecordDecoder, pack
from nexus_core.recordtypes import Record
from nexus_core.safefile import atomic_writer, open_regular, private_dir, scratch_file
from nexus_tui.history.columnar.cachefile import (
    CACHE_DIR,
    CACHE_FILE,
    MAGIC,
    MIN_FILE_BYTES,
    VERSION,
    cache_path,
    read_header,
)
from nexus_tui.history.columnar.fastdecode import BLOCK_KEYS, MetricBlock, Piece

__all__ = [
    "CACHE_DIR",
    "CACHE_FILE",
    "MIN_FILE_BYTES",
    "VERSION",
    "CacheBuilder",
    "cache_path",
    "load",
    "save",
]

HASH_CHUNK = 4 << 20
_FIELDS = ("step", "tokens", "time", *BLOCK_KEYS)
EXTRA = "x:"
"""Prefix of an extra key's column (and of its mask, `present_x:KEY`)."""
MAX_CACHED_EXTRAS = 64
"""A history with more keys of its own is not cached (each column is a temp file while it is built)."""


def fingerprint(path: Path, offset: int) -> dict[str, Any]:
    """What ties a cache to the first `offset` bytes of the file at `path`: a hash of every one of
    them (blake2b, ~0.2 s for 150 MB, against seconds to decode them), so a rewrite of any byte, of
    the same length or not, is noticed. OSError if the file is not a regular file or is shorter."""
    h = hashlib.blake2b(digest_size=16)
    buf = bytearray(HASH_CHUNK)
    left = offset
    with open_regular(path, within=path.parent) as f:
        while left > 0:
            n = f.readinto(memoryview(buf)[: min(left, HASH_CHUNK)])  # type: ignore[attr-defined]  # a real file
            if not n:
                raise OSError(f"{path} is shorter than the {offset} bytes the cache covers")
            h.update(memoryview(buf)[:n])
            left -= n
    return {"offset": offset, "blake2b": h.hexdigest()}


def load(run_dir: Path, clean_only: bool = False) -> tuple[list[Piece], int] | None:
    """The cached pieces and the file offset they cover, if the cache is whole and still describes
    the metrics file; None otherwise (no cache, stale, damaged: the caller reads the file).
    `clean_only`: None also for a cache of bytes whose decode warned (garbage, a bad record)."""
    path = Path(run_dir) / METRICS_FILE
    try:
        arrays, meta = _read(cache_path(run_dir), run_dir)
        if meta.get("version") != VERSION or (clean_only and meta.get("clean") is not True):
            return None
        offset = meta["offset"]
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            return None
        if path.stat().st_size < offset or fingerprint(path, offset) != meta["fingerprint"]:
            return None
        pieces = _unpack(arrays, meta)
    except Exception:  # noqa: BLE001 - any problem with a derived file means: read the real one
        return None
    return pieces, offset


class _Pages:
    """Gives back the pages of the mapped cache a block's columns were read from, once the store has
    copied them: they are clean file pages (the kernel reads them again if anything looks), but
    while mapped they count in the dashboard's memory, and a million steps' columns are ~90 MB."""

    def __init__(self, mapped: mmap.mmap, spans: dict[str, tuple[int, int]]) -> None:
        self.mapped = mapped
        self.spans = spans
        """column -> (byte offset in the file, item size)"""

    def releaser(self, a: int, b: int) -> Callable[[], None]:
        def release() -> None:
            for at, size in self.spans.values():
                start = -(-(at + a * size) // mmap.PAGESIZE) * mmap.PAGESIZE
                stop = (at + b * size) // mmap.PAGESIZE * mmap.PAGESIZE
                if stop > start:
                    with contextlib.suppress(ValueError, OSError):  # closed, or no madvise here
                        self.mapped.madvise(mmap.MADV_DONTNEED, start, stop - start)

        return release


def _read(path: Path, run_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays (read-only views of the mapped file) and the meta of a cache file (with the
    mapping's `_Pages` under the key "pages"). Regular files inside the run folder only: a FIFO
    there never blocks, a link out of the folder is not followed."""
    with open_regular(path, within=run_dir) as f:
        header = read_header(f)
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    arrays = {}
    for name, (at, dtype, count) in header["arrays"].items():
        if at < 0 or count < 0 or at + count * np.dtype(dtype).itemsize > len(mapped):
            raise ValueError("array out of the file")
        arrays[name] = np.frombuffer(mapped, dtype, count, at)
    spans = {
        name: (at, np.dtype(dtype).itemsize)
        for name, (at, dtype, _) in header["arrays"].items()
        if name not in ("layout", "others")
    }
    return arrays, {**header["meta"], "pages": _Pages(mapped, spans) if hasattr(mapped, "madvise") else None}


def _write(f: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    names = list(arrays)
    layout: dict[str, list[Any]] = {}
    # Offsets depend on the header's length, which depends on the offsets: reserve room for it.
    base = 4096 + 64 * len(names)
    at = base
    for name in names:
        a = arrays[name] if isinstance(arrays[name], _Spilled) else np.ascontiguousarray(arrays[name])
        layout[name] = [at, a.dtype.str, int(a.size)]
        at += -(-a.nbytes // 64) * 64
    header = json.dumps({"meta": meta, "arrays": layout}).encode()
    if len(MAGIC) + 8 + len(header) > base:
        raise ValueError("cache header too large")
    f.write(MAGIC + len(header).to_bytes(8, "little") + header)
    for name in names:
        f.seek(layout[name][0])
        a = arrays[name]
        if isinstance(a, _Spilled):
            if a.source is not None:
                a.source.seek(0)
                shutil.copyfileobj(a.source, f, 1 << 20)
        else:
            f.write(np.ascontiguousarray(a).tobytes())
    f.truncate(at)  # the file reaches past the last array, empty ones included


_EXACT = float(2**53)
"""Steps and token counts are integers a float64 holds exactly (the decoder refuses others)."""


def _check_values(cols: dict[str, np.ndarray], present: dict[str, np.ndarray]) -> None:
    """The cache's columns checked as the decoder checks records: steps and token counts finite
    integers within 2**53 (where present), masks as long as their columns. ValueError otherwise:
    a NaN step must never reach an axis (it drew -9.2e18) or an export."""
    for k in ("step", "tokens"):
        c = cols[k]
        if k in present:
            c = c[present[k]]
        if len(c) and not (np.isfinite(c).all() and (np.abs(c) <= _EXACT).all() and (c == np.floor(c)).all()):
            raise ValueError(f"cached {k} column holds a value no record can")


def _unpack(z: dict[str, np.ndarray], meta: dict[str, Any]) -> list[Piece]:
    for k in ("seq", "layout", "others", *_FIELDS):
        if k not in z:
            raise ValueError(f"cache has no {k} column")
    seq = z["seq"]
    cols = {k: z[k] for k in _FIELDS}
    extra = {k[len(EXTRA) :]: z[k] for k in z if k.startswith(EXTRA)}
    present = {k[len("present_") :].removeprefix(EXTRA): z[k] for k in z if k.startswith("present_")}
    rows = len(seq)
    if any(len(c) != rows for c in (*cols.values(), *present.values(), *extra.values())):
        raise ValueError("columns of different lengths")
    if len(z["layout"]) % 3:
        raise ValueError("layout of a bad length")
    _check_values(cols, present)
    others = _records(bytes(z["others"]), meta)
    if rows and int(seq[-1]) != meta["last_seq"]:
        raise ValueError("last seq does not match")
    pieces: list[Piece] = []
    for kind, a, b in z["layout"].reshape(-1, 3).tolist():
        if not 0 <= a <= b <= (rows if kind == 0 else len(others)):
            raise ValueError("layout out of range")
        if kind == 0:
            pages = meta.get("pages")
            pieces.append(
                MetricBlock(
                    seq[a:b],
                    cols["step"][a:b],
                    cols["tokens"][a:b],
                    cols["time"][a:b],
                    {k: cols[k][a:b] for k in BLOCK_KEYS},
                    {k: m[a:b] for k, m in present.items() if not m[a:b].all()},
                    {k: c[a:b] for k, c in extra.items()},
                    release=pages.releaser(a, b) if pages is not None else None,
                )
            )
        else:
            pieces.append(list(others[a:b]))
    return pieces


def save(run_dir: Path, pieces: list[Piece], offset: int, clean: bool = False) -> bool:
    """Write the cache for the first `offset` bytes of the metrics file; False if it could not be.
    `clean`: those bytes decoded without a warning."""
    run_dir = Path(run_dir)
    blocks = [p for p in pieces if isinstance(p, MetricBlock) and len(p)]
    others: list[Record] = []
    layout: list[tuple[int, int, int]] = []
    rows = 0
    for p in pieces:
        if isinstance(p, MetricBlock):
            if len(p):
                layout.append((0, rows, rows + len(p)))
                rows += len(p)
        elif p:
            layout.append((1, len(others), len(others) + len(p)))
            others.extend(p)
    merged = MetricBlock.concat(blocks) if blocks else None
    arrays: dict[str, np.ndarray] = {
        "seq": merged.seq if merged is not None else np.empty(0, np.int64),
        "layout": np.array(layout, dtype=np.int64).reshape(-1, 3),
        "others": np.frombuffer(_packed(others), np.uint8),
    }
    for k in _FIELDS:
        arrays[k] = (
            getattr(merged, k)
            if k in ("step", "tokens", "time") and merged is not None
            else (merged.values[k] if merged is not None else np.empty(0))
        )
    if merged is not None:
        if len(merged.extra) > MAX_CACHED_EXTRAS:
            return False
        for k, c in merged.extra.items():
            arrays[EXTRA + k] = c
        for k, m in merged.present.items():
            arrays[f"present_{EXTRA + k if k in merged.extra else k}"] = m
    try:
        meta = {
            "version": VERSION,
            "offset": offset,
            "fingerprint": fingerprint(run_dir / METRICS_FILE, offset),
            "last_seq": int(arrays["seq"][-1]) if rows else None,
            "others": len(others),
            "clean": clean,
        }
        _replace_cache(run_dir, arrays, meta)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _replace_cache(run_dir: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write the cache to a temp file beside it and rename it into place: a reader (another
    dashboard) sees the old cache or the new one, never half of one. Raises OSError."""
    folder = private_dir(run_dir, CACHE_DIR)  # a `.nexus-cache` link or FIFO is refused, not written through
    with atomic_writer(folder / CACHE_FILE, within=run_dir, mode=0o600) as f:
        _write(f, arrays, meta)


def _packed(records: list[Record]) -> bytes:
    """The non-metric records as the stream carries them, so reading them back is RecordDecoder's
    job (the same typed records, extras included) and not a second decoder's."""
    return b"".join(pack(r) for r in records)


def _records(data: bytes, meta: dict[str, Any]) -> list[Record]:
    decoder = RecordDecoder()
    records = decoder.feed(data)
    if decoder.finish() or decoder.warnings or len(records) != meta["others"]:
        raise ValueError("the cached records do not decode whole")
    return records


class CacheBuilder:
    """Builds a cache while a file is first decoded, spilling each metric column to an anonymous
    temp file as its pieces arrive, so a history's columns are not held twice in memory (once in the
    store, once for the cache). The spilling (~110 MB of writes for a million steps) runs on a thread
    of its own beside the decode, not inside it: the open waits for the decode, not for the disk.
    Any failure to write just means no cache."""

    QUEUED = 2
    """Batches of pieces waiting for the writer at most (the decoder then waits): a bound on memory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.rows = 0
        self.others: list[Record] = []
        self.layout: list[tuple[int, int, int]] = []
        self.last_seq: int | None = None
        self.failed = False
        self._files: dict[str, Any] = {}
        self._partial: set[str] = set()
        self._extras: list[str] = []
        """Column names (`x:KEY`) of the writer's own keys met so far, in that order."""
        self._queue: queue.Queue[list[Piece] | None] = queue.Queue(self.QUEUED)
        self._writer: threading.Thread | None = None

    def add(self, pieces: list[Piece]) -> None:
        """Hand pieces to the writer thread (started at the first); they are spilled in this order."""
        if self.failed:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="nexus-cache-writer", daemon=True)
            self._writer.start()
        self._queue.put(pieces)

    def _write_loop(self) -> None:
        while (
            pieces := self._queue.get()
        ) is not None:  # keeps taking them, failed or not: add never blocks for good
            try:
                self._spill(pieces)
            except Exception:  # noqa: BLE001 - the cache is best effort; the decode goes on without it
                self._close_files()
                self.failed = True

    def _drain(self) -> None:
        """Wait until the writer has spilled everything handed to it, and stop it."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None

    def _spill(self, pieces: list[Piece]) -> None:
        if self.failed:
            return
        try:
            for p in pieces:
                if isinstance(p, MetricBlock):
                    if len(p):
                        self._add_block(p)
                elif p:
                    self.layout.append((1, len(self.others), len(self.others) + len(p)))
                    self.others.extend(p)
        except (OSError, _TooWide):
            self._close_files()
            self.failed = True

    def _add_block(self, p: MetricBlock) -> None:
        if not self._files:
            folder = private_dir(self.run_dir, CACHE_DIR)
            for name in ("seq", *_FIELDS, *(f"present_{k}" for k in ("seq", *_FIELDS))):
                self._files[name] = scratch_file(folder)
        for key in p.extra:
            if EXTRA + key not in self._files:  # a key first met here: nothing in the rows before
                if len(self._extras) >= MAX_CACHED_EXTRAS:
                    raise _TooWide
                self._extras.append(EXTRA + key)
                for name, fill in (
                    (EXTRA + key, np.full(self.rows, np.nan)),
                    (f"present_{EXTRA}{key}", np.zeros(self.rows, bool)),
                ):
                    self._files[name] = scratch_file(private_dir(self.run_dir, CACHE_DIR))
                    self._files[name].write(fill.tobytes())
                self._partial.add(EXTRA + key) if self.rows else None
        cols = {"seq": p.seq.astype(np.int64), "step": p.step, "tokens": p.tokens, "time": p.time, **p.values}
        for name in self._extras:
            key = name[len(EXTRA) :]
            cols[name] = p.extra.get(key, np.full(len(p), np.nan))
        masks = {**p.present, **{EXTRA + k: m for k, m in p.present.items() if k in p.extra}}
        for name in self._extras:
            if name[len(EXTRA) :] not in p.extra:
                masks[name] = np.zeros(len(p), bool)
        for name, column in cols.items():
            # The array's own buffer, not a bytes copy of it.
            self._files[name].write(
                np.ascontiguousarray(column, np.float64 if name != "seq" else np.int64).data
            )
        for name in cols:
            mask = masks.get(name)
            if mask is not None and not mask.all():
                self._partial.add(name)
            self._files[f"present_{name}"].write(
                np.ascontiguousarray(mask if mask is not None else np.ones(len(p), bool), bool).data
            )
        self.layout.append((0, self.rows, self.rows + len(p)))
        self.rows += len(p)
        self.last_seq = int(p.seq[-1])

    def finish(self, offset: int, clean: bool = False) -> bool:
        """Write the cache for the first `offset` bytes of the metrics file; False if it could not be.
        `clean`: those bytes decoded without a warning."""
        self._drain()
        if self.failed:
            self.close()
            return False
        try:
            meta = {
                "version": VERSION,
                "offset": offset,
                "fingerprint": fingerprint(self.run_dir / METRICS_FILE, offset),
                "last_seq": self.last_seq,
                "others": len(self.others),
                "clean": clean,
            }
            names = ["seq", *_FIELDS, *self._extras, *(f"present_{k}" for k in sorted(self._partial))]
            small = {
                "layout": np.array(self.layout, dtype=np.int64).reshape(-1, 3),
                "others": np.frombuffer(_packed(self.others), np.uint8),
            }
            spilled = {name: _Spilled(self._files.get(name), name, self.rows) for name in names}
            _replace_cache(self.run_dir, {**spilled, **small}, meta)
        except (OSError, ValueError, TypeError):
            return False
        finally:
            self.close()
        return True

    def close(self) -> None:
        self._drain()
        self._close_files()

    def _close_files(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files = {}


class _TooWide(Exception):
    """More keys of a writer's own than a cache holds."""


class _Spilled:
    """A column waiting in a temp file, written into the cache file by `_write` without loading it."""

    def __init__(self, source: Any, name: str, rows: int) -> None:
        self.source = source
        self.dtype = np.dtype(
            np.int64 if name == "seq" else bool if name.startswith("present_") else np.float64
        )
        self.size = rows if source is not None else 0
        self.nbytes = self.size * self.dtype.itemsize
