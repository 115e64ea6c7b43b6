"""Filing records on a disk that may fill up: nothing is lost, nothing stops training.

Used by the writer thread (`writer.py`) of every run, reported or engine-trained. A record the disk
refuses (full, a size limit, read-only) waits in memory, in order, in a backlog; the pipe hears of
it at once (seq -1, "not in the file"). Every later record waits behind it, so the file stays in
order. At most every ROOM_PROBE_S the backlog is tried again; once it is all filed, `blocked` goes
False and whoever paused for it (the engine pauses a run on `disk_error`) may go on.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from nexus.shaping import repair
from nexus_core import protocol as P
from nexus_core.records import pack
from nexus_core.safefile import rewrite_in_place

ROOM_PROBE_S = 2.0
"""How often records held for a full disk are tried again."""
MAX_BACKLOG = 100_000
"""Unfiled records held in memory while the disk is full (a paused run writes few)."""


class Filing:
    """The one RecordWriter of a run (file first, pipe best effort) plus the backlog.

    Called from one thread only (the writer thread); `disk_error` and `blocked` are read by others.
    """

    def __init__(self, path: Path, pipe_fd: int | None = None) -> None:
        self.records = P.RecordWriter(path, pipe_fd)
        self.backlog: deque[dict[str, Any]] = deque()
        self.disk_error: str | None = None
        """Why a record could not be filed; set again by every failed try while it is None (a person
        who cleared it while the disk is still full hears of it again), never cleared here."""
        self.blocked = False
        """Records wait in the backlog (set before `disk_error`, so a reader of both sees it)."""
        self.lost = 0
        """Held records given up because the backlog reached MAX_BACKLOG."""
        self._probed_at = 0.0

    def file(self, record: dict[str, Any]) -> None:
        """File one record, or hold it (behind any already held)."""
        if self.backlog:
            self._hold(record)
            self.records.tell_pipe(record)
            return
        try:
            self.records.write(record)  # on failure it already told the pipe (seq -1)
        except OSError as e:
            self._hold(record)
            self._failed(e)

    def file_many(self, records: list[dict[str, Any]]) -> list[tuple[Any, str]]:
        """File records in order, with one append when the disk takes them all (or hold them, behind
        any already held). A record with a value msgpack cannot hold is repaired key by key
        (`shaping.repair`) and filed with the rest: the (step, line) pairs returned say which keys
        it cost."""
        if not records:
            return []
        said: list[tuple[Any, str]] = []
        if not self.backlog:
            try:
                self.records.write_many(records)
                return said
            except (OverflowError, TypeError, ValueError):
                records = [self._packable(r, said) for r in records]
            except OSError:
                pass  # one at a time below: the ones the disk takes are filed, the first refused is held
        for record in records:
            self.file(self._packable(record, said))
        return said

    @staticmethod
    def _packable(record: dict[str, Any], said: list[tuple[Any, str]]) -> dict[str, Any]:
        try:
            pack(record)
            return record
        except (OverflowError, TypeError, ValueError):
            fixed, lines = repair(record)
            said.extend((record.get("step"), line) for line in lines)
            return fixed

    def probe(self, force: bool = False) -> bool:
        """At most every ROOM_PROBE_S (or now, when forced): file the held records, oldest first.
        True once none is held."""
        if not self.backlog:
            return True
        now = time.monotonic()
        if not force and now - self._probed_at < ROOM_PROBE_S:
            return False
        self._probed_at = now
        while self.backlog:
            try:
                self.records.write(self.backlog[0], tell_failure=False)  # the pipe heard of it when held
            except OSError as e:
                self._failed(e)
                return False
            self.backlog.popleft()
        self.blocked = False
        return True

    def _hold(self, record: dict[str, Any]) -> None:
        if len(self.backlog) >= MAX_BACKLOG:
            self.backlog.popleft()  # a bound on memory: only a run held for days could get here
            self.lost += 1
        self.backlog.append(record)

    def _failed(self, e: OSError) -> None:
        first = not self.blocked
        self.blocked = True
        if self.disk_error is None:
            self.disk_error = f"cannot write {P.METRICS_FILE}: {e.strerror or e}"
        if first:
            self._probed_at = time.monotonic()
            print(
                f"nexus: {self.disk_error}; records wait in memory until there is room",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if not self.probe(force=True):  # a last try: what is still held now is lost with the process
            print(
                f"nexus: {len(self.backlog)} records could not be filed ({self.disk_error or 'no room'}); "
                "they reached the pipe only",
                file=sys.stderr,
                flush=True,
            )
        self.records.close()


def write_status(run_dir: Path, status: dict[str, Any]) -> str | None:
    """Replace the status file atomically; on a full disk (no room for the new file an atomic replace
    needs) overwrite the old file's block in place, so the status still says why the run is held.
    None when written, else why not."""
    try:
        P.write_status(run_dir, status)
    except OSError as e:
        if not _rewrite_in_place(run_dir, status):
            return f"cannot write status: {e.strerror or e}"
    return None


def _rewrite_in_place(run_dir: Path, status: dict[str, Any]) -> bool:
    data = json.dumps({**status, "updated": time.time()}).encode()
    try:
        rewrite_in_place(run_dir / P.STATUS_FILE, data)
    except OSError:
        return False
    return True
