"""The records and commands both halves of Nexus speak. Torch-free and textual-free on purpose:
the dashboard imports this module and nothing else from `engine`.

Records (engine -> app) are msgpack maps with a "type" key, written by one `RecordWriter` to the
run's append-only metrics.msgpack and, when the engine was given a pipe, to that pipe too. Readers
use one `RecordDecoder`, which yields every whole record, skips garbage with a warning and keeps a
torn tail for later (a stream) or reports it (a file).

Record keys (every record also has "type", "seq" (its index in metrics.msgpack) and "time" (unix s)):
  hello   run, protocol, config (the resolved config dict), pid, device, params, total_steps,
          start_step, model (family), resumed_from (checkpoint path or None)
  metric  step, tokens, loss, ce, lr, gnorm, tok_s, step_s, mem (bytes: CUDA max allocated or RSS)
  eval    step, tokens, val_loss, val_ppl, best (bool: this is the best val loss so far)
  sample  step, prompt, text, requested (bool: asked for with the `generate` command)
  ckpt    step, path (relative to the run folder), best (bool), val_loss (or None)
  state   state (one of STATES), step, reason (text), exit_code (on finished/crashed/stopped)
  log     level (info|warning|error), text
  alert   kind (nan|spike|gnorm|oom|disk|crash), step, text

Commands (app -> engine) are msgpack maps with a "cmd" key sent over the run's control socket
(owner-only unix socket); the engine answers each with {"ok": bool, "error": str}:
  pause · resume · checkpoint · eval · stop (checkpoint, then exit)
  generate  prompt, tokens, temperature, top_k (the text arrives as a `sample` record)
  ramp      target_lr, ramp_steps, total_steps (optional): LR goes linearly from where it is to the
            target over ramp_steps, then follows the schedule stretched to total_steps
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import select
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
MAX_RECORD_BYTES = 1 << 20
"""A record larger than this is garbage, not data (the longest real one is a sample's text)."""

# Record types.
HELLO, METRIC, EVAL, SAMPLE, CKPT, STATE, LOG, ALERT = (
    "hello", "metric", "eval", "sample", "ckpt", "state", "log", "alert",
)
RECORD_TYPES = frozenset({HELLO, METRIC, EVAL, SAMPLE, CKPT, STATE, LOG, ALERT})

# Run states.
STARTING, RUNNING, PAUSED, CHECKPOINTING, FINISHED, CRASHED, STOPPED = (
    "starting", "running", "paused", "checkpointing", "finished", "crashed", "stopped",
)
STATES = (STARTING, RUNNING, PAUSED, CHECKPOINTING, FINISHED, CRASHED, STOPPED)
LIVE_STATES = frozenset({STARTING, RUNNING, PAUSED, CHECKPOINTING})

# Commands.
PAUSE, RESUME, CHECKPOINT, EVAL_NOW, STOP, GENERATE, RAMP = (
    "pause", "resume", "checkpoint", "eval", "stop", "generate", "ramp",
)
COMMANDS = frozenset({PAUSE, RESUME, CHECKPOINT, EVAL_NOW, STOP, GENERATE, RAMP})

# The run folder.
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.msgpack"
LOG_FILE = "engine.log"
STATUS_FILE = "status"
CONTROL_SOCKET = "control.sock"
CHECKPOINTS_DIR = "checkpoints"

_UNPACK_LIMITS = dict(
    max_str_len=MAX_RECORD_BYTES,
    max_bin_len=MAX_RECORD_BYTES,
    max_array_len=1 << 16,
    max_map_len=1 << 12,
    max_ext_len=0,
)


_TYPE_KEY = b"\xa4type"


def pack(record: dict[str, Any]) -> bytes:
    """One record as msgpack bytes, "type" first so a reader can find the next record after garbage."""
    return msgpack.packb({"type": record["type"], **record}, use_bin_type=True)


@dataclass
class DecodeWarning:
    """Something a reader skipped: garbage bytes, an unknown type, a newer protocol."""

    text: str
    skipped_bytes: int = 0


@dataclass
class RecordDecoder:
    """Incremental, garbage-tolerant decoder for a record stream (a pipe or a file being tailed).

    `feed(bytes)` returns the whole records decoded so far. Bytes that are not a record are skipped
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

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._pending += data
        if self._unpacker is None:
            self._fresh()
        elif data:
            self._unpacker.feed(data)
        while self._pending:
            try:
                obj = self._unpacker.unpack()
            except msgpack.OutOfData:
                if len(self._pending) <= 2 * MAX_RECORD_BYTES and not self._whole_record_after_head():
                    break
                self._resync()  # a head that never ends, or one that a later whole record proves garbage
                continue
            except Exception:  # noqa: BLE001 - any decode failure means garbage here
                self._resync()
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                self._resync()  # garbage that happened to decode as msgpack
                continue
            end = self._unpacker.tell()
            del self._pending[: end - self._base]
            self._base = end
            self._flush_garbage()
            if self._accept(obj, end):
                out.append(obj)
        return out

    def _accept(self, obj: dict[str, Any], size: int) -> bool:
        if obj["type"] not in RECORD_TYPES:
            self.warnings.append(DecodeWarning(f"skipped a record of unknown type {obj['type']!r}"))
            return False
        if obj["type"] == HELLO:
            version = obj.get("protocol")
            if isinstance(version, int) and version > PROTOCOL_VERSION and not self._newer_warned:
                self._newer_warned = True
                self.warnings.append(DecodeWarning(
                    f"stream speaks protocol {version}, this Nexus speaks {PROTOCOL_VERSION}: "
                    "unknown fields are ignored; upgrade Nexus to see them"
                ))
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
                obj = probe.unpack()
            except Exception:  # noqa: BLE001 - not a record there
                continue
            if isinstance(obj, dict) and isinstance(obj.get("type"), str):
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

    records: list[dict[str, Any]]
    torn_bytes: int
    warnings: list[DecodeWarning]
    size: int


def read_records(path: str | Path, offset: int = 0) -> ReadResult:
    """Read a metrics file from `offset`. A file cut mid-record yields every whole record before it."""
    decoder = RecordDecoder()
    records: list[dict[str, Any]] = []
    size = offset
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
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
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the writer
        self._pipe = pipe_fd
        self.pipe_dropped = 0
        if pipe_fd is not None:
            os.set_blocking(pipe_fd, False)

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {**record, "seq": self.seq, "time": time.time()}
        data = pack(record)
        self._file.write(data)  # OSError (disk full, read-only) reaches the caller: that is an alert
        self.seq += 1
        self._to_pipe(data)
        return record

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
                    view = view[os.write(self._pipe, view):]
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


def iter_records(path: str | Path, types: frozenset[str] | None = None) -> Iterator[dict[str, Any]]:
    """Whole records of a file, optionally only some types."""
    for r in read_records(path).records:
        if types is None or r["type"] in types:
            yield r


# -- status file ---------------------------------------------------------------------------------


def write_status(run_dir: str | Path, status: dict[str, Any]) -> None:
    """Atomically replace runs/NAME/status (JSON) so readers never see half a file."""
    run_dir = Path(run_dir)
    fd, tmp = tempfile.mkstemp(prefix=".status.", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({**status, "updated": time.time()}, f, indent=1, sort_keys=True)
        os.replace(tmp, run_dir / STATUS_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's status, or None if it has none or it cannot be read."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


# -- control socket ------------------------------------------------------------------------------

_SUN_PATH_MAX = 100


def control_socket_path(run_dir: str | Path) -> Path:
    """Where a run's control socket lives: in the run folder, or (if that path is too long for a unix
    socket) in an owner-only folder under the temp dir, named by a hash of the run folder."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / CONTROL_SOCKET
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    digest = hashlib.sha1(os.fsencode(run_dir)).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"nexus-{os.getuid()}" / f"{digest}.sock"


