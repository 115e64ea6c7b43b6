"""`nexus queue|park|unpark|sweep`: the command line of the jobs folder (textual-free, torch-free).
Every refusal is one `error:` line and exit 2; text from a queue or run is cleaned before it prints."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_core.text import clean_text

if TYPE_CHECKING:  # the parsers are built on every `nexus` start: the jobs code loads only when used
    from nexus_tui.jobs.model import Job, QueueDoc

JOB_COMMANDS = ("queue", "park", "unpark", "sweep")


def _root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", dest="sub_root", default=None, help="folder holding the runs (default: ./runs)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The jobs commands under `nexus`."""
    queue = sub.add_parser(
        "queue",
        help="run jobs when a GPU (or CPU slot) is free: add, ls, hold, release, cancel, top, priority, slots, run",
    )
    qsub = queue.add_subparsers(dest="queue_command", required=True)
    add = qsub.add_parser(
        "add",
        help="queue a run: nexus queue add [--gpus N] [--after RUN] -- train --preset tiny ... | -- python train.py ...",
    )
    add.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="GPUs it needs (N > 1: one run over N ranks); CPU slots on a box without GPUs",
    )
    add.add_argument("--after", default="", metavar="RUN", help="start only after this run has ended")
    add.add_argument("--name", default="", help="the run's name (default: after the preset or script)")
    add.add_argument(
        "--priority", type=int, default=0, help="higher starts first, and may park a lower running job"
    )
    add.add_argument("--hold", action="store_true", help="queue it held (nexus queue release starts it)")
    add.add_argument("--no-start", action="store_true", help="do not start a queue runner now")
    _root_arg(add)
    add.add_argument("job", nargs=argparse.REMAINDER, help="after --: `train ARGS` (the engine) or a command")
    ls = qsub.add_parser("ls", help="list the queue")
    _root_arg(ls)
    for verb, text in (
        ("hold", "keep waiting jobs from starting"),
        ("release", "let held jobs start"),
        ("cancel", "take waiting jobs out of the queue"),
        ("top", "put jobs before every other"),
    ):
        p = qsub.add_parser(verb, help=text)
        p.add_argument("jobs", nargs="+", metavar="JOB", help="job ids or run names")
        _root_arg(p)
    prio = qsub.add_parser(
        "priority", help="give jobs a priority (higher first; may park lower running jobs)"
    )
    prio.add_argument("priority", type=int)
    prio.add_argument("jobs", nargs="+", metavar="JOB")
    _root_arg(prio)
    slots = qsub.add_parser("slots", help="how many jobs run at once on a box without GPUs (default 1)")
    slots.add_argument("count", type=int)
    _root_arg(slots)
    run = qsub.add_parser("run", help="work through the queue here, in the foreground (headless)")
    run.add_argument("--exit-when-idle", action="store_true", help="exit once nothing is queued or running")
    _root_arg(run)
    park = sub.add_parser(
        "park", help="checkpoint a run and end its process, freeing its GPU (nexus unpark resumes it)"
    )
    park.add_argument("run", metavar="RUN")
    _root_arg(park)
    unpark = sub.add_parser("unpark", help="resume a parked run exactly, as soon as a slot is free")
    unpark.add_argument("run", metavar="RUN")
    unpark.add_argument("--gpus", type=int, default=1)
    unpark.add_argument("--no-start", action="store_true", help="do not start a queue runner now")
    _root_arg(unpark)
    add_sweep_parser(sub)


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="queue a grid (or random draws) of runs: nexus sweep --preset tiny --grid optim.lr=1e-3,3e-3; nexus sweep show NAME",
    )
    p.add_argument(
        "show",
        nargs="*",
        metavar="show NAME | -- COMMAND",
        help="`show NAME` ranks a sweep's runs by best val loss; after --, a command whose {key} each --grid fills",
    )
    p.add_argument("--preset", default="tiny")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2|KEY=LO:HI",
        help="a swept key (repeat for a grid)",
    )
    p.add_argument(
        "--random", type=int, default=0, metavar="N", help="N random draws instead of the whole grid"
    )
    p.add_argument(
        "--zip", action="store_true", help="a list, not a grid: the i-th values of every --grid together"
    )
    p.add_argument("--seed", type=int, default=0, help="the random draws' seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed for every run")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--name", default="", help="the sweep's name (default: PRESET-sweep-N)")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--no-start", action="store_true", help="do not start a queue runner now")
    _root_arg(p)


