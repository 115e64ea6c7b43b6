"""`nexus sweep`: make a sweep's queued runs, or show one ranked (`nexus sweep show NAME`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from nexus_core.names import check_run_name, command_base, free_run_name
from nexus_core.text import clean_text
from nexus_tui.jobs import model, ops, queuefile
from nexus_tui.jobs.sweep import (
    SweepError,
    expand,
    fill,
    parse_axis,
    rank,
    run_name,
    sweep_values,
    varied_keys,
)


def sweep_table(
    root: Path, name: str
) -> tuple[list[str], list[tuple[str, dict[str, str], float | None, str, int]]]:
    """The varied keys and the ranked rows of sweep `name` (its jobs in the queue, their runs' state)."""
    from nexus_tui.documents.runs_index import summarize_run

    jobs = [j for j in queuefile.read(root).jobs if j.sweep == name and j.kind in ("train", "command")]
    if not jobs:
        raise ops.JobError(f"no sweep named {name!r} in the queue of {root}")
    newest: dict[str, model.Job] = {}
    for j in reversed(jobs):  # an unparked run once: its newest job
        newest.setdefault(j.name, j)
    jobs = [j for j in jobs if newest[j.name] is j]
    values = [j.values or sweep_values(j.args) for j in jobs]
    keys = varied_keys(values)
    rows = []
    for job, vs in zip(jobs, values, strict=False):
        run = root / job.name
        s = summarize_run(run) if run.is_dir() else None
        state = s.state if s is not None and s.state != "unknown" else job.state
        rows.append(
            (
                job.name,
                {k: vs.get(k, "") for k in keys},
                s.best_val_loss if s else None,
                state,
                s.step if s else 0,
            )
        )
    return keys, rank(rows)


def format_sweep(keys: list[str], rows: list[tuple[str, dict[str, str], float | None, str, int]]) -> str:
    head = ("#", "run", *keys, "best val", "state", "step")
    table = [head] + [
        (str(i + 1), r[0], *(r[1][k] for k in keys), "-" if r[2] is None else f"{r[2]:.4f}", r[3], str(r[4]))
        for i, r in enumerate(rows)
    ]
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    return (
        "\n".join("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=False)).rstrip() for t in table)
        + "\n"
    )


def _check_values(preset: str, fixed: list[str], value_sets: list[dict[str, str]]) -> None:
    """Every run's config, validated in-process by the core's own rules (torch-free, milliseconds a
    run), so a value the engine would refuse is said now, naming the run, not when its turn comes."""
    from nexus_core.config import apply_override, load_preset
    from nexus_core.errors import NexusError

    for values in value_sets:
        try:
            cfg = load_preset(preset)
            for text in [*fixed, *(f"{k}={v}" for k, v in values.items())]:
                apply_override(cfg, text)
            cfg.validate()
        except (NexusError, ValueError, TypeError) as e:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise ops.JobError(f"the run with {shown} would be refused: {e}") from None


def run_sweep_cli(args: argparse.Namespace, root: Path) -> int:
    from nexus_tui.jobs.runner import ensure_runner

    try:
        if args.show[:1] == ["show"]:
            if len(args.show) != 2:
                raise ops.JobError(
                    "nexus sweep show NAME, or nexus sweep --grid key=v1,v2 ... [-- COMMAND {key}]"
                )
            keys, rows = sweep_table(root, args.show[1])
            sys.stdout.write(clean_text(format_sweep(keys, rows), multiline=True))
            return 0
        template = args.show[1:] if args.show[:1] == ["--"] else list(args.show)
        value_sets = expand(
            [parse_axis(g, command=bool(template)) for g in args.grid],
            args.random,
            args.seed,
            zipped=args.zip,
        )
        base = (command_base(shlex.join(template)) or "command") if template else args.preset
        name = args.name or free_run_name(root, f"{base}-sweep")
        if err := check_run_name(name):
            raise ops.JobError(f"--name: {err}")
        if any(j.sweep == name for j in queuefile.read(root).jobs):
            raise ops.JobError(f"a sweep named {name!r} is already queued: pick another --name")
        made = []
        if template:
            commands = [
                fill(template, values) for values in value_sets
            ]  # every key used, before any is queued
            for i, (values, argv) in enumerate(zip(value_sets, commands, strict=True)):
                made.append(
                    ops.add(
                        root,
                        "command",
                        argv,
                        run_name(name, values, i),
                        args.gpus,
                        priority=args.priority,
                        sweep=name,
                        check=i == 0,
                        values=values,
                    )
                )
        else:
            _check_values(args.preset, args.set, value_sets)
            fixed = [a for kv in args.set for a in ("--set", kv)]
            steps = ["--steps", str(args.steps)] if args.steps else []
            for i, values in enumerate(value_sets):
                swept = [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
                job_args = ["--preset", args.preset, *steps, *fixed, *swept]
                # The engine checks the first set (every key and the preset); the rest differ only in
                # values, each checked by the core's rules above and by the engine when it starts.
                made.append(
                    ops.add(
                        root,
                        "train",
                        job_args,
                        run_name(name, values, i),
                        args.gpus,
                        priority=args.priority,
                        sweep=name,
                        check=i == 0,
                    )
                )
        print(
            clean_text(
                f"sweep {name}: queued {len(made)} runs ({', '.join(j.name for j in made[:6])}"
                f"{', ...' if len(made) > 6 else ''}); nexus sweep show {name} ranks them"
            )
        )
        if not args.no_start:
            ensure_runner(root)
        return 0
    except (SweepError, ops.JobError, queuefile.QueueError) as e:
        print(clean_text(f"error: {e}"), file=sys.stderr)
        return 2
