"""The reporter's writer thread: the only code that touches the run folder's files after init.

The training thread only appends plain dicts to a deque (a few hundred nanoseconds, no lock, no
syscall). This thread wakes every FLUSH_S, or at once while CHUNK or more wait, and files the queue
in chunks: every tensor value of a chunk read in one go (`values.resolve`), the records shaped
(`shaping.py`) and filed with one append through the protocol's one RecordWriter (`filing.py`: a
full disk holds them in memory, in order, until there is room), then the status file. It files a few
hundred thousand steps a second, so a tight loop of log() calls loses nothing: when the queue is
full anyway, log() waits for the writer to catch up (`Writer.put`, backpressure); only a writer
that makes no progress for BACKPRESSURE_S costs records, counted and turned into an alert. A value
msgpack cannot hold costs that key only (`shaping.repair`), and no record can stop the thread.

It is the engine's writer too (`engine/report.py` queues the engine's records here), so a run of the
engine and a reported run are written by the same code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from nexus import values as V
from nexus.filing import Filing, write_status
from nexus.richlog import LATER, later_records
from nexus.shaping import step_records, toml_safe
from nexus_core import protocol as P
from nexus_core.safefile import atomic_write
from nexus_core.units import as_int, as_num, is_new_best

FLUSH_S = 0.1
STATUS_EVERY_S = 1.0
CAPACITY = 100_000
"""Records waiting for the writer before log() waits for it (well under a second of filing)."""
CHUNK = 4096
"""Queue items filed per pass: enough for one append to carry many records, few enough that a
state record or a sync is not held behind a long backlog's work."""
BACKPRESSURE_S = 5.0
"""How long log() waits, at most, for a writer that makes no progress before it drops a record."""
SYNC = "_sync"
"""A queue marker, not a record: `sync()` waits until the writer has filed everything before it."""
DROP_ALERT_EVERY_S = 10.0
SUMMARY_FILE = "summary.json"
STEP = "_step"
"""A queue item (never a record): one committed step's raw values, which the writer routes into a
metric and/or an eval record (shaping.step_records), so the training thread does not."""
_OWN_FIELDS = ("type", "seq", "time", "step", "best")
"""Record fields that are not a logged value (never in `last_values`)."""
_PLAIN = frozenset({float, int, str, bool, type(None)})
"""Value types a record holds as they are: anything else may be a tensor to read."""