def _age(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    d = max(0.0, now - t)
    return f"{d:.0f}s" if d < 120 else f"{d / 60:.0f}m" if d < 7200 else f"{d / 3600:.1f}h"


def format_queue(doc: QueueDoc, now: float | None = None) -> str:
    """The queue as a table: waiting jobs in the order they start, then running, then ended."""
    from nexus_tui.jobs.model import sort_key

    now = time.time() if now is None else now
    waiting = sorted((j for j in doc.jobs if j.waiting), key=sort_key)
    active = [j for j in doc.jobs if j.active]
    ended = [j for j in doc.jobs if not (j.waiting or j.active)][-20:]
    rows = [("id", "run", "state", "slots", "prio", "after", "kind", "since", "outcome")]
    for j in [*active, *waiting, *ended]:
        since = j.ended if j.ended else j.started if j.started else j.added
        rows.append(
            (
                str(j.id),
                j.name,
                j.state,
                ",".join(map(str, j.devices)) if j.active else str(j.gpus),
                str(j.priority),
                j.after or "-",
                j.kind,
                _age(since, now),
                j.outcome or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    return "\n".join(lines) + f"\n{len(waiting)} waiting, {len(active)} running; cpu slots {doc.cpu_slots}\n"


def _describe(job: Job) -> str:
    return f"job {job.id}: {job.name} ({job.state})"


def _job_from(argv: list[str]) -> tuple[str, list[str]]:
    from nexus_tui.jobs import ops

    argv = argv[1:] if argv[:1] == ["--"] else argv
    if not argv:
        raise ops.JobError("give what to run after --: `train --preset tiny ...` or a command")
    if argv[0] == "train":
        return "train", argv[1:]
    return "command", argv


def run_cli(args: argparse.Namespace, root: Path) -> int:
    """Carry out a jobs command; 0, or 2 with one `error:` line."""
    from nexus_tui.jobs import ops, queuefile
    from nexus_tui.jobs.runner import ensure_runner, run_forever

    try:
        if args.command == "park":
            print(clean_text(ops.park(root, args.run)))
            return 0
        if args.command == "unpark":
            job = ops.unpark(root, args.run, args.gpus)
            print(clean_text(f"queued {_describe(job)} at the front of the queue"))
            if not args.no_start:
                ensure_runner(root)
            return 0
        if args.command == "sweep":
            from nexus_tui.jobs.sweep_cli import run_sweep_cli

            return run_sweep_cli(args, root)
        verb = args.queue_command
        if verb == "add":
            kind, job_args = _job_from(args.job)
            job = ops.add(root, kind, job_args, args.name, args.gpus, args.after, args.priority)  # type: ignore[arg-type]
            if args.hold:
                ops.hold(root, [str(job.id)])
            print(clean_text(f"queued {_describe(job)}"))
            if not args.no_start and not args.hold:
                ensure_runner(root)
            return 0
        if verb == "ls":
            sys.stdout.write(clean_text(format_queue(queuefile.read(root)), multiline=True))
            return 0
        if verb == "run":
            from nexus_tui.jobs.notify import notifier
            from nexus_tui.jobs.runner import _print_event

            return run_forever(root, args.exit_when_idle, notifier(_print_event))
        if verb == "slots":
            ops.set_slots(root, args.count)
            print(f"cpu slots: {args.count}")
            return 0
        if verb == "priority":
            jobs = ops.set_priority(root, args.jobs, args.priority)
        else:
            jobs = {"hold": ops.hold, "release": ops.release, "cancel": ops.cancel, "top": ops.top}[verb](
                root, args.jobs
            )
        for job in jobs:
            print(clean_text(_describe(job)))
        if verb in ("release", "top", "priority"):
            ensure_runner(root)
        return 0
    except (ops.JobError, queuefile.QueueError) as e:
        print(clean_text(f"error: {e}"), file=sys.stderr)
        return 2
