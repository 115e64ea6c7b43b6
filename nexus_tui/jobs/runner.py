"""The queue runner: one per runs folder (under `runner.lock`), started by the dashboard or by
`nexus queue run`, living in its own session so the box works through the queue with no dashboard.

Each tick, under the queue's lock: ended jobs are reaped (their run's state, as `nexus runs` decides
it, is the outcome; a parked one that a priority job pushed out is queued again to resume), then
queued jobs start in order (priority, then position) while slots are free: the head job waits for
enough slots and nothing behind it jumps ahead (except jobs waiting on `after` or held). A head job
that still does not fit parks running jobs of lower priority. Commands to runs (park) are sent
after the lock is released, so no writer waits on an engine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nexus_core import children
from nexus_core.commands import Park
from nexus_core.protocol import LIVE_STATES, METRICS_FILE, PARKED, ControlError, engine_argv
from nexus_core.runfolder import pid_alive
from nexus_core.text import clean_text
from nexus_tui.documents.runs_index import summarize_run
from nexus_tui.jobs import launch, queuefile
from nexus_tui.jobs.model import (
    DONE,
    FAILED,
    PARKING,
    QUEUED,
    RUNNING,
    Job,
    JobState,
    QueueDoc,
    sort_key,
)
from nexus_tui.jobs.model import PARKED as JOB_PARKED
from nexus_tui.jobs.slots import Box, probe
from nexus_tui.live import run_control
from nexus_tui.live.launch_args import LaunchError
from nexus_tui.live.spawn import start_in_session

POLL_S = 1.0
PARK_WAIT_S = 120.0
"""How long a park command may wait for the engine to read it."""

NEVER = "never"
"""`_blocked_by`'s answer for a job whose `after` run neither exists nor is queued (cancelled, failed
to start): it would wait forever, so it fails, saying why."""

OnEvent = Callable[[str, str], None]
"""(kind, text): 'started', 'ended', 'drained', 'warning'; the runner's log and notifications."""


@dataclass
class TickResult:
    started: list[str] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)
    to_park: list[str] = field(default_factory=list)
    idle: bool = False
    """Nothing is queued and nothing runs: a runner told to exit when idle may go."""


def _blocked_by(job: Job, doc: QueueDoc, root: Path) -> str:
    """'' when `job` may start now, else what it waits for (its `after` run, still live or queued)."""
    if not job.after:
        return ""
    if any(j.name == job.after and (j.waiting or j.active) for j in doc.jobs if j.id != job.id):
        return f"waiting for {job.after}"
    run_dir = root / job.after
    if not run_dir.is_dir():
        return NEVER  # nothing queued or running will make it: it cannot start
    if summarize_run(run_dir).state in LIVE_STATES:
        return f"waiting for {job.after}"
    return ""


def live_outside(root: Path, ours: set[str]) -> int:
    """How many runs under `root` the queue did not start are live now (a live state in their status
    file and their pid alive): on a box without GPUs each takes a CPU slot. Status files only: cheap."""
    from nexus_core.runfolder import read_status

    count = 0
    try:
        folders = [
            d for d in root.iterdir() if d.is_dir() and d.name not in ours and not d.name.startswith(".")
        ]
    except OSError:
        return 0
    for d in folders:
        status = read_status(d)
        if (
            status
            and status.get("state") in LIVE_STATES
            and pid_alive(status.get("pid"), status.get("updated"))
        ):
            count += 1
    return count


def outcome_of(job: Job, root: Path, code: int | None) -> tuple[JobState, str]:
    """(job state, outcome) of an ended job: its run's state as `nexus runs` decides it."""
    run_dir = root / job.name
    state = summarize_run(run_dir).state if run_dir.is_dir() else "unknown"
    if state == PARKED:
        return JOB_PARKED, state
    if state in ("finished", "stopped", "killed"):
        return DONE, state
    if state in LIVE_STATES or state == "unknown":  # it ended without saying so
        state = "crashed" if code != 0 else "exited"
        return (FAILED if code != 0 else DONE), f"{state} (exit {code})"
    return FAILED, state


