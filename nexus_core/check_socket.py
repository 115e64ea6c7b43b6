"""The live half of `nexus check` (nexus_core/check.py): a run's control socket against docs/PROTOCOL.md
section 5, over the raw socket as any client would speak it (one msgpack map each way).

An unknown command and each listed command with an out-of-range argument must be refused with an
`error`; a harmless command the hello does not list must be refused at once; pause then resume must be
answered and recorded (state `paused`, then `running`), so the run is left as it was. Checkpoint and
eval (`steer`) must bring their records; stop (`stop`) must end the run `stopped`.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from nexus_core.check_report import Report
from nexus_core.control import control_socket_path
from nexus_core.safefile import open_regular
from nexus_core.schema import METRICS_FILE

MAX_BYTES = 1 << 32

HARMLESS = frozenset({"checkpoint", "eval", "generate"})
"""Commands sent unlisted, to see them refused: harmless even where a run wrongly takes them."""
_BAD_ARGS: dict[str, dict[str, Any]] = {
    "ramp": {"target_lr": -1.0, "ramp_steps": 1},
    "generate": {"tokens": 0},
}
"""A listed command with an argument out of its range: the run must refuse it."""


def kind_of(value: Any) -> str:
    """The spec's name for a decoded value's type."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def socket_exists(run_dir: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(control_socket_path(run_dir)).st_mode)
    except OSError:
        return False


def exchange(
    run_dir: Path, request: dict[str, Any], timeout: float = 5.0
) -> tuple[dict[str, Any] | None, str]:
    """One command over the raw socket: (the final reply map, "") or (None, what went wrong)."""
    path = control_socket_path(run_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(msgpack.packb({**request, "deadline": time.time() + timeout}, use_bin_type=True))
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 20)
        deadline = time.monotonic() + timeout + 120.0
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return None, "closed the connection without a reply"
            unpacker.feed(data)
            for answer in unpacker:
                if not isinstance(answer, dict):
                    return None, f"replied with a {kind_of(answer)}, not a map"
                if "taken" in answer and "ok" not in answer:
                    continue
                return answer, ""
        return None, "sent no final reply"
    except TimeoutError:
        return None, f"did not answer within {timeout:g}s (answer at once; do slow work afterwards)"
    except (OSError, ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        return None, f"{type(e).__name__}: {str(e)[:100]}"
    finally:
        sock.close()


def _reply_shape(report: Report, cmd: str, reply: dict[str, Any]) -> bool:
    if not isinstance(reply.get("ok"), bool):
        report.error("reply", f"socket: the reply to {cmd} has no boolean 'ok'")
        return False
    if not reply["ok"] and not (isinstance(reply.get("error"), str) and reply["error"].strip()):
        report.error("reply", f"socket: a refusal of {cmd} must say why in a one-line 'error'")
        return False
    return True


def check_socket(report: Report, commands: frozenset[str], steer: bool, stop: bool, wait_s: float) -> None:
    run_dir = report.run_dir
    if not socket_exists(run_dir):
        if commands:
            report.warn(
                "socket",
                f"the run is live and lists commands but serves no control socket at "
                f"{control_socket_path(run_dir)}",
            )
        return

    def ask(cmd: str, **args: Any) -> dict[str, Any] | None:
        reply, why = exchange(run_dir, {"cmd": cmd, **args})
        if reply is None:
            report.error("socket", f"socket: {cmd}: {why}")
            return None
        return reply if _reply_shape(report, cmd, reply) else None

    got = ask("nexus-check-no-such-command")
    if got is not None and got["ok"]:
        report.error("socket-unknown", "socket: an unknown command was answered ok; refuse it with an error")
    for cmd in sorted(HARMLESS - commands):  # not listed: refused at once, with a reason
        got = ask(cmd)
        if got is not None and got["ok"]:
            report.error(
                "socket-unlisted", f"socket: {cmd} is not in the hello's commands but was answered ok"
            )
    for cmd, args in _BAD_ARGS.items():
        if cmd in commands:
            got = ask(cmd, **args)
            if got is not None and got["ok"]:
                report.error(
                    "socket-args", f"socket: {cmd} with {args} (out of range) was answered ok; refuse it"
                )
    seen = _Records(run_dir)
    paused = (
        {"pause", "resume"} <= commands
        and (got := ask("pause")) is not None
        and _expect(report, "pause", got, seen, lambda r: r.get("state") == "paused", wait_s)
    )
    if paused and (got := ask("resume")) is not None:
        _expect(report, "resume", got, seen, lambda r: r.get("state") == "running", wait_s)
    if steer:
        for cmd, kind in (("checkpoint", "ckpt"), ("eval", "eval")):
            if cmd in commands and (got := ask(cmd)) is not None:
                _expect(report, cmd, got, seen, _of_type(kind), wait_s)
    if stop and "stop" in commands and (got := ask("stop")) is not None:
        _expect(report, "stop", got, seen, lambda r: r.get("state") == "stopped", wait_s * 4)
    report.checked.append("control socket")


class _Records:
    """The records filed after a point (for what a command must bring)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def new(self) -> list[dict[str, Any]]:
        try:
            with open_regular(self.path, MAX_BYTES) as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_BYTES)
        unpacker.feed(data)
        out = []
        try:
            for rec in unpacker:
                if isinstance(rec, dict):
                    out.append(rec)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            pass
        return out


def _expect(
    report: Report,
    cmd: str,
    reply: dict[str, Any],
    seen: _Records,
    pred: Callable[[dict[str, Any]], bool],
    wait_s: float,
) -> bool:
    """A listed command answered ok must bring its record within `wait_s`."""
    if not reply["ok"]:
        report.error(
            "socket-listed",
            f"socket: {cmd} is in the hello's commands but was refused: {str(reply.get('error'))[:120]}",
        )
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if any(pred(r) for r in seen.new()):
            seen.offset = seen._size()
            return True
        time.sleep(0.05)
    report.error("socket-effect", f"socket: {cmd} was answered ok but brought no record within {wait_s:g}s")
    return False


def _of_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    """A test for records of this type."""
    return lambda r: r.get("type") == kind
