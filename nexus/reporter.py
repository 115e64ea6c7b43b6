"""`Run`: one reported run. The training thread calls log()/step_end(); two threads do the rest.

- log() grabs values (tensors by reference, never synced), merges them into the pending step and, on
  commit, queues a metric and/or eval record for the writer thread (`writer.py`). It never blocks.
- step_end() (or `for cmd in run.commands()`) acts on control commands queued by the control thread
  (`control.py`): pause holds the loop right there, stop sets `should_stop`, checkpoint/eval/generate
  call the script's handlers and file what they return. A loop that never calls either gets the same
  check at each committed log().
- ramps set the LR in the optimizer's groups through its hooks and its schedulers' steps (`lr.py`), so
  every logger sees them; the schedule's future is published for the ramp preview (`lr_schedule.py`).
- the end is recorded by finish(), the excepthook, the signal handlers or atexit (`ending.py`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from nexus import values as V
from nexus.config import Config, Summary
from nexus.control import ControlThread, warn
from nexus.ending import EndHooks, one_line
from nexus.lr import LRControl
from nexus.lr_schedule import publish_future
from nexus.metricdefs import MetricDefs
from nexus.richlog import rich_records, tensor_histogram
from nexus.shaping import json_safe, short
from nexus.steering import Steering
from nexus.wandb_run import WandbSurface
from nexus.watching import ModelWatch
from nexus.writer import STEP, Writer
from nexus_core import protocol as P

FINISHED_HOOKS: list[Callable[[object], None]] = []
"""Called with each run that finishes: the package (`nexus/__init__`) clears `nexus.run` here, so
this module never imports the package that imports it."""

ALWAYS = frozenset({P.PAUSE, P.RESUME, P.STOP})
"""Commands every reported run takes (acted on at step_end(), or at each committed log()); the hello
lists these names. `unpause`, the name older dashboards send for resume, is taken too, unlisted."""


class Run(Steering, WandbSurface):
    """A run Nexus did not write, reporting into a run folder. Build it with `nexus.init()`."""

    def __init__(
        self,
        run_dir: Path,
        config: Any = None,
        total_steps: int | None = None,
        start_step: int = 1,
        resumed: bool = False,
        model: str = "",
        meta: dict[str, Any] | None = None,
        pipe_fd: int | None = None,
        previous_summary: dict[str, Any] | None = None,
        resumable: bool = False,
    ) -> None:
        self.dir = Path(run_dir)
        self.name = self.id = self.dir.name
        self.total_steps = total_steps
        self._should_stop = False
        self._loop_reads_stop = False
        """The script read `should_stop` (or an adapter acts on it): a stop command only sets it."""
        self._stop_interrupt = False
        """A stop command ended the script with a KeyboardInterrupt: its end is `stopped`, not killed."""
        self.paused = False
        self._start_step = start_step
        self._step = start_step
        self._last_committed = start_step - 1
        self._loop_step = 0
        """The step a framework says its loop has done (`at_step`), when it counts its own."""
        self._pending: dict[str, Any] = {}
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._lacking: dict[str, str] = {}
        """command -> what would make it work, for an adapter that knows better than "add a handler"
        (HF without an eval set): the refusal the socket and the dashboard give (hello `lacking`)."""
        self._lr: LRControl | None = None
        self._schedule: dict[str, Any] | None = None
        """The hello's `lr_schedule` (nexus/lr_schedule.py), once the first optimizer step sampled it."""
        self._describing = threading.Lock()
        self._idle: Callable[[], None] | None = None
        """Called about once a second while paused (nexus/ranks.py keeps the other ranks' collective alive)."""
        self._steers = False
        self._ended = False
        self._state = P.STARTING
        self._device = ""
        self._params: int | None = None
        self._model = model
        self._meta = {k: v for k, v in (meta or {}).items() if v is not None}
        self._meta.setdefault("started", time.time())
        self._defs = MetricDefs()
        self._watch: ModelWatch | None = None
        self._media_n = 0
        self._resumed = resumed
        self._resumable = resumable
        """The script continues a run it finds (init's resume=): with a checkpoint handler it can be parked."""
        self._parked = False
        self._warned: set[str] = set()
        self._version = 0
        self.config = Config(config, on_change=self._describe)
        self._writer = Writer(
            self.dir,
            {"run": self.name, "total_steps": total_steps or 0, "step": start_step - 1, "source": "reporter"},
            pipe_fd,
        )
        self.summary = Summary(lambda: self._writer.last_values, previous_summary)
        try:
            self._control: ControlThread | None = ControlThread(
                self.dir, self._supported, self._immediate, lambda: self.step, self._lacking
            )
            self._writer.status["socket"] = self._control.socket_path
        except OSError as e:
            self._control = None
            warn(f"no control socket for run {self.name} ({e}); it is reported but cannot be steered")
        self._inbox: deque[dict[str, Any]] = self._control.inbox if self._control else deque()
        self._describe()
        self._writer.start()
        self._hooks = EndHooks(self)
        self._set_state(P.RUNNING, "resumed" if resumed else "")

    # -- logging ---------------------------------------------------------------------------------

    @property
    def should_stop(self) -> bool:
        """Set by a stop command (or a signal the script handles itself): end the loop, then finish().
        A script that reads it ends its loop itself on the dashboard's `s`; one that never does is
        ended at its next log() by a KeyboardInterrupt, as W&B's stop does (steering.py)."""
        if not self._loop_reads_stop:
            self._loop_reads_stop = True
            self._describe()  # the hello says so: the dashboard's stop dialog promises what happens
        return self._should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self._should_stop = bool(value)

    @property
    def step(self) -> int:
        """The step the next log() without `step=` goes to."""
        return self._step

    def log(self, data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Record numbers for a step (wandb's rules): without `step`, each call is a step of its own
        unless commit=False; with `step`, calls for the same step merge and are filed when a later step
        is logged, at step_end() or at finish(). Values: Python numbers, numpy scalars, one-element
        tensors (read later, off this thread). Nested dicts become `a/b` keys. Never blocks for long
        (only while the writer catches up with a loop faster than it) and never raises: a value it
        cannot record costs that key, with one warning (docs/RELIABILITY.md)."""
        if self._ended:
            self._warn_once("ended", "log() after finish() is ignored")
            return
        try:
            self._log(data, step, commit)
        except Exception as e:  # noqa: BLE001 - the reporter never raises into the training loop
            self._warn_once(
                f"log:{type(e).__name__}", f"log() could not record a call ({one_line(e)}); the loop goes on"
            )

    def _log(self, data: dict[str, Any], step: Any, commit: bool | None) -> None:
        if step is not None:
            step = self._checked_step(step)
            if step is None:
                return
            if step < self._last_committed:
                self._warn_once(
                    "backwards",
                    f"log(step={step}) is before step {self._last_committed} "
                    "already filed: ignored (steps only go forward)",
                )
                return
            if self._pending and step != self._step:
                self._commit()
            self._step = step
        if not isinstance(data, dict):
            self._warn_once("data", f"log() takes a dict of values, not a {type(data).__name__}: ignored")
            return
        pending = self._pending
        for key, value in data.items():
            if type(value) is dict:
                skipped: list[str] = []
                for k, v in V.flatten(value, f"{key}/", skipped=skipped).items():
                    self._put_value(pending, k, v)
                for name in skipped:
                    self._warn_once(
                        f"deep:{name}",
                        f"key {name[:100]!r}: a dict nested past {V.MAX_DEPTH} levels "
                        "or containing itself; not followed",
                    )
                continue
            got = V.grab(value)
            if got is None:
                self._rich(pending, key if type(key) is str else str(key), value)
            else:
                pending[key if type(key) is str else str(key)] = got
        if commit is False or (commit is None and step is not None):
            return
        self._commit()

    def _checked_step(self, step: Any) -> int | None:
        """`step=` as an int the records can hold, else None with one warning (the call is refused:
        its values belong to no step the records could name)."""
        try:
            got = int(step)
        except (TypeError, ValueError, OverflowError):
            got = None
        if got is None or isinstance(step, bool) or not -(2**63) <= got < 2**63:
            self._warn_once(
                f"step:{type(step).__name__}",
                f"log(step={short(step)[:60]}) refused: a step is a whole "
                "number within 64 bits; this call is not recorded",
            )
            return None
        return got

    def _put_value(self, pending: dict[str, Any], key: str, value: Any) -> None:
        got = V.grab(value)
        if got is None:
            self._rich(pending, key, value)
        else:
            pending[key] = got

    def _rich(self, pending: dict[str, Any], key: str, value: Any) -> None:
        """Not a number: a bool as 0/1, text, a table, a histogram, a picture (richlog.py), else skipped."""
        if type(value) is bool:
            pending[key] = int(value)
            return
        try:
            records = rich_records(self, key, value, self._step)
        except (OSError, ValueError, TypeError, AttributeError, IndexError) as e:
            self._warn_once(
                f"media:{key}",
                f"key {key[:100]!r}: a {type(value).__name__} could not be kept ({one_line(e)})",
            )
            return
        if records is None:
            self._skip(key, value)
            return
        at = time.time()
        for record in records:
            record["time"] = at
            self._writer.put(record)

    def _skip(self, key: Any, value: Any) -> None:
        if f"skip:{key}" not in self._warned:
            self._warned.add(f"skip:{key}")
            self._put_log(
                f"key {str(key)[:100]!r}: a {type(value).__name__} is not a number (or a one-element "
                "tensor, text or a wandb data type); it is not recorded",
                "warning",
            )

    def _commit(self) -> None:
        if self._watch is not None and self._watch.due:
            self._take_watched()
        values, self._pending = self._pending, {}
        step = self._step
        self._last_committed, self._step = step, step + 1
        if values:
            if len(values) > V.MAX_KEYS:
                self._warn_once("keys", f"more than {V.MAX_KEYS} keys in one step: the rest are not recorded")
                values = dict(list(values.items())[: V.MAX_KEYS])
            if not self._device:
                self._learn_device(values)
            lr = self._lr
            if lr is not None and lr.pending:
                lr.settle()  # a ramp asked for meanwhile: the groups show it before the next step
            used = (lr.last_lr, lr.active) if lr is not None and lr.last_lr is not None else None
            # Routing keys into metric/eval records is the writer thread's work (writer.STEP).
            self._writer.put({"type": STEP, "step": step, "time": time.time(), "values": values, "lr": used})
        if not self._steers and self._inbox:
            self._act()

    def _take_watched(self) -> None:
        """A watched model's per-layer norms join this step; its histograms are filed beside it."""
        assert self._watch is not None
        norms, hists = self._watch.take()
        for key, value in norms.items():
            self._pending.setdefault(key, value)
        at = time.time()
        for key, value in hists.items():
            for record in tensor_histogram(key, value, self._step):
                record["time"] = at
                self._writer.put(record)

    def _learn_device(self, values: dict[str, Any]) -> None:
        for v in values.values():
            if V.is_tensor(v):
                self._device = str(v.device)
                self._describe()
                return

    # -- between steps ---------------------------------------------------------------------------

    def step_end(self) -> None:
        """Call once per step, after optimizer.step(). Files the step's pending values and carries out
        waiting commands: pause holds here until resume, stop sets `should_stop`, checkpoint, eval and
        generate call the handlers. Costs one truthiness test when nothing is waiting."""
        self._steers = True
        if self._pending:
            self._commit()
        if self._lr is not None and self._lr.pending:
            self._lr.settle()
        if self._inbox:
            self._act()

    def commands(self) -> Iterator[dict[str, Any]]:
        """Like step_end(), yielding each command after the reporter acted on it (`cmd["cmd"]` is its
        name), for a loop that wants to react too: `for cmd in run.commands(): ...`."""
        self._steers = True
        self._loop_reads_stop = True  # it sees the stop command itself
        if self._pending:
            self._commit()
        yield from self._drain()

    def _drain(self) -> Iterator[dict[str, Any]]:
        """Act on every queued command, holding here while paused; yield each after acting."""
        while self._inbox or (self.paused and not self._should_stop):
            if self._inbox:
                cmd = self._inbox.popleft()
                self._do(cmd)
                yield cmd
            else:
                self._wait_for_command()

    def _act(self) -> None:
        for _ in self._drain():
            pass

    def _wait_for_command(self) -> None:
        if self._control is None:
            self.paused = False  # nothing could ever resume it
            return
        self._control.arrived.wait(1.0)  # the writer keeps the status fresh meanwhile: paused, alive
        self._control.arrived.clear()
        if self._idle is not None:
            self._idle()

    def _done_step(self) -> int:
        """The step a checkpoint, eval or sample taken now belongs to: the last one filed, or the
        step the framework says it is at, when later (HF calls on_step_end before it logs the step)."""
        return max(self._last_committed, self._loop_step, 0)

    def lacks(self, command: str, why: str) -> None:
        """For an adapter: `command` cannot work on this run, and `why` says what would make it work
        (the refusal quotes it instead of "add a handler")."""
        self._lacking[command] = str(why)[:300]
        self._describe()

    def at_step(self, step: int) -> None:
        """For an adapter whose framework counts its own steps: the loop has done `step`, though its
        values may be logged only after the step_end() that follows (a checkpoint the Trainer writes as
        checkpoint-143 is then recorded at 143, not at the last step logged, 142)."""
        if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < 2**63:
            self._loop_step = step

    # -- what the script hands over (handlers: nexus/steering.py) ------------------------------

    def watch(
        self,
        target: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int = 1000,
        idx: int | None = None,
        log_graph: bool = False,
        scheduler: Any = None,
    ) -> None:
        """Hand over a torch optimizer: `ramp` commands then change its LR (see nexus/lr.py for how it
        composes with the script's scheduler) and the records' `lr` is the LR each step really used.
        `scheduler`: its LR scheduler (found by itself at the first step when not given); its future
        is published for the dashboard's ramp preview.
        A model (wandb.watch(model, log=..., log_freq=...)) tells the run its parameter count and device
        and records per-layer gradient and/or parameter norms every log_freq steps (watching.py)."""
        if isinstance(target, (list, tuple)):  # wandb.watch([model_a, model_b])
            for one in target:
                self.watch(one, criterion, log, log_freq, idx, log_graph)
            return
        if hasattr(target, "param_groups"):
            if self._lr is not None:
                self._lr.close()
            self._lr = LRControl(
                target, [scheduler] if scheduler is not None else (), on_schedulers=self._schedule_found
            )
            params = [p for g in target.param_groups for p in g["params"]]
        elif hasattr(target, "parameters"):
            params = list(target.parameters())
            if log is not None and hasattr(target, "named_parameters"):
                if self._watch is not None:
                    self._watch.close()
                self._watch = ModelWatch(target, log, log_freq, log_graph)
        else:
            raise TypeError(f"run.watch() takes a torch optimizer or model, not {type(target).__name__}")
        self._params = sum(int(p.numel()) for p in params) or self._params
        if params and not self._device:
            self._device = str(params[0].device)
        self._describe()

    def _schedule_found(self, control: LRControl) -> None:
        """Training thread, at an optimizer step: publish the schedule's future in the hello."""
        publish_future(control, self._step, self.total_steps, self._publish_schedule)

    def _publish_schedule(self, schedule: dict[str, Any]) -> None:
        self._schedule = schedule
        self._describe()

    def alert(self, title: str, text: str = "", level: Any = "INFO", wait_duration: Any = None) -> None:
        """An alert on the dashboard's red bar and in the records (kind "user")."""
        level = str(getattr(level, "value", level)).upper()
        self._writer.put(
            {
                "type": P.ALERT,
                "kind": "user",
                "level": level,
                "step": self._done_step(),
                "text": f"{title}: {text}" if text else str(title),
                "time": time.time(),
            }
        )

    # -- the end ---------------------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Record the end and close the files: finished, or stopped (after a stop command or a signal
        the script handled), or failed when exit_code is not 0. Safe to call twice."""
        if self._ended:
            return
        if self._pending:
            self._commit()
        if exit_code not in (None, 0):
            self._close(P.FAILED, f"finish(exit_code={exit_code})", int(exit_code))
        elif self._stop_interrupt:
            self._close(P.STOPPED, "stop command (KeyboardInterrupt at log(), handled by the script)", 0)
        elif self._hooks.signalled:
            self._close(P.STOPPED, f"{self._hooks.signalled}, handled by the script", 0)
        elif self._should_stop:
            self._close(P.STOPPED, P.PARK_REASON if self._parked else "stop command", 0)
        else:
            self._close(P.FINISHED, f"finished at step {self._done_step()}", 0)

    def _end_as_failed(self, text: str) -> None:
        if self._ended:
            return
        if self._pending:
            self._commit()
        self._put_log(text, "error")
        self._writer.put(
            {"type": P.ALERT, "kind": "crash", "step": self._done_step(), "text": text, "time": time.time()}
        )
        self._close(P.FAILED, text, 1)

    def _end_as_killed(self, signal_name: str, exit_code: int) -> None:
        if self._ended:
            return
        if self._pending:
            self._commit()
        self._close(P.KILLED, signal_name, exit_code)

    def _end_interrupted(self) -> None:
        """An uncaught KeyboardInterrupt ended the script: the stop command's (`stopped`), or Ctrl-C's."""
        if self._stop_interrupt:
            if self._pending:
                self._commit()
            if not self._ended:
                self._close(P.STOPPED, "stop command (KeyboardInterrupt at log())", 0)
            return
        self._end_as_killed("SIGINT (KeyboardInterrupt)", -2)

    def _close(self, state: str, reason: str, exit_code: int) -> None:
        self._ended = True
        self._hooks.remove()
        if self._watch is not None:
            self._watch.close()
        if self._defs.wants_summary() and self._writer.sync():
            with contextlib.suppress(OSError, ValueError):
                for key, value in self._defs.summarize(self.dir / P.METRICS_FILE).items():
                    self.summary.setdefault(key, value)
        if self._control is not None:
            self._control.close()
        if self._lr is not None:
            self._lr.close()
        self._set_state(state, reason, exit_code)
        summary = json_safe({k: v for k, v in self.summary.as_dict().items() if not V.is_tensor(v)})
        if not self._writer.close(summary=summary):
            warn(f"run {self.name}: the disk did not take the last records in time")
        for hook in FINISHED_HOOKS:
            hook(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, etype: Any, value: Any, tb: Any) -> Literal[False]:
        if etype is None:
            self.finish()
        elif issubclass(etype, KeyboardInterrupt):
            self._end_interrupted()
        elif issubclass(etype, SystemExit):
            code = value.code
            self.finish(exit_code=code if isinstance(code, int) else (0 if code is None else 1))
        else:
            self._end_as_failed(one_line(value))
        return False

    # -- plumbing --------------------------------------------------------------------------------

    def _supported(self) -> frozenset[str]:
        have = set(ALWAYS) | set(self._handlers)
        if self._resumable and P.CHECKPOINT in self._handlers:
            have.add(P.PARK)  # it saves when asked and continues from what it saved when started again
        have.add(P.UNPAUSE)  # taken, never listed (_describe)
        if self._lr is not None:
            have.add(P.RAMP)
        return frozenset(have)

    def _immediate(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        """Control thread: a ramp is handed to the LR hooks at once; everything else waits for the loop."""
        if cmd["cmd"] != P.RAMP or self._lr is None:
            return None
        text = self._lr.request(float(cmd["target_lr"]), int(cmd["ramp_steps"]))
        total = cmd.get("total_steps")
        if isinstance(total, int):
            self.total_steps = total
            text += f"; total_steps is now {total} (the loop reads run.total_steps)"
            self._describe()
        self._put_log(text)
        return {"text": text}

    def _describe(self) -> None:
        """What the hello says, as of now; the writer files a fresh hello when this changes (from the
        training thread, and from the thread that samples the LR schedule)."""
        with self._describing:
            self._version += 1
            self._writer.describe = (self._version, self._hello_fields())

    def _hello_fields(self) -> dict[str, Any]:
        fields = {
            "run": self.name,
            "config": json_safe(self.config.as_dict()),
            "pid": os.getpid(),
            "device": self._device,
            "params": self._params,
            "total_steps": self.total_steps or 0,
            "start_step": self._start_step - 1,
            "model": self._model or _model_of(self.config),
            "resumed_from": str(self.dir) if self._resumed else None,
            "source": "reporter",
            "commands": sorted(self._supported() - {P.UNPAUSE} if self._control is not None else ()),
            "stop": "flag" if self._loop_reads_stop else "interrupt",
            "argv": [str(a)[:200] for a in sys.argv[:64]],
        }
        if self._meta:
            fields["meta"] = json_safe(self._meta)
        if self._lacking:
            fields["lacking"] = {k: v for k, v in self._lacking.items() if k not in fields["commands"]}
        if self._schedule is not None:
            fields["lr_schedule"] = self._schedule
        return fields

    def _set_state(self, state: str, reason: str = "", exit_code: int | None = None) -> None:
        self._state = state
        rec: dict[str, Any] = {
            "type": P.STATE,
            "state": state,
            "step": self._done_step(),
            "reason": reason,
            "time": time.time(),
        }
        if exit_code is not None:
            rec["exit_code"] = exit_code
        self._writer.queue.append(rec)  # never dropped: a state change is what readers trust most

    def _put_log(self, text: str, level: str = "info") -> None:
        self._writer.put({"type": P.LOG, "level": level, "text": text, "time": time.time()})

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn(text)
            self._put_log(text, "warning")


def _model_of(config: Config) -> str:
    for key in ("model", "model_name", "arch", "architecture"):
        value = config.get(key)
        if isinstance(value, str):
            return value[:64]
    return ""