class Writer:
    """Owns metrics.msgpack, status, config.toml and summary.json of one run.

    `describe` is read on every flush: a (version, hello fields) pair the Run replaces whenever what
    the hello says changes (config, commands, device). A new version is filed as a fresh hello plus a
    state record, so readers see the change without mistaking it for a new run. None: the caller
    files its own hello and config.toml (the engine).

    `disk_error` and `blocked` (filing.py) tell the training thread that records wait for room."""

    def __init__(
        self,
        run_dir: Path,
        status: dict[str, Any],
        pipe_fd: int | None = None,
        capacity: int = CAPACITY,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.run_dir = run_dir
        self.filing = Filing(run_dir / P.METRICS_FILE, pipe_fd)
        self.capacity = capacity
        self.flush_s = flush_s
        self.queue: deque[dict[str, Any]] = deque()
        self.dropped = 0
        """Records log() could not queue (the queue was full); written only by the training thread."""
        self.describe: tuple[int, dict[str, Any]] | None = (0, {})
        self.status = {"pid": os.getpid(), "state": P.STARTING, **status}
        self.last_values: dict[str, float] = {}
        self.best_val_loss: float | None = None
        self._hello_version = -1
        self._said_dropped = 0
        self._dropped_alert_at = -math.inf
        self._status_at = -math.inf
        self._status_error = False
        self._tokens: Any = None
        self._prev: tuple[float, int, float | None] | None = None
        """(time, step, tokens) of the last metric record, for step_s and tok_s."""
        self._wake = threading.Event()
        self._room = threading.Event()
        """Set by the writer after each pass: a log() waiting for room looks again."""
        self._stuck = False
        """log() gave up waiting for this writer: later full-queue records drop at once until it moves."""
        self._warned_keys: set[str] = set()
        self._closing = False
        self._summary: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._loop, name="nexus-writer", daemon=True)
        self._write_status()

    def start(self) -> None:
        self._thread.start()

    # -- the training thread's side --------------------------------------------------------------

    def put(self, record: dict[str, Any], keep: bool = False) -> bool:
        """Queue a record. A full queue waits for the writer to file half of it (backpressure: a loop
        logging faster than the disk takes it slows down instead of losing steps); only a writer that
        is not running, or made no progress for BACKPRESSURE_S, costs the record: False, counted in
        `dropped`. `keep` (the engine's records, one a step): queued at once, never waited on nor dropped
        (a full disk holds them in memory)."""
        queue = self.queue
        if not keep and len(queue) >= self.capacity and not self._wait_for_room():
            self.dropped += 1
            return False
        queue.append(record)
        return True

    def _wait_for_room(self) -> bool:
        """Wait until the queue is half empty; False when the writer is gone or stuck."""
        if self._stuck or not self._thread.is_alive():
            return False
        low = self.capacity // 2
        last, waited_since = len(self.queue), time.monotonic()
        while len(self.queue) > low:
            self._room.clear()
            self._wake.set()
            self._room.wait(0.05)
            now = len(self.queue)
            if now < last:
                last, waited_since = now, time.monotonic()
            elif time.monotonic() - waited_since > BACKPRESSURE_S or not self._thread.is_alive():
                self._stuck = True  # not again until it moves (the writer clears this)
                return False
        return True

    def sync(self, timeout: float = 30.0) -> bool:
        """Wait until every record queued before this call is filed (or held in memory for room on a
        full disk): a checkpoint must not reach the disk ahead of the records of the steps it covers,
        or a SIGKILL right after it leaves a gap in the curve that no resume fills. False when the
        writer thread is not running or did not get there within `timeout` s."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self.queue.append({"type": SYNC, "done": done})
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0, summary: dict[str, Any] | None = None) -> bool:
        """Write everything queued, then the summary, and close the files. False when the disk did
        not take it all within `timeout` s (the records left are lost; the process may exit)."""
        self._closing = True
        self._summary = summary
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif self._thread.ident is None:  # never started (init failed half way): flush here
            self._loop()
        done = not self._thread.is_alive()
        if done:
            self.filing.close()
        return done

    @property
    def disk_error(self) -> str | None:
        """Why records could not be filed (None: they could, or a person cleared it)."""
        return self.filing.disk_error

    def clear_disk_error(self) -> None:
        self.filing.disk_error = None

    @property
    def blocked(self) -> bool:
        """Records wait in memory for room on the disk."""
        return self.filing.blocked

    @property
    def lost(self) -> int:
        """Held records given up (the backlog's bound): they reached the pipe, if any, not the file."""
        return self.filing.lost

    # -- the writer thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            if len(self.queue) < CHUNK:
                self._wake.wait(self.flush_s)
                self._wake.clear()
            closing = self._closing
            try:
                self._flush()
            except Exception as e:  # noqa: BLE001 - the reporter must never take the training down
                print(
                    f"nexus: the reporter's writer failed: {type(e).__name__}: {e}",
                    file=sys.stderr,
                    flush=True,
                )
            self._stuck = False
            self._room.set()
            if closing and not self.queue:
                break
        self._write_summary()
        self._write_status()

    def _flush(self) -> None:
        """File one chunk of the queue. A record that cannot be noted costs only itself."""
        queue = self.queue
        items = [queue.popleft() for _ in range(min(len(queue), CHUNK))]
        self._resolve(items)
        batch: list[dict[str, Any]] = []
        synced: list[threading.Event] = []
        for item in items:
            kind = item["type"]
            if kind == STEP:
                try:
                    batch.extend(step_records(item))
                except Exception as e:  # noqa: BLE001 - one odd step, not the rest of the chunk
                    self._warn(f"step {item.get('step')}: not recorded ({type(e).__name__}: {e})")
            elif kind == SYNC:
                synced.append(item["done"])  # set once the records before it are filed, below
            elif LATER in item:  # a logged tensor's histogram, taken here, off the training thread
                batch.extend(later_records(item))
            else:
                batch.append(item)
        self.filing.probe()  # records held for a full disk go first, once there is room
        self._maybe_hello()
        start = 0
        for i, rec in enumerate(batch):
            kind = rec["type"]
            try:
                if kind == P.METRIC:
                    self._note_metric(rec)
                elif kind == P.EVAL:
                    self._note_eval(rec)
                elif kind == P.STATE:
                    self._file_many(batch[start:i])
                    start = i
                    self._note_state(rec)
                    self._write_status()  # first: a reader that saw the record (pipe or file) finds it there too
            except Exception as e:  # noqa: BLE001 - a record the notes choke on is still filed
                self._warn(f"a {kind} record: {type(e).__name__}: {e}")
        self._file_many(batch[start:])
        self._remember(batch)
        for done in synced:
            done.set()
        self._alert_drops()
        if time.monotonic() - self._status_at >= STATUS_EVERY_S:
            self._write_status()  # also keeps `updated` fresh while the loop is paused: it is alive

    def _file_many(self, records: list[dict[str, Any]]) -> None:
        for step, text in self.filing.file_many(records):
            self._warn(text, f"step {step}: " if step is not None else "")

    def _warn(self, text: str, where: str = "") -> None:
        """One warning per distinct text (the first `where` it happened, in front), on stderr and
        as a log record (the dashboard's log)."""
        if text in self._warned_keys or len(self._warned_keys) > 1000:
            return
        self._warned_keys.add(text)
        text = where + text
        print(f"nexus: {text}", file=sys.stderr, flush=True)
        self._file({"type": P.LOG, "level": "warning", "text": text, "time": time.time()})

    def _resolve(self, items: list[dict[str, Any]]) -> None:
        """Replace every tensor in the chunk by its value, one device read per chunk."""
        where: list[tuple[dict[str, Any], str]] = []
        found: list[Any] = []
        plain = _PLAIN.issuperset
        for item in items:
            kind = item["type"]
            values = item["values"] if kind == STEP else item if kind in (P.METRIC, P.EVAL) else None
            if values is None or plain(map(type, values.values())):
                continue
            for key, value in values.items():
                if V.is_tensor(value):
                    where.append((values, key))
                    found.append(value)
        if not found:
            return
        try:
            got = V.resolve(found)
        except Exception as e:  # noqa: BLE001 - a tensor that cannot be read is a lost value, not a dead run
            got = [math.nan] * len(found)
            print(
                f"nexus: could not read logged tensors: {type(e).__name__}: {e}", file=sys.stderr, flush=True
            )
        for (values, key), value in zip(where, got, strict=True):
            values[key] = value

    def _note_metric(self, rec: dict[str, Any]) -> None:
        """Status fields from a metric record, and the speed a script did not log itself: `step_s`
        and (when it logs `tokens`) `tok_s` from the records' own times, as the engine reports them."""
        at, step = rec["time"], rec["step"]
        tokens = rec.get("tokens")
        if tokens is not None:
            tokens = as_num(tokens)
            self._tokens = rec["tokens"]
            self.status["tokens"] = self._tokens
        prev = self._prev
        if prev is not None:
            t0, s0, k0 = prev
            if step > s0 and at > t0:
                if "step_s" not in rec:
                    rec["step_s"] = (at - t0) / (step - s0)
                if tokens is not None and k0 is not None and tokens > k0 and "tok_s" not in rec:
                    rec["tok_s"] = (tokens - k0) / (at - t0)
        self._prev = (at, step, tokens)
        self.status["step"] = step

    def _note_state(self, rec: dict[str, Any]) -> None:
        """The status says what the last state record says: state, step, why (a failed run's
        exception, a killed run's signal) and, at the end, the exit code."""
        self.status.update(
            state=rec["state"],
            step=rec.get("step", self.status.get("step", 0)),
            reason=str(rec.get("reason", ""))[:500],
        )
        if "exit_code" in rec:
            self.status["exit_code"] = rec["exit_code"]
        total = rec.get("total_steps")
        if (as_int(total) or 0) > 0:
            self.status["total_steps"] = total  # a ramp moved the end of the run
        self._prev = None  # a pause is not a slow step

    def _note_eval(self, rec: dict[str, Any]) -> None:
        if "tokens" not in rec and self._tokens is not None:
            rec["tokens"] = self._tokens
        val = as_num(rec.get("val_loss"))
        if "best" in rec:  # the engine judges best itself (it knows the best before a resume)
            if rec["best"] and val is not None:
                self.best_val_loss = val
                self.status["best_val_loss"] = val
        elif val is not None:
            best = is_new_best(val, self.best_val_loss)
            rec["best"] = best
            if best:
                self.best_val_loss = val
                self.status["best_val_loss"] = val

    def _remember(self, batch: list[dict[str, Any]]) -> None:
        """`last_values` from a filed batch's metric and eval records: each key's last value, read
        from the newest record back, so a chunk of records of one shape costs one set test each."""
        last, seen = self.last_values, set(_OWN_FIELDS)
        for rec in reversed(batch):
            if rec["type"] not in (P.METRIC, P.EVAL) or seen.issuperset(rec.keys()):
                continue
            for key, value in rec.items():
                if key not in seen:
                    seen.add(key)
                    if type(value) is float or type(value) is int:
                        last[key] = value

    def _maybe_hello(self) -> None:
        if self.describe is None:  # the caller files its own hello
            return
        version, fields = self.describe
        if version == self._hello_version:
            return
        self._hello_version = version
        config = fields.get("config") or {}
        self._write_config(config)
        for key in ("total_steps", "device", "model", "commands", "run"):
            if key in fields:
                self.status[key] = fields[key]
        self._file({"type": P.HELLO, "protocol": P.PROTOCOL_VERSION, **fields, "time": time.time()})
        if self.status["state"] != P.STARTING:  # a re-hello: say the state again (hello means "starting")
            self._file(
                {
                    "type": P.STATE,
                    "state": self.status["state"],
                    "step": self.status.get("step", 0),
                    "reason": "run description updated",
                    "time": time.time(),
                }
            )
        self._write_status()

    def _file(self, rec: dict[str, Any]) -> None:
        self._file_many([rec])

    def _alert_drops(self) -> None:
        dropped = self.dropped
        now = time.monotonic()
        if dropped > self._said_dropped and now - self._dropped_alert_at >= DROP_ALERT_EVERY_S:
            self._file(
                {
                    "type": P.ALERT,
                    "kind": "dropped",
                    "step": self.status.get("step", 0),
                    "time": time.time(),
                    "text": f"{dropped - self._said_dropped} logged steps dropped ({dropped} in all): the "
                    "reporter's queue was full and its writer thread was not running or made no progress "
                    f"for {BACKPRESSURE_S:g} s",
                }
            )
            self._said_dropped, self._dropped_alert_at = dropped, now

    # -- files beside the records ----------------------------------------------------------------

    def _write_status(self) -> None:
        self._status_at = time.monotonic()
        error = write_status(self.run_dir, self.status)
        if error and not self._status_error:  # said once, not every second of a full disk
            print(f"nexus: {error}", file=sys.stderr, flush=True)
        self._status_error = error is not None

    def _write_config(self, config: dict[str, Any]) -> None:
        try:
            import tomli_w
        except ImportError:  # a project dependency, but a script's bare environment may lack it
            return
        try:
            atomic_write(self.run_dir / P.CONFIG_FILE, tomli_w.dumps(toml_safe(config)), within=self.run_dir)
        except (OSError, TypeError, ValueError) as e:
            print(f"nexus: cannot write {P.CONFIG_FILE}: {e}", file=sys.stderr, flush=True)

    def _write_summary(self) -> None:
        summary = self._summary
        if summary is None:
            return
        with contextlib.suppress(OSError, TypeError, ValueError):
            text = json.dumps(summary, indent=1, sort_keys=True, default=str)
            atomic_write(self.run_dir / SUMMARY_FILE, text, within=self.run_dir)
