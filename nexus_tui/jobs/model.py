"""The queue's typed shape: one `Job` per queued run, one `QueueDoc` per runs folder.

Every field is typed for msgspec, so a damaged or planted file fails to decode in one line instead
of reaching the runner; `doc_problem` then holds it to the rules types cannot say (names, sizes)."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from nexus_core.names import check_run_name

QUEUED: Final = "queued"
HELD: Final = "held"
RUNNING: Final = "running"
PARKING: Final = "parking"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
PARKED: Final = "parked"
JobState = Literal["queued", "held", "running", "parking", "done", "failed", "cancelled", "parked"]
WAITING = frozenset({QUEUED, HELD})
"""Not started yet: these can be reordered, held, released and cancelled."""
ACTIVE = frozenset({RUNNING, PARKING})
"""Holding slots: a process was started for them and has not been seen to end."""
ENDED = frozenset({DONE, FAILED, CANCELLED, PARKED})

Kind = Literal["train", "resume", "command"]
"""train: `engine train ARGS` into a new run; resume: `engine resume` of an existing run (unpark);
command: any program using the reporter (`import nexus`), no shell."""

MAX_JOBS = 4096
MAX_ARGS = 512
MAX_ARG_CHARS = 4096
MAX_SLOTS = 64


class Job(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One queued run. `args`: train: the engine's `train` arguments without --run-dir/--device (the
    queue picks those); resume: extra `resume` arguments; command: the argv (no shell)."""

    id: int
    name: str
    kind: Kind
    args: list[str]
    cwd: str
    gpus: int = 1
    """Slots it needs: GPUs on a GPU box (N > 1: one run over N ranks), else CPU slots."""
    after: str = ""
    """Start only once this run has ended (any way), '' for no such wait."""
    priority: int = 0
    order: float = 0.0
    """Position among its priority (lower first); `top` puts a job before all others."""
    state: JobState = QUEUED
    pid: int | None = None
    devices: list[int] = []
    """The GPU indices (or CPU slot numbers) it holds while running."""
    device: str = ""
    """What it was started on (cuda:1, cuda, cpu)."""
    added: float = 0.0
    started: float | None = None
    ended: float | None = None
    outcome: str = ""
    """How the run ended (its state: finished, stopped, parked, crashed...) or why it never started."""
    sweep: str = ""
    """The sweep it belongs to ('' for none)."""
    values: dict[str, str] = {}
    """A command sweep's values for this job (a train sweep's are its `--set` arguments)."""

    @property
    def waiting(self) -> bool:
        return self.state in WAITING

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


class QueueDoc(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole queue file. `owner` is the uid that wrote it: a file claiming anyone else is refused."""

    version: int = 1
    owner: int
    next_id: int = 1
    cpu_slots: int = 1
    """How many jobs run at once on a box without GPUs."""
    jobs: list[Job] = []


def sort_key(job: Job) -> tuple[int, float, int]:
    """The order jobs start in: higher priority first, then position, then when they were added."""
    return (-job.priority, job.order, job.id)


def doc_problem(doc: QueueDoc) -> str:
    """'' when the decoded queue keeps the rules types cannot state, else one line saying which."""
    if doc.version != 1:
        return f"it is version {doc.version}; this Nexus reads version 1"
    if not 1 <= doc.cpu_slots <= MAX_SLOTS:
        return f"cpu_slots must be 1 to {MAX_SLOTS}, got {doc.cpu_slots}"
    if len(doc.jobs) > MAX_JOBS:
        return f"it holds {len(doc.jobs)} jobs; at most {MAX_JOBS}"
    ids = set()
    for job in doc.jobs:
        if job.id in ids or job.id <= 0 or job.id >= doc.next_id:
            return f"job id {job.id} is repeated or out of range"
        ids.add(job.id)
        if err := check_run_name(job.name):
            return f"job {job.id}: {err}"
        if job.after and (err := check_run_name(job.after)):
            return f"job {job.id} waits for a bad name: {err}"
        if not 1 <= job.gpus <= MAX_SLOTS:
            return f"job {job.id} needs {job.gpus} slots; 1 to {MAX_SLOTS}"
        if len(job.args) > MAX_ARGS or any(len(a) > MAX_ARG_CHARS or "\0" in a for a in job.args):
            return f"job {job.id}'s arguments are too many, too long or hold a NUL"
        if job.kind == "command" and not job.args:
            return f"job {job.id} is a command with no program"
        if len(job.values) > MAX_ARGS or any(len(k) + len(v) > MAX_ARG_CHARS for k, v in job.values.items()):
            return f"job {job.id}'s sweep values are too many or too long"
        if "\0" in job.cwd or len(job.cwd) > MAX_ARG_CHARS:
            return f"job {job.id}'s working folder is not a path"
    return ""