class CommandServer:
    """The engine's end of the control channel: a non-blocking, owner-only unix socket.

    `poll(timeout)` accepts waiting clients and returns their commands; the engine acts on them
    between steps. Each connection carries one command and gets one reply.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = control_socket_path(run_dir)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._sock.listen(8)
        self._sock.setblocking(False)

    def poll(self, timeout: float = 0.0) -> list[tuple[dict[str, Any], socket.socket]]:
        """Commands waiting now (or within `timeout` s). Answer each with `reply(conn, ...)`."""
        out = []
        ready, _, _ = select.select([self._sock], [], [], timeout)
        while ready:
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                break
            cmd = self._read_command(conn)
            if cmd is not None:
                out.append((cmd, conn))
            ready, _, _ = select.select([self._sock], [], [], 0)
        return out

    def _read_command(self, conn: socket.socket) -> dict[str, Any] | None:
        conn.settimeout(1.0)
        try:
            if hasattr(socket, "SO_PEERCRED"):
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                _, uid, _ = struct.unpack("3i", creds)
                if uid != os.getuid():
                    reply(conn, ok=False, error="refused: not the run's owner")
                    return None
            unpacker = msgpack.Unpacker(raw=False, **_UNPACK_LIMITS)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                unpacker.feed(data)
                for obj in unpacker:
                    err = check_command(obj)
                    if err:
                        reply(conn, ok=False, error=err)
                        return None
                    return obj
        except (OSError, ValueError, msgpack.UnpackException) as e:
            reply(conn, ok=False, error=f"unreadable command: {e}")
            return None
        reply(conn, ok=False, error="empty command")
        return None

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def reply(conn: socket.socket, ok: bool = True, error: str = "", **extra: Any) -> None:
    """Answer a command and close the connection; a client that went away is ignored."""
    with contextlib.suppress(OSError):
        conn.sendall(msgpack.packb({"ok": ok, "error": error, **extra}, use_bin_type=True))
    with contextlib.suppress(OSError):
        conn.close()


def check_command(obj: Any) -> str:
    """'' for a well-formed command, else what is wrong with it."""
    if not isinstance(obj, dict) or not isinstance(obj.get("cmd"), str):
        return "a command must be a map with a 'cmd' key"
    cmd = obj["cmd"]
    if cmd not in COMMANDS:
        return f"unknown command {cmd!r}; known: {', '.join(sorted(COMMANDS))}"
    if cmd == RAMP:
        target, steps = obj.get("target_lr"), obj.get("ramp_steps")
        if not isinstance(target, (int, float)) or target <= 0:
            return "ramp needs target_lr > 0"
        if not isinstance(steps, int) or steps < 0:
            return "ramp needs ramp_steps >= 0"
        total = obj.get("total_steps")
        if total is not None and (not isinstance(total, int) or total < 1):
            return "ramp total_steps must be a positive integer"
    if cmd == GENERATE:
        if not isinstance(obj.get("prompt", ""), str):
            return "generate prompt must be text"
        tokens = obj.get("tokens", 100)
        if not isinstance(tokens, int) or not 1 <= tokens <= 4096:
            return "generate tokens must be between 1 and 4096"
    return ""


class ControlError(Exception):
    """The run did not take the command: not running, no socket, refused, or it said why."""


def send_command(run_dir: str | Path, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
    """Send one command to a run's engine and return its reply; raise ControlError if it fails."""
    path = control_socket_path(run_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"run {Path(run_dir).name} is not listening (not running?)") from None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise ControlError(f"run {Path(run_dir).name} is not listening (not running?)") from None
            raise ControlError(f"cannot reach run {Path(run_dir).name}: {e.strerror}") from None
        sock.sendall(msgpack.packb({"cmd": cmd, **args}, use_bin_type=True))
        unpacker = msgpack.Unpacker(raw=False, **_UNPACK_LIMITS)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise ControlError(f"run {Path(run_dir).name} did not answer within {timeout:g}s") from None
            if not data:
                raise ControlError(f"run {Path(run_dir).name} closed the connection without answering")
            unpacker.feed(data)
            for answer in unpacker:
                if not isinstance(answer, dict):
                    raise ControlError("the engine sent a malformed reply")
                if not answer.get("ok"):
                    raise ControlError(str(answer.get("error") or "refused"))
                return answer
    finally:
        sock.close()
