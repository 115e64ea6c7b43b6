"""The control socket of a reported run: a server thread answers at once, the loop acts between steps.

The engine reads its socket between steps; a loop Nexus did not write may take minutes per step, and
the dashboard waits only seconds for an answer. So a thread owns the protocol's CommandServer, checks
each command (is there a handler for it?), answers, and queues it in `inbox`; the loop's
`step_end()` looks at the inbox (one truthiness test when it is empty) and does the work. `resume`
and `ramp` need no step boundary: resume wakes a paused loop, ramp is handed to the LR hooks.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_core import protocol as P
from nexus_core.commands import HANDLER_LINES

POLL_S = 0.2


class ControlThread:
    """Serves `run_dir`'s control socket until `close()`.

    `supported()` names the commands this run can carry out now; `immediate(cmd)` handles a command
    on this thread and returns the reply's extra fields (ramp), or None to queue it for the loop."""

    def __init__(
        self,
        run_dir: Path,
        supported: Callable[[], frozenset[str]],
        immediate: Callable[[dict[str, Any]], dict[str, Any] | None],
        step: Callable[[], int],
        lacking: dict[str, str] | None = None,
    ) -> None:
        self.server = P.CommandServer(run_dir)
        self.inbox: deque[dict[str, Any]] = deque()
        self.arrived = threading.Event()
        """Set whenever a command is queued: a paused loop waits on it."""
        self._supported = supported
        self._immediate = immediate
        self._step = step
        self._lacking = lacking if lacking is not None else {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="nexus-control", daemon=True)
        self._thread.start()

    @property
    def socket_path(self) -> str:
        return str(self.server.path)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                waiting = self.server.poll(POLL_S)
            except (OSError, ValueError):  # the socket was closed under us: we are finishing
                return
            for cmd, conn in waiting:
                self._answer(cmd, conn)

    def _answer(self, cmd: dict[str, Any], conn: Any) -> None:
        name = cmd["cmd"]
        supported = self._supported()
        if name not in supported:
            P.reply(conn, ok=False, error=why_not(name, self._lacking.get(name, "")))
            return
        # Its arguments were checked against the one limits table (schema.COMMAND_ARGS) as it was read.
        try:
            extra = self._immediate(cmd)
        except Exception as e:  # noqa: BLE001 - a bad command must not kill the run
            P.reply(conn, ok=False, error=f"{name} failed: {type(e).__name__}: {e}")
            return
        if extra is not None:
            P.reply(conn, ok=True, step=self._step(), **extra)
            return
        self.inbox.append(cmd)
        self.arrived.set()
        P.reply(conn, ok=True, step=self._step(), queued=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2 * POLL_S + 1.0)
        with contextlib.suppress(OSError):
            self.server.close()


def why_not(name: str, why: str = "") -> str:
    """The refusal a run without a handler for `name` sends: what would make it work (an adapter's
    `why`), else what its script would need to add."""
    if why:
        return f"this run cannot {name}: {why}"
    if name in HANDLER_LINES:
        first = HANDLER_LINES[name].splitlines()[0]
        return f"this run has no {name} handler: its script would add {first} (README, 'Bring your own loop')"
    return f"this run does not take {name!r}"


def warn(text: str) -> None:
    print(f"nexus: {text}", file=sys.stderr, flush=True)
