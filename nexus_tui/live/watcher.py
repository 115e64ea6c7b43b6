"""Follow the runs folder: new run folders, and records appended to each run's metrics.msgpack.

This is how the dashboard sees runs it did not launch (started from a terminal, or by a dashboard that
quit) and how it backfills records a full pipe dropped: the file is the source of truth. watchdog
(inotify on Linux) wakes us on each append; we read from the last offset with one RecordDecoder per
file, so a record cut in half by a concurrent write waits for its other half. A slow poll runs beside
it because inotify can miss files created inside a folder before its watch existed, and some
filesystems (NFS, some containers) report nothing at all.

A folder is often found before its engine has written a status file (config.toml comes first): such a
run stays pending, and every later file event in it and every poll looks again, until its status file
appears (the metrics file is created empty earlier, before anything says which process writes it);
then `on_run_ready` is called once, so its process can be followed from then on.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from nexus_core.protocol import CONFIG_FILE, LOG_FILE, METRICS_FILE, STATUS_FILE, open_regular
from nexus_core.safefile import data_end
from nexus_tui.history.columnar import colcache
from nexus_tui.history.columnar.fastdecode import READ_CHUNK, ColumnDecoder, Piece
from nexus_tui.live.prebuild import Prebuild

OnBatch = Callable[[str, Path, list[Piece], "float | None"], None]
"""(run name, run dir, pieces in stream order, loading: the fraction of a large history read so far,
or None for records that are news)."""
OnNewRun = Callable[[Path], None]
OnWarning = Callable[[str, str], None]
OnRunReady = Callable[[Path], None]

RUN_FILES = frozenset({CONFIG_FILE, METRICS_FILE, STATUS_FILE, LOG_FILE})
"""A folder under the root becomes a run when one of these appears in it."""
POLL_S = 2.0
HISTORY_DELIVER_S = 0.25
HISTORY_DELIVER_BYTES = 8 << 20
"""While a large history is read, its decoded pieces go to the app once this much of the file or
this long has gone by (and at the end): a few large batches for the app's thread to fold, not one
per chunk read (each also redrew the table and took the interpreter from the decode), and not so
many held at once that they add to the peak memory of the open."""


@dataclass
class _Tail:
    """Where we are in one metrics file."""

    offset: int = 0
    decoder: ColumnDecoder = field(default_factory=ColumnDecoder)
    problem: str = ""
    """The last reason the file could not be read, so it is reported once, not every poll."""


class RunsWatcher:
    """Calls `on_new_run(run_dir)` once per run folder and `on_batch(name, run_dir, pieces, loading)`
    with every new whole record (decoded pieces: metric columns and record lists, in stream order), from the observer or poll thread. Warnings (garbage in a file, a file
    that shrank, no file events) go to `on_warning(name, text)`, name '' for the folder itself."""

    def __init__(
        self,
        root: str | Path,
        on_batch: OnBatch,
        on_new_run: OnNewRun,
        on_warning: OnWarning,
        poll_s: float = POLL_S,
        on_run_ready: OnRunReady | None = None,
        prebuild: Prebuild | None = None,
        piped: Callable[[str], bool] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.on_batch = on_batch
        self.on_new_run = on_new_run
        self.on_warning = on_warning
        self.poll_s = poll_s
        self.on_run_ready = on_run_ready
        self.prebuild = prebuild
        """A child process building the caches of the runs' histories (prebuild.py): a history
        without a usable cache waits for its word before decoding the file itself."""
        self.piped = piped
        """Whether a run's records are arriving through a live pipe (the supervisor's): then a file
        event does not read its metrics file again (the pipe already delivered what was written;
        at every write that was most of the dashboard's own CPU beside the charts); the poll does,
        every `poll_s`, for whatever the pipe dropped."""
        self._pending: set[str] = set()
        """Runs found without a status or metrics file yet: looked at again until one appears."""
        self._tails: dict[str, _Tail] = {}
        self._known: set[str] = set()
        self._lock = threading.RLock()
        self._observer: Any = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._handler = _Handler(self)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Watch the root (created if missing) until stop()."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        observer = Observer()
        observer.daemon = True
        # The root and each run folder, not recursively: checkpoint folders come and go by the
        # hundred and the records already say what happened to them.
        observer.schedule(self._handler, str(self.root), recursive=False)
        try:
            observer.start()
            self._observer = observer
        except OSError as e:  # e.g. the inotify watch limit: the poll still works, just slower
            self._warn("", f"file events unavailable ({e}); checking the runs folder every {self.poll_s:g} s")
        with self._lock:
            known = sorted(self._known)
        for name in known:
            self._watch(self.root / name)
        self._poller = threading.Thread(target=self._poll_loop, name="nexus-watch-poll", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self.prebuild is not None:
            self.prebuild.close()
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
                self._observer.join(timeout=2.0)
            self._observer = None
        if self._poller is not None:
            self._poller.join(timeout=self.poll_s + 1.0)
            self._poller = None

    def scan_existing(self) -> list[Path]:
        """Report every run folder already there and deliver its whole history; returns the folders.
        Those that already have a status file are not pending: the caller follows them (attach_all);
        on_run_ready comes later only for those whose status file appears afterwards."""
        if not self.root.is_dir():
            return []
        found = [d for d in sorted(self.root.iterdir()) if d.is_dir() and _is_run(d)]
        for d in found:
            self._discover(d)
            if (d / STATUS_FILE).exists():
                with self._lock:
                    self._pending.discard(d.name)
            self.read(d)
        return found

    # -- work ------------------------------------------------------------------------------------

    def _warn(self, name: str, text: str) -> None:
        with contextlib.suppress(Exception):
            self.on_warning(name, text)

    def _discover(self, run_dir: Path) -> None:
        with self._lock:
            if run_dir.name in self._known:
                return
            self._known.add(run_dir.name)
            self._pending.add(run_dir.name)
        self._watch(run_dir)
        try:
            self.on_new_run(run_dir)
        except Exception as e:  # noqa: BLE001 - a broken handler must not stop the watcher
            self._warn(run_dir.name, f"the dashboard failed to handle a new run: {e!r}")

    def _check_ready(self, run_dir: Path) -> None:
        """Call on_run_ready once, when a found run first has a status file (its pid and state)."""
        with self._lock:
            if run_dir.name not in self._pending or not (run_dir / STATUS_FILE).exists():
                return
            self._pending.discard(run_dir.name)
        if self.on_run_ready is not None:
            try:
                self.on_run_ready(run_dir)
            except Exception as e:  # noqa: BLE001
                self._warn(run_dir.name, f"the dashboard failed to follow a new run: {e!r}")

    def _watch(self, run_dir: Path) -> None:
        """File events for one run folder; without them the poll still finds its records. None for
        a run whose records come through a live pipe: its events would read nothing (see `piped`),
        and watchdog's handling of them (a status write is six) was a share of the dashboard's CPU."""
        if self._is_piped(run_dir.name):
            return
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.schedule(self._handler, str(run_dir), recursive=False)

    def read(self, run_dir: Path) -> int:
        """Deliver whatever whole records were appended to run_dir's metrics file since last time;
        returns how many. Safe to call from any thread at any moment. The first read of a large file
        (a run's history) starts from its columnar cache when that still matches the file, reports
        how far it got as it goes, and refreshes the cache at the end."""
        path = run_dir / METRICS_FILE
        name = run_dir.name
        delivered = 0
        with self._lock:
            tail = self._tails.setdefault(name, _Tail())
            try:
                size = path.stat().st_size
            except OSError:
                return 0
            if size < tail.offset:
                self._warn(
                    name, f"{METRICS_FILE} shrank from {tail.offset} to {size} bytes: reading it again"
                )
                tail = self._tails[name] = _Tail()
            if size == tail.offset:
                return 0
            history = tail.offset == 0 and size >= colcache.MIN_FILE_BYTES
            kept: list[Piece] = []
            cached_to = 0
            clean = True  # no decode warning in the history read so far (a cache says so of its stretch)
            builder: colcache.CacheBuilder | None = None
            if history:
                self._deliver(name, run_dir, [], 0.0)
                if self.prebuild is not None:  # a run the child is decoding: its cache, once written
                    self.prebuild.wait(
                        name,
                        lambda f: self._deliver(name, run_dir, [], f),
                        lambda text: self._warn(name, text),
                    )
                cached = colcache.load(run_dir, clean_only=True)
                if cached is None and (cached := colcache.load(run_dir)) is not None:
                    clean = False  # a cache of a stretch that warned: so is its extension
                if cached is not None:  # extend it: keep its pieces (views of the mapped file)
                    kept, cached_to = cached
                    tail.offset = cached_to
                    delivered += self._deliver(name, run_dir, kept, cached_to / size)
                else:  # build it as the file is decoded, its columns spilled to disk
                    builder = colcache.CacheBuilder(run_dir)
            held: list[Piece] = []
            """A history's pieces not handed on yet (see HISTORY_DELIVER_S)."""
            held_bytes, last = 0, time.monotonic()
            try:
                with open_regular(path) as f:  # a FIFO, device or folder planted there is refused
                    size = data_end(f, os.fstat(f.fileno()).st_size)  # a sparse file: up to its first hole
                    f.seek(tail.offset)
                    while tail.offset < size and (chunk := f.read(min(READ_CHUNK, size - tail.offset))):
                        tail.offset += len(chunk)
                        pieces = tail.decoder.feed(chunk)
                        for w in tail.decoder.warnings:
                            clean = False
                            self._warn(name, f"{METRICS_FILE}: {w.text}")
                        tail.decoder.warnings.clear()
                        if builder is not None:
                            builder.add(pieces)
                        elif history:
                            kept += pieces
                        if not history:
                            delivered += self._deliver(name, run_dir, pieces, None)
                            continue
                        held += pieces
                        held_bytes += len(chunk)
                        if (
                            held_bytes >= HISTORY_DELIVER_BYTES
                            or time.monotonic() - last >= HISTORY_DELIVER_S
                        ):
                            delivered += self._deliver(name, run_dir, held, tail.offset / size)
                            held, held_bytes, last = [], 0, time.monotonic()
                    if held:
                        delivered += self._deliver(name, run_dir, held, tail.offset / size)
                        held = []
            except OSError as e:
                if held:  # the whole records read before the error are still news
                    delivered += self._deliver(name, run_dir, held, tail.offset / size)
                problem = f"cannot read {METRICS_FILE}: {e.strerror}"
                if tail.problem != problem:  # once, not at every poll
                    tail.problem = problem
                    self._warn(name, problem)
                if builder is not None:
                    builder.close()
                if history:
                    self._deliver(name, run_dir, [], None)
                return delivered
            tail.problem = ""
            if history:
                self._deliver(name, run_dir, [], None)
                done = tail.offset - tail.decoder.pending
                clean = clean and not tail.decoder.skipping
                if done - cached_to < colcache.MIN_FILE_BYTES:
                    if builder is not None:
                        builder.close()
                elif builder is not None:
                    builder.finish(done, clean)
                else:
                    colcache.save(run_dir, kept, done, clean)
        return delivered

    def _deliver(self, name: str, run_dir: Path, pieces: list[Piece], loading: float | None) -> int:
        """Hand pieces on (empty ones too: they carry `loading`); returns how many records."""
        count = sum(len(p) for p in pieces)
        try:
            self.on_batch(name, run_dir, pieces, loading)
        except Exception as e:  # noqa: BLE001
            self._warn(name, f"the dashboard failed to handle records: {e!r}")
        return count

    def _event(self, path_text: str) -> None:
        """A file event anywhere under the root: find its run and see what is new there."""
        try:
            rel = Path(path_text).resolve().relative_to(self.root)
        except (ValueError, OSError):
            return
        if len(rel.parts) == 1:
            self._folder_made(self.root / rel.parts[0])
            return
        if len(rel.parts) != 2 or rel.parts[1] not in RUN_FILES:
            return  # checkpoints, temp files: the records say what happened to them
        run_dir = self.root / rel.parts[0]
        self._discover(run_dir)
        self._check_ready(run_dir)
        if rel.parts[1] == METRICS_FILE and not self._is_piped(run_dir.name):
            self.read(run_dir)

    def _folder_made(self, folder: Path) -> None:
        """A folder appeared in the root (a run started from a terminal makes its own): watch it now,
        so its first files raise events instead of waiting for the poll, then look at what it
        already holds (files made before the watch existed raised none)."""
        with self._lock:
            known = folder.name in self._known
        if known or not folder.is_dir():
            return
        self._watch(folder)
        if _is_run(folder):
            self._discover(folder)
            self._check_ready(folder)
            if not self._is_piped(folder.name):
                self.read(folder)

    def _is_piped(self, name: str) -> bool:
        return self.piped is not None and self.piped(name)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                dirs = [d for d in self.root.iterdir() if d.is_dir()]
            except OSError:
                continue
            for d in dirs:
                if d.name in self._known or _is_run(d):
                    self._discover(d)
                    self._check_ready(d)
                    self.read(d)


def _is_run(d: Path) -> bool:
    return any((d / f).exists() for f in RUN_FILES)


class _Handler(FileSystemEventHandler):
    """watchdog callbacks (observer thread) -> RunsWatcher._event."""

    def __init__(self, watcher: RunsWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "deleted"):
            return
        for p in (event.src_path, getattr(event, "dest_path", "")):
            if p:
                self.watcher._event(p if isinstance(p, str) else p.decode(errors="replace"))
