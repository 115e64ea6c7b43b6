"""What a person does to the queue, for the CLI and the dashboard alike: add, hold, release, cancel,
top, priority, park, unpark, slots. Each edit is one locked read-modify-write (`queuefile.editing`);
each refusal is a `JobError` line that says what to do instead."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from nexus_core import children
from nexus_core.commands import Park
from nexus_core.names import check_run_name, command_base, free_run_name
from nexus_core.protocol import LIVE_STATES, METRICS_FILE, PARKED, ControlError
from nexus_core.schema import CHECKPOINTS_DIR
from nexus_tui.documents.runs_index import summarize_run
from nexus_tui.jobs import queuefile
from nexus_tui.jobs.model import CANCELLED, HELD, MAX_SLOTS, QUEUED, Job, Kind, QueueDoc, sort_key
from nexus_tui.live import run_control
from nexus_tui.live.engine_io import command_program
from nexus_tui.live.launch_args import LaunchError, check_train

QUEUE_PICKS = ("--run-dir", "--device", "--nproc", "--metrics-fd")
"""Engine options the queue sets itself (the folder from the job's name, the device from its slots)."""


class JobError(Exception):
    """A queue edit was refused; the message is one line that says what to fix."""


def _taken(doc: QueueDoc) -> set[str]:
    return {j.name for j in doc.jobs if j.waiting or j.active}


def _name_for(root: Path, kind: Kind, args: list[str], doc: QueueDoc) -> str:
    if kind == "train":
        preset = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--preset"), "tiny")
        return free_run_name(root, preset, _taken(doc))
    return free_run_name(root, command_base(" ".join(args)) or "run", _taken(doc))


def _check_new(root: Path, name: str, doc: QueueDoc) -> None:
    if err := check_run_name(name):
        raise JobError(err)
    if name in _taken(doc):
        raise JobError(f"a job for run {name!r} is already queued or running: pick another name")
    metrics = root / name / METRICS_FILE
    if metrics.exists() and metrics.stat().st_size > 0:
        raise JobError(f"a run named {name!r} already exists: pick another name (or unpark/resume it)")


def add(
    root: str | Path,
    kind: Kind,
    args: list[str],
    name: str = "",
    gpus: int = 1,
    after: str = "",
    priority: int = 0,
    sweep: str = "",
    cwd: str | None = None,
    check: bool = True,
    python: str = children.PYTHON,
    first: bool = False,
    existing: bool = False,
    values: dict[str, str] | None = None,
) -> Job:
    """Queue one job; with `check` a train job is first validated by the engine itself (`--check`)
    and a command must exist; `first` puts it before every other job; `existing`: the run folder is
    there already (a parked script's run, started again to continue it). Returns the queued job."""
    root = Path(root)
    args = list(args)
    if not 1 <= gpus <= MAX_SLOTS:
        raise JobError(f"--gpus must be 1 to {MAX_SLOTS}, got {gpus}")
    if after and (err := check_run_name(after)):
        raise JobError(f"--after: {err}")
    if kind == "train":
        if picked := [a for a in args if a.split("=", 1)[0] in QUEUE_PICKS]:
            raise JobError(
                f"{picked[0].split('=', 1)[0]} is chosen by the queue (the run's name and its slots): leave it out"
            )
    elif kind == "command":
        if not args:
            raise JobError("give a command to queue, e.g. nexus queue add -- python train.py --lr 3e-4")
        if check:
            program = (
                args[0]
                if "/" not in args[0] or os.path.isabs(args[0])
                else os.path.join(cwd or os.getcwd(), args[0])
            )
            try:
                command_program([program])
            except ValueError as e:
                raise JobError(str(e)) from None
    with queuefile.editing(root) as doc:
        name = name.strip() or _name_for(root, kind, args, doc)
        if kind == "resume" or existing:
            if name in _taken(doc):
                raise JobError(f"run {name!r} is already queued or running")
        else:
            _check_new(root, name, doc)
        if after and after not in {j.name for j in doc.jobs} and not (root / after).is_dir():
            raise JobError(f"--after {after}: no such run, queued or in {root}")
        if check and kind == "train":
            try:
                check_train(
                    python, ["train", *args, "--run-dir", str(root / name), "--device", "cpu"], root.parent
                )
            except LaunchError as e:
                raise JobError(str(e)) from None
        job = Job(
            id=doc.next_id,
            name=name,
            kind=kind,
            args=args,
            cwd=str(cwd or os.getcwd()),
            gpus=gpus,
            after=after,
            priority=priority,
            added=time.time(),
            sweep=sweep,
            values=dict(values or {}),
            order=min((j.order for j in doc.jobs), default=0.0) - 1.0 if first else float(doc.next_id),
        )
        doc.next_id += 1
        doc.jobs.append(job)
        prune(doc)
    return job


KEEP_ENDED = 1000
"""Ended jobs kept in the queue (their outcome, a sweep's ranking); older ones are dropped as jobs
are added, so the file never reaches model.MAX_JOBS."""


def prune(doc: QueueDoc, keep: int = KEEP_ENDED) -> None:
    """Drop the oldest ended jobs beyond `keep` (jobs of no sweep first)."""
    ended = [j for j in doc.jobs if not (j.waiting or j.active)]
    if len(ended) <= keep:
        return
    drop = sorted(ended, key=lambda j: (bool(j.sweep), j.ended or 0.0, j.id))[: len(ended) - keep]
    gone = {j.id for j in drop}
    doc.jobs = [j for j in doc.jobs if j.id not in gone]


def find(doc: QueueDoc, ref: str) -> Job:
    """A job by id, or the newest job with that run name."""
    if ref.isdigit():
        for job in doc.jobs:
            if job.id == int(ref):
                return job
    for job in reversed(doc.jobs):
        if job.name == ref:
            return job
    raise JobError(f"no job {ref!r} in the queue (nexus queue ls lists them)")


def _edit(root: str | Path, refs: Iterable[str], change: str, value: int = 0) -> list[Job]:
    out = []
    with queuefile.editing(root) as doc:
        for ref in refs:
            job = find(doc, ref)
            if change in ("hold", "release", "cancel", "top") and not job.waiting:
                done = {
                    "hold": "held",
                    "release": "released",
                    "cancel": "cancelled",
                    "top": "moved to the top",
                }[change]
                raise JobError(
                    f"job {job.id} ({job.name}) is {job.state}: only a waiting job can be {done}"
                    + (" (stop or park the run instead)" if job.active else "")
                )
            if change == "hold":
                job.state = HELD
            elif change == "release":
                job.state = QUEUED
            elif change == "cancel":
                job.state, job.ended, job.outcome = CANCELLED, time.time(), "cancelled"
            elif change == "top":
                job.order = min((j.order for j in doc.jobs), default=0.0) - 1.0
            elif change == "priority":
                job.priority = value
            out.append(job)
    return out


def hold(root: str | Path, refs: Iterable[str]) -> list[Job]:
    return _edit(root, refs, "hold")


def release(root: str | Path, refs: Iterable[str]) -> list[Job]:
    return _edit(root, refs, "release")


def cancel(root: str | Path, refs: Iterable[str]) -> list[Job]:
    return _edit(root, refs, "cancel")


def top(root: str | Path, refs: Iterable[str]) -> list[Job]:
    return _edit(root, refs, "top")


def set_priority(root: str | Path, refs: Iterable[str], priority: int) -> list[Job]:
    return _edit(root, refs, "priority", priority)


def move(root: str | Path, ref: str, delta: int) -> Job:
    """Swap a waiting job with its neighbour (-1: earlier, +1: later) among the waiting jobs."""
    with queuefile.editing(root) as doc:
        job = find(doc, ref)
        waiting = sorted((j for j in doc.jobs if j.waiting), key=sort_key)
        if job not in waiting:
            raise JobError(f"job {job.id} ({job.name}) is {job.state}: only a waiting job moves")
        i = waiting.index(job)
        k = i + delta
        if 0 <= k < len(waiting):
            other = waiting[k]
            job.order, other.order = other.order, job.order
            job.priority, other.priority = other.priority, job.priority
        return job


def set_slots(root: str | Path, count: int) -> None:
    if not 1 <= count <= MAX_SLOTS:
        raise JobError(f"slots must be 1 to {MAX_SLOTS}, got {count}")
    with queuefile.editing(root) as doc:
        doc.cpu_slots = count


def park(root: str | Path, run: str) -> str:
    """Ask a live run to checkpoint and end as `parked` (its slot frees when it has exited)."""
    run_dir = Path(root) / run
    if check_run_name(run) or not run_dir.is_dir():
        raise JobError(f"no run named {run!r} in {root}")
    state = summarize_run(run_dir).state
    if state not in LIVE_STATES:
        raise JobError(f"run {run!r} is {state}, not running: nothing to park")
    try:
        run_control.send(run_dir, Park(), timeout=120.0)
    except ControlError as e:
        text = str(e)
        if "park" in text and ("does not take" in text or "unknown command" in text):
            raise JobError(
                f"run {run!r} cannot be parked: {text} (a script can be parked when it registered a "
                "checkpoint handler and resumes with nexus.init(resume=...))"
            ) from None
        raise JobError(f"could not park {run!r}: {text}") from None
    return f"parking {run}: it checkpoints and exits; nexus unpark {run} resumes it when a slot is free"


def unpark(root: str | Path, run: str, gpus: int = 1) -> Job:
    """Queue a parked run's resume at the front of the queue."""
    run_dir = Path(root) / run
    if check_run_name(run) or not run_dir.is_dir():
        raise JobError(f"no run named {run!r} in {root}")
    state = summarize_run(run_dir).state
    if state != PARKED:
        raise JobError(
            f"run {run!r} is {state}, not parked"
            + ("" if state in LIVE_STATES else f": nexus resume --run-dir {run_dir} restarts it")
        )
    queued = [j for j in queuefile.read(root).jobs if j.name == run and j.kind == "command"]
    if queued:  # a script the queue started: the same command again, which continues it (resume=)
        script = queued[-1]
        return add(
            root,
            "command",
            script.args,
            name=run,
            gpus=gpus,
            check=False,
            cwd=script.cwd,
            first=True,
            existing=True,
            sweep=script.sweep,
            values=script.values,
        )
    if not (run_dir / CHECKPOINTS_DIR / "latest").exists():
        raise JobError(
            f"run {run!r} has no engine checkpoint and was not started by the queue, so the queue "
            "does not know its command: start its script again yourself (it continues with resume=)"
        )
    return add(
        root, "resume", [], name=run, gpus=gpus, check=False, cwd=str(Path(root).resolve().parent), first=True
    )
