"""The control channel: an owner-only unix socket per run, one command and one reply per connection."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from nexus_core.schema import _UNPACK_LIMITS, COMMANDS, CONTROL_SOCKET, GENERATE, RAMP

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
