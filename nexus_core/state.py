"""The one answer to "what is this run doing, at which step, with which best val": `RunState.apply`.

Every reader folds records through this reducer: the dashboard's store (RunView extends RunState),
`nexus runs`, `nexus compare` and the LR preview. Besides the engine's records it takes two events
the dashboard observes itself and the engine cannot write: `Launched` (a process was started for the
run) and `Exited` (its process ended, with the status it ended with).
"""

from __future__ import annotations

import math
import signal
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nexus_core.recordtypes import Eval, Hello, Metric, Record, State
from nexus_core.schema import (
    CRASHED,
    FAILED,
    FINISHED,
    KILLED,
    LIVE_STATES,
    PARK_REASON,
    PARKED,
    PAUSED,
    RUNNING,
    STALLED,
    STARTING,
    STOPPED,
)
from nexus_core.units import is_new_best

STALL_FLOOR_S = 30.0
"""A running run is stalled after at least this long without a record (an eval or a slow step is not)."""
STALL_FACTOR = 20.0
"""... and after this many times its usual gap between metric records, for runs with slow steps."""
_GAPS = 32


def derived_tok_s(last: Metric | None, rec: Metric) -> float | None:
    """The tokens/s between two metric records, for a writer that counts tokens but does not log their
    rate (a C or Rust loop): the one definition the run table and the tok_s chart both use."""
    if last is None or last.time is None or rec.time is None or not rec.time > last.time:
        return None
    if not rec.tokens > last.tokens > 0:
        return None
    return (rec.tokens - last.tokens) / (rec.time - last.time)


@dataclass(frozen=True)
class Launched:
    """The dashboard started a process for the run: it is starting until its hello says more."""

    pid: int | None = None
    time: float | None = None
    """When it was launched (unix s): how long it has been starting, before its hello says more."""


@dataclass(frozen=True)
class Exited:
    """The run's process ended. `exit_code` None: it vanished and nobody saw its status."""

    exit_code: int | None
    log_tail: str = ""
    """The last lines of engine.log: what a crash said."""


Event = Record | Launched | Exited


def decided_state(state: str, reason: str) -> str:
    """The state a written (state, reason) pair means: `parked` for a run a `park` command stopped
    (engines write `stopped`, so an older reader still reads it right), else the state itself. The
    reducer and the status file's readers both ask here."""
    return PARKED if state == STOPPED and reason == PARK_REASON else state


