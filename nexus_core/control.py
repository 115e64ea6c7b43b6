"""The control channel: an owner-only unix socket per run, one command and one reply per connection.

What the channel guarantees (docs/SECURITY.md says why each matters):
- Only the owner steers: the socket is 0600, the server refuses a peer of another uid and the client
  refuses to talk to a server of another uid (SO_PEERCRED on both ends); the $TMPDIR fallback
  folder is used only if it is a real folder of ours with mode 0700.
- A client never blocks a training step: connections are read without blocking, a bit per poll,
  and one that has not sent a whole command within `READ_DEADLINE_S` is answered and closed.
- A command is applied before its deadline or never: `send_command` sends an `id` and a `deadline`;
  the engine answers `taken` (or `expired`, not applied) the moment it reads it, so a client that
  gave up waiting can say truthfully that the command will not run later.
- Every argument is checked by type and range against one table (`schema.COMMAND_ARGS`) before ok.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import socket
import stat
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack

from nexus_core.schema import _UNPACK_LIMITS, COMMAND_ARGS, COMMAND_ENVELOPE, COMMANDS, CONTROL_SOCKET

_SUN_PATH_MAX = 100
READ_DEADLINE_S = 2.0
"""A connection must deliver its whole command within this long, however slowly it trickles."""
MAX_COMMAND_BYTES = 64 * 1024
"""A command is small (the longest is a prompt): more than this is not a command."""
MAX_PENDING = 32
"""Connections read at once; more are refused at once (select and the step stay cheap)."""
COMMAND_TIMEOUT_S = 5.0
"""How long a client waits, by default, for the engine to read its command (then it expires unapplied)."""
TAKEN_GRACE_S = 1.0
"""How long past its deadline a client still waits for `taken` (the engine decided before it)."""
WORK_TIMEOUT_S = 120.0
"""How long a client waits for the result of a command the engine took (a checkpoint, an eval)."""


def control_socket_path(run_dir: str | Path) -> Path:
    """Where a run's control socket lives: in the run folder, or (if that path is too long for a unix
    socket) in an owner-only folder under the temp dir, named by a hash of the run folder."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / CONTROL_SOCKET
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    digest = hashlib.sha1(os.fsencode(run_dir)).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"nexus-{os.getuid()}" / f"{digest}.sock"


def _own_private_folder(folder: Path) -> None:
    """Make `folder` (or check it is) a real folder owned by us with mode 0700; ControlError if it is
    another user's, a symlink, or not a folder: anyone who made it first could answer our commands."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ControlError(
            f"the control-socket folder {folder} is not a folder of yours (owner uid {st.st_uid}): "
            "someone else may have made it; remove it or set TMPDIR to a private folder"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)  # ours but open to others: close it before a socket goes in


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    uid: int = struct.unpack("3i", creds)[1]
    return uid


class _Pending:
    """A connection whose command has not fully arrived yet."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.unpacker = msgpack.Unpacker(raw=False, **_UNPACK_LIMITS)
        self.started = time.monotonic()
        self.size = 0


