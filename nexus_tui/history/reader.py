"""A run's whole history the way the dashboard reads it, for the CLI's commands.

`nexus compare`, `nexus report` and `nexus export` folded a million-step run record by record
(~12 s here). The dashboard's own read (the columnar cache where it still matches the file, the
rest decoded as columns by `ColumnDecoder`) does it in about a second, and leaves the cache for the
next reader. The file is opened first as the per-record reader opened it, so what cannot be read
(no permission, a FIFO or a folder planted there) is still the OSError the CLI turns into one line.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from nexus_core.protocol import METRICS_FILE, open_regular, read_records
from nexus_core.safefile import data_end
from nexus_core.state import RunState
from nexus_tui.history.columnar import cachefile, colcache
from nexus_tui.history.columnar.columns import MetricBlock, Piece
from nexus_tui.history.columnar.fastdecode import READ_CHUNK, ColumnDecoder
from nexus_tui.history.store import MetricStore

NEWER_PROTOCOL = "stream speaks protocol"
"""The start of the warning one decoder gives once per stream (the fast path's per-record decoders
would give it at every hello)."""


def read_history(store: MetricStore, name: str, run_dir: Path) -> History:
    """Fold run_dir's metrics file into `store` under `name` (`read_pieces`, folded in bulk); the run
    is in the store afterwards even with no whole record, so it is named where it was asked for.
    Returns what was read (its warnings say what reading skipped). Raises OSError if it cannot be
    opened or read."""
    history = read_pieces(run_dir)
    store.ingest(name, run_dir, [])
    store.ingest_batch(name, run_dir, history.pieces)
    return history


@dataclass
class History:
    """Every whole record of a metrics file in stream order (metric records as columns), and what
    reading it skipped, worded as `read_records` words it."""

    pieces: list[Piece] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_each_record(run_dir: Path) -> History:
    """The same as `read_pieces`, record by record (`read_records`): what the columns must match."""
    result = read_records(run_dir / METRICS_FILE)
    return History([result.records] if result.records else [], [w.text for w in result.warnings])


def read_pieces(run_dir: Path) -> History:
    """The records of run_dir's metrics file up to its size when opened, as pieces: from the cache
    where it matches the file and its stretch decoded without a warning (a damaged file is decoded
    whole, so its warnings are told), the rest decoded here; a long history leaves its cache behind.
    Raises OSError when the file cannot be opened or read."""
    out = History()
    decoder = ColumnDecoder()
    with open_regular(run_dir / METRICS_FILE) as f:
        full = os.fstat(f.fileno()).st_size
        size = data_end(f, full)  # a planted sparse file: up to its first hole, not gigabytes of zeros
        if size < full:
            out.warnings.append(
                f"{full - size} bytes after a hole at byte {size} ignored (a sparse file is "
                "not a metrics file)"
            )
        history = size >= cachefile.MIN_FILE_BYTES
        cached = colcache.load(run_dir, clean_only=True) if history else None
        offset = 0
        if cached is not None:
            out.pieces, offset = cached
        f.seek(offset)
        at = offset
        while at < size and (chunk := f.read(min(READ_CHUNK, size - at))):
            at += len(chunk)
            out.pieces += decoder.feed(chunk)
    done = at - decoder.pending
    clean = not decoder.warnings and not decoder.skipping
    torn = decoder.finish()
    told = False
    for w in decoder.warnings:
        if w.text.startswith(NEWER_PROTOCOL):
            if told:
                continue
            told = True
        out.warnings.append(w.text)
    if torn:
        out.warnings.append(f"last record is torn ({torn} bytes): ignored")
    if (
        history
        and done - offset >= cachefile.MIN_FILE_BYTES
        and (cached is not None or cachefile.cached_offset(run_dir) is None)
    ):
        with contextlib.suppress(Exception):  # best effort: a read-only folder just has no cache
            colcache.save(run_dir, out.pieces, done, clean)
    return out


def reduce_pieces(pieces: list[Piece]) -> RunState | None:
    """The records through the core's reducer, as `RunState.apply` of each would leave it (None when
    there are none). A stretch of metric records changes only the time it was last updated and what
    its last record says (step, last values, running), so each block gives its times and last record."""
    run = RunState()
    seen = False
    for piece in pieces:
        if not isinstance(piece, MetricBlock):
            for rec in piece:
                run.apply(rec)
            seen = seen or bool(piece)
            continue
        if not len(piece):
            continue
        seen = True
        times = (piece.time if piece.has_all("time") else piece.time[piece.present["time"]]).tolist()
        if times:  # apply()'s max, in stream order (the same answer for a NaN time)
            run.updated = reduce(max, times, *([] if run.updated is None else [run.updated]))
        for rec in piece.slice(max(0, len(piece) - 2)).records():  # the last two: a derived tok_s
            run.apply(rec)
    return run if seen else None