class Runner:
    """Works through one runs folder's queue. `tick` is one pass (tests call it directly)."""

    def __init__(
        self,
        root: str | Path,
        python: str = children.PYTHON,
        on_event: OnEvent | None = None,
        box: Callable[[int, list[int]], Box] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.python = python
        self.on_event = on_event or (lambda kind, text: None)
        self._box = box or (lambda cpu_slots, pids: probe(cpu_slots, pids))
        self._procs: dict[int, children.Popen[bytes]] = {}
        """Jobs this runner started: polled (and reaped) through their Popen."""
        self._was_busy = False
        self._told_vanished = False

    def _ended(self, job: Job) -> tuple[bool, int | None]:
        proc = self._procs.get(job.id)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return False, None
            del self._procs[job.id]
            return True, code
        if job.pid is not None and pid_alive(job.pid, job.started):
            return False, None
        return True, None  # started by an earlier runner and gone: its run folder says how it ended

    def tick(self) -> TickResult:
        result = TickResult()
        with queuefile.editing(self.root) as doc:
            self._reap(doc, result)
            box = self._box(doc.cpu_slots, [j.pid for j in doc.jobs if j.active and j.pid])
            held = [d for j in doc.jobs if j.active for d in j.devices]
            free = box.free(held)
            if (
                box.kind == "cpu"
            ):  # runs started outside the queue (a dashboard's n, a terminal) use CPU slots too
                free = free[
                    : max(0, len(free) - live_outside(self.root, {j.name for j in doc.jobs if j.active}))
                ]
            if box.kind == "cpu" and any(j.active and j.device.startswith("cuda") for j in doc.jobs):
                free = []  # the GPUs vanished under running jobs: start nothing on the CPU in their place
                if not self._told_vanished:
                    self.on_event(
                        "warning", f"the GPUs are gone ({box.note}); queued jobs wait until they are back"
                    )
                self._told_vanished = True
            else:
                self._told_vanished = False
            head: Job | None = None
            for job in sorted((j for j in doc.jobs if j.state == QUEUED), key=sort_key):
                if (blocked := _blocked_by(job, doc, self.root)) == NEVER:
                    job.state, job.ended = FAILED, time.time()
                    job.outcome = (
                        f"the run it waits for, {job.after}, is neither queued nor in the runs folder"
                    )
                    continue
                if blocked:
                    continue
                if job.gpus > len(box.slots):
                    job.state, job.outcome = FAILED, f"needs {job.gpus} slots; this box has {len(box.slots)}"
                    continue
                if job.gpus > len(free):
                    head = job
                    break
                job.devices, free = free[: job.gpus], free[job.gpus :]
                self._start(job, box, doc, result)
            if head is not None:
                self._preempt(head, doc, len(free), result)
            busy = any(j.active or j.state == QUEUED for j in doc.jobs)
            result.idle = not busy
        for name in result.to_park:
            self._park(name)
        if self._was_busy and result.idle:
            self.on_event("drained", "the queue is empty: every job has ended")
        self._was_busy = busy
        return result

    def _reap(self, doc: QueueDoc, result: TickResult) -> None:
        for job in doc.jobs:
            if not job.active:
                continue
            ended, code = self._ended(job)
            if not ended:
                continue
            was_pushed = job.state == PARKING
            job.state, job.outcome = outcome_of(job, self.root, code)
            job.ended = time.time()
            result.ended.append((job.name, job.outcome))
            self.on_event("ended", f"{job.name}: {job.outcome}")
            if job.state == JOB_PARKED and was_pushed:
                doc.jobs.append(
                    Job(
                        id=doc.next_id,
                        name=job.name,
                        kind="resume",
                        args=[],
                        cwd=job.cwd,
                        gpus=job.gpus,
                        priority=job.priority,
                        order=job.order,
                        added=time.time(),
                        sweep=job.sweep,
                    )
                )
                doc.next_id += 1

    def _start(self, job: Job, box: Box, doc: QueueDoc, result: TickResult) -> None:
        metrics = self.root / job.name / METRICS_FILE
        if job.kind == "train" and metrics.exists():  # made since it was queued (a launch, another queue)
            job.state, job.outcome, job.devices, job.ended = (
                FAILED,
                f"a run named {job.name} was made since it was queued: queue it again with another name",
                [],
                time.time(),
            )
            return
        try:
            proc = launch.start(job, self.root, self.python, box.kind, doc.cpu_slots)
        except LaunchError as e:
            job.state, job.outcome, job.devices, job.ended = FAILED, str(e), [], time.time()
            self.on_event("warning", f"{job.name} could not start: {e}")
            return
        self._procs[job.id] = proc
        job.state, job.pid, job.started, job.outcome = RUNNING, proc.pid, time.time(), ""
        job.device = launch.device_text(box.kind, job.devices)
        result.started.append(job.name)
        self.on_event("started", f"{job.name} on {launch.device_text(box.kind, job.devices)}")

    def _preempt(self, head: Job, doc: QueueDoc, free: int, result: TickResult) -> None:
        """Park running engine jobs of lower priority than `head`, lowest first, until it would fit."""
        if any(j.state == PARKING for j in doc.jobs):
            return  # one push at a time: wait for those slots to come free
        lower = sorted(
            (
                j
                for j in doc.jobs
                if j.state == RUNNING and j.priority < head.priority and j.kind in ("train", "resume")
            ),
            key=lambda j: (j.priority, -(j.started or 0)),
        )
        chosen: list[Job] = []
        for job in lower:
            if free >= head.gpus:
                break
            chosen.append(job)
            free += len(job.devices)
        if free < head.gpus:
            return
        for job in chosen:
            job.state = PARKING
            result.to_park.append(job.name)

    def _park(self, name: str) -> None:
        try:
            run_control.send(self.root / name, Park(), timeout=PARK_WAIT_S)
        except ControlError as e:
            self.on_event("warning", f"could not park {name} for a higher-priority job: {e}")
            with contextlib.suppress(queuefile.QueueError), queuefile.editing(self.root) as doc:
                for job in doc.jobs:
                    if job.name == name and job.state == PARKING:
                        job.state = RUNNING

    def run(self, exit_when_idle: bool, stop: threading.Event | None = None, poll: float = POLL_S) -> None:
        """Tick until told to stop (or, `exit_when_idle`, until nothing is queued or running)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                result = self.tick()
            except queuefile.QueueError as e:
                self.on_event("warning", str(e))
                if exit_when_idle and not self._procs:
                    return
            else:
                if exit_when_idle and result.idle:
                    return
            stop.wait(poll)


def run_forever(root: str | Path, exit_when_idle: bool, on_event: OnEvent | None = None) -> int:
    """`nexus queue run`: hold the runner lock and work through the queue. 2 if another runner holds it."""
    try:
        queuefile.read(root)  # a queue it would refuse is said now, in one line, not at each tick
        fd = queuefile.hold_runner_lock(root)
    except queuefile.QueueError as e:
        print(f"error: {clean_text(e)}", file=sys.stderr)
        return 2
    if fd is None:
        print("error: a queue runner is already working through this runs folder", file=sys.stderr)
        return 2
    runner = Runner(root, on_event=on_event)
    while True:
        try:
            runner.run(exit_when_idle)
        finally:
            os.close(fd)
        # A job queued while this runner was deciding to leave found it alive and started none:
        # look once more now the lock is free, and go on if there is work and no other runner took it.
        try:
            waiting = any(j.state == QUEUED for j in queuefile.read(root).jobs)
        except queuefile.QueueError:
            waiting = False
        if not waiting or (fd := queuefile.hold_runner_lock(root)) is None:
            return 0


def ensure_runner(root: str | Path, python: str = children.PYTHON) -> bool:
    """Start a detached runner (own session, exits when the queue is idle) unless one is working;
    True when one was started. Its log is `.nexus-queue/engine.log`."""
    root = Path(root).resolve()
    if queuefile.runner_alive(root):
        return False
    argv = engine_argv(python, "--root", str(root), "--exit-when-idle", module="nexus_tui.jobs.runner")
    try:
        start_in_session(
            queuefile.queue_dir(root),
            lambda _fd: (argv, children.child_env()),
            root.parent,
            "the queue runner",
            piped=False,
        )
    except LaunchError:
        return False
    return True


def _print_event(kind: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {kind}: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nexus_tui.jobs.runner")
    parser.add_argument("--root", required=True)
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args(argv)
    from nexus_tui.jobs.notify import notifier

    return run_forever(args.root, args.exit_when_idle, notifier(_print_event))


if __name__ == "__main__":
    sys.exit(main())