class CommandServer:
    """The engine's end of the control channel: a non-blocking, owner-only unix socket.

    `poll(timeout)` accepts waiting clients, reads whatever they have sent without ever blocking on
    one, and returns the commands that are whole; the engine acts on them between steps. Each
    connection carries one command and gets `taken`, then one reply.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = control_socket_path(run_dir)
        if self.path.parent != Path(run_dir).resolve():
            _own_private_folder(self.path.parent)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
        self._pending: dict[int, _Pending] = {}

    def poll(self, timeout: float = 0.0) -> list[tuple[dict[str, Any], socket.socket]]:
        """Commands whole now (or within `timeout` s). Answer each with `reply(conn, ...)`."""
        out: list[tuple[dict[str, Any], socket.socket]] = []
        end = time.monotonic() + timeout
        while True:
            waiting = [self._sock] + [p.conn for p in self._pending.values()]
            ready, _, _ = select.select(waiting, [], [], max(0.0, end - time.monotonic()))
            for s in ready:
                if s is self._sock:
                    self._accept()
                else:
                    got = self._read(self._pending[s.fileno()])
                    if got is not None:
                        out.append(got)
            self._expire_slow()
            if out or time.monotonic() >= end:  # one pass when timeout is 0: a step never waits on a client
                return out

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                uid = _peer_uid(conn)
            except OSError:
                uid = -1
            if uid is not None and uid != os.getuid():
                conn.settimeout(0.2)
                reply(conn, ok=False, error="refused: not the run's owner")
                continue
            if len(self._pending) >= MAX_PENDING:
                conn.settimeout(0.2)
                reply(conn, ok=False, error=f"busy: {MAX_PENDING} commands are already arriving")
                continue
            conn.setblocking(False)
            self._pending[conn.fileno()] = _Pending(conn)

    def _read(self, pending: _Pending) -> tuple[dict[str, Any], socket.socket] | None:
        conn = pending.conn
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self._drop(pending)
            return None
        if not data:
            self._finish(pending, "empty command")
            return None
        pending.size += len(data)
        if pending.size > MAX_COMMAND_BYTES:
            self._finish(pending, f"command longer than {MAX_COMMAND_BYTES} bytes")
            return None
        try:
            pending.unpacker.feed(data)
            obj = next(pending.unpacker, None)
        except (ValueError, msgpack.UnpackException) as e:
            self._finish(pending, f"unreadable command: {e}")
            return None
        if obj is None:
            return None  # not whole yet: more bytes next poll, the step goes on
        err = check_command(obj)
        if not err:
            deadline = obj.get("deadline")
            late = time.time() - deadline if deadline is not None else 0.0
            if late > 0:
                err = (
                    f"expired: {obj['cmd']} arrived {late:.1f}s after its deadline; not applied "
                    "(the run was busy or stopped)"
                )
        if err:
            self._finish(pending, err)
            return None
        del self._pending[conn.fileno()]
        cmd_id = obj.pop("id", None)
        obj.pop("deadline", None)
        conn.setblocking(True)
        conn.settimeout(1.0)  # replies are small; a client that does not read costs at most this
        with contextlib.suppress(OSError):
            conn.sendall(msgpack.packb({"taken": cmd_id or True}, use_bin_type=True))
        return obj, conn

    def _expire_slow(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if now - p.started > READ_DEADLINE_S]:
            self._finish(pending, f"command not received within {READ_DEADLINE_S:g}s")

    def _finish(self, pending: _Pending, error: str) -> None:
        self._drop(pending)
        with contextlib.suppress(OSError):
            pending.conn.settimeout(0.2)
        reply(pending.conn, ok=False, error=error)

    def _drop(self, pending: _Pending) -> None:
        self._pending.pop(pending.conn.fileno(), None)
        with contextlib.suppress(OSError):
            pending.conn.setblocking(True)

    def close(self) -> None:
        for pending in list(self._pending.values()):
            self._drop(pending)
            with contextlib.suppress(OSError):
                pending.conn.close()
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
    """'' for a well-formed command, else what is wrong with it: every argument by type and range
    (schema.COMMAND_ARGS), nothing unknown, nothing missing."""
    if not isinstance(obj, dict) or not isinstance(obj.get("cmd"), str):
        return "a command must be a map with a 'cmd' key"
    cmd = obj["cmd"]
    if cmd not in COMMANDS:
        return f"unknown command {cmd!r:.40}; known: {', '.join(sorted(COMMANDS))}"
    table = {**COMMAND_ARGS.get(cmd, {}), **COMMAND_ENVELOPE}
    for name, value in obj.items():
        if name == "cmd":
            continue
        arg = table.get(name) if isinstance(name, str) else None
        if arg is None:
            known = ", ".join(k for k in table if k not in COMMAND_ENVELOPE) or "none"
            return f"{cmd} takes no argument {name!r:.40} (it takes: {known})"
        if err := arg.error(cmd, name, value):
            return err
    missing = [k for k, a in table.items() if a.required and k not in obj]
    return f"{cmd} needs {', '.join(missing)}" if missing else ""


class ControlError(Exception):
    """The run did not take the command: not running, no socket, refused, or it said why."""


def send_command(
    run_dir: str | Path, cmd: str, timeout: float = COMMAND_TIMEOUT_S, **args: Any
) -> dict[str, Any]:
    """Send one command to a run's engine and return its reply; raise ControlError if it fails.

    The command carries a deadline `timeout` s from now: an engine that reads it later (stopped,
    wedged) answers `expired` and does not apply it, so a ControlError that says "not applied"
    is the truth. Once the engine has taken it, the result may take up to WORK_TIMEOUT_S (a checkpoint)."""
    path = control_socket_path(run_dir)
    name = Path(run_dir).name
    deadline = time.time() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"run {name} is not listening (not running?)") from None
        except TimeoutError:
            raise ControlError(f"run {name} did not accept the connection within {timeout:g}s") from None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise ControlError(f"run {name} is not listening (not running?)") from None
            raise ControlError(f"cannot reach run {name}: {e.strerror}") from None
        uid = _peer_uid(sock)
        if uid is not None and uid != os.getuid():
            raise ControlError(
                f"refused: the process answering at {path} is uid {uid}, not you; "
                "nothing was sent (someone else may have made that socket)"
            )
        sock.sendall(
            msgpack.packb(
                {"cmd": cmd, **args, "id": uuid.uuid4().hex, "deadline": deadline}, use_bin_type=True
            )
        )
        unpacker = msgpack.Unpacker(raw=False, **_UNPACK_LIMITS)
        taken = False
        while True:
            wait = (time.time() + WORK_TIMEOUT_S if taken else deadline + TAKEN_GRACE_S) - time.time()
            sock.settimeout(max(0.01, wait))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if taken:
                    raise ControlError(
                        f"run {name} took {cmd} but did not finish it within {WORK_TIMEOUT_S:g}s"
                    ) from None
                raise ControlError(
                    f"run {name} did not answer within {timeout:g}s (busy or stopped); "
                    f"{cmd} was not applied and will not be (it expired)"
                ) from None
            if not data:
                raise ControlError(f"run {name} closed the connection without answering")
            unpacker.feed(data)
            for answer in unpacker:
                if not isinstance(answer, dict):
                    raise ControlError("the engine sent a malformed reply")
                if "taken" in answer and "ok" not in answer:
                    taken = True
                    continue
                if not answer.get("ok"):
                    raise ControlError(str(answer.get("error") or "refused"))
                return answer
    finally:
        sock.close()