def last_line(log_tail: str, limit: int = 200) -> str:
    """The last non-blank line of a log tail (a traceback's last line is the exception), shortened."""
    line = next((ln.strip() for ln in reversed(log_tail.splitlines()) if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def exit_text(code: int | None) -> str:
    """Why a process ended, in words."""
    if code is None:
        return "the process is gone (killed, or the machine restarted)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with status {code}"


def ranks_device(device: str, world_size: int) -> str:
    """The devices of a run's ranks, from rank 0's device and the world size: cpu×2 for CPU ranks,
    cuda:0,1 for torchrun's one GPU per rank (each takes cuda:LOCAL_RANK; on several hosts the
    indices repeat per host, so past 8 ranks it reads cuda×N). One process: the device itself."""
    if world_size <= 1:
        return device
    kind = device.split(":", 1)[0]
    if kind == "cuda" and world_size <= 8:
        return "cuda:" + ",".join(str(i) for i in range(world_size))
    return f"{kind}×{world_size}"


@dataclass(kw_only=True)
class RunState:
    """A run's standing, folded from its records and events in order. `apply` is the only writer."""

    state: str = STARTING
    reason: str = ""
    step: int = 0
    start_step: int = 0
    total_steps: int = 0
    tokens: int = 0
    loss: float | None = None
    ce: float | None = None
    lr: float | None = None
    tok_s: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    model: str = ""
    device: str = ""
    pid: int | None = None
    params: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    hello: Hello | None = None
    metric: Metric | None = None
    """The last metric record."""
    exit_code: int | None = None
    crash_tail: str = ""
    """The last lines of engine.log when the process died badly."""
    started: float | None = None
    updated: float | None = None
    _gaps: deque[float] = field(default_factory=lambda: deque(maxlen=_GAPS), repr=False)
    """Seconds between recent metric records: the run's usual pace, for `stalled`."""

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps > 0 else 0.0

    def apply(self, event: Event, late: bool = False) -> str:
        """Fold one record or event in; returns what changed ("" for nothing): hello, metrics, eval,
        state. `late`: a record older than one already applied (a backfill from the file), which
        may add a best val but never moves the run's current standing back."""
        if isinstance(event, Record) and event.time is not None:
            self.updated = event.time if self.updated is None else max(self.updated, event.time)
        if isinstance(event, Metric):
            return "" if late else self._metric(event)
        if isinstance(event, Eval):
            return self._eval(event, late)
        if isinstance(event, State):
            return "" if late else self._state(event)
        if isinstance(event, Hello):
            return "" if late else self._hello(event)
        if isinstance(event, Launched):
            self.state, self.reason, self.exit_code, self.crash_tail = STARTING, "", None, ""
            self.pid = event.pid if event.pid is not None else self.pid
            self.updated = event.time if event.time is not None else self.updated
            return "state"
        if isinstance(event, Exited):
            return self._exited(event)
        return ""

    def _hello(self, rec: Hello) -> str:
        self.hello = rec
        self.config = rec.config
        self.model = rec.model or self.model
        self.device = ranks_device(rec.device, rec.world_size) if rec.device else self.device
        self.pid, self.params = rec.pid, rec.params
        if rec.total_steps > 0:
            self.total_steps = rec.total_steps
        self.start_step = max(0, rec.start_step)
        self.state, self.reason, self.exit_code, self.crash_tail = STARTING, "", None, ""
        if self.started is None and rec.time is not None:
            self.started = rec.time
        return "hello"

    def _metric(self, rec: Metric) -> str:
        last = self.metric
        if last is not None and last.time is not None and rec.time is not None and rec.time > last.time:
            self._gaps.append(rec.time - last.time)
        self.metric = rec
        self.step, self.tokens = rec.step, rec.tokens
        self.loss, self.ce, self.lr, self.tok_s = rec.loss, rec.ce, rec.lr, rec.tok_s
        if rec.tok_s is None:
            self.tok_s = derived_tok_s(last, rec)  # readers that fold a block apply its last two records
        if self.state == STARTING or (self.state not in LIVE_STATES and self.exit_code is None):
            self.state = RUNNING  # training (again: a metric after a final state means a resume)
        return "metrics"

    def _eval(self, rec: Eval, late: bool) -> str:
        val = rec.val_loss
        if val is not None and math.isfinite(val):
            if not late:
                self.val_loss = val
            if is_new_best(val, self.best_val_loss):
                self.best_val_loss = val
        return "eval"

    def _state(self, rec: State) -> str:
        self.state, self.reason = decided_state(rec.state, rec.reason), rec.reason
        if rec.step is not None:
            self.step = rec.step
        if rec.exit_code is not None:
            self.exit_code = rec.exit_code
        if rec.total_steps is not None and rec.total_steps > 0:
            self.total_steps = rec.total_steps  # a live ramp (or a resume) moved the end of the run
        return "state"

    def _exited(self, ev: Exited) -> str:
        """A run that had not said it finished becomes stopped (a clean exit, or SIGTERM before its
        handler was up: nothing was lost) or crashed (with the tail of its log to say why)."""
        code = ev.exit_code
        self.exit_code = code
        if self.state in (FAILED, KILLED, STOPPED, PARKED):
            return "state"  # the run said how it ended (an exception, a signal, a stop, a park): that stands
            # (a reported script stopped from the dashboard dies of the KeyboardInterrupt it was sent)
        if code == -signal.SIGTERM:
            # SIGTERM is a stop request (the engine's own handler checkpoints and exits 0); dying of it
            # means it came before the handler was up, e.g. quit-with-stop while torch still imported.
            if self.live:
                self.state = STOPPED
                self.reason = "stopped by SIGTERM" + ("" if self.hello else " before training started")
            return "state"
        if code == 0 and self.live:
            done = self.total_steps > 0 and self.step >= self.total_steps
            self.state, self.reason = (FINISHED if done else STOPPED), "process exited"
        elif code != 0 and (self.live or code is not None):
            said = last_line(
                ev.log_tail
            )  # why, in the alert itself: "exited with status 1" alone said nothing
            self.state, self.crash_tail = CRASHED, ev.log_tail
            self.reason = exit_text(code) + (f": {said}" if said else "")
        return "state"

    @property
    def paused(self) -> bool:
        return self.state == PAUSED

    def stall_after_s(self, floor_s: float | None = None) -> float:
        """How long a running run may go without a record before it counts as stalled: the floor
        (STALL_FLOOR_S unless given), or STALL_FACTOR times its median gap between metric records
        when that is longer."""
        usual = statistics.median(self._gaps) if self._gaps else 0.0
        return max(STALL_FLOOR_S if floor_s is None else floor_s, STALL_FACTOR * usual)

    def stalled(self, now: float | None = None, floor_s: float | None = None) -> bool:
        """Whether a run that says it is running has been silent far beyond its usual pace (stopped
        with SIGSTOP, hung in a kernel or on a dead filesystem). Its process may still be alive:
        that it is gone is `crashed`, which the pid check (not silence) decides. The one place that
        decides stalled: the run table, `nexus runs` and the ETA all ask it."""
        if self.state != RUNNING or self.updated is None:
            return False
        now = time.time() if now is None else now
        return now - self.updated > self.stall_after_s(floor_s)

    def shown_state(self, now: float | None = None, floor_s: float | None = None) -> str:
        """The state to show a person: `stalled` for a silent running run, else the state."""
        return STALLED if self.stalled(now, floor_s) else self.state
