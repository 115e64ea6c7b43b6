"""Run folders for tests: written with the engine's own writer (so they are what a reader meets), a
pid known to be dead, and a byte snapshot of a folder to prove nothing was overwritten."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nexus_core.protocol import METRICS_FILE, RecordWriter, write_status
from support.records import evaluation, finished, hello, metric


def write_run(
    run_dir: Path, records: Iterable[dict[str, Any]], status: dict[str, Any] | None = None
) -> list[dict]:
    """Append records to run_dir's metrics file (creating the folder) and, if given, write its status
    file; returns the records as written (with `seq` and `time`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = RecordWriter(run_dir / METRICS_FILE)
    try:
        written = [writer.write(dict(rec)) for rec in records]
    finally:
        writer.close()
    if status is not None:
        write_status(run_dir, status)
    return written


def write_finished(run_dir: Path, steps: int, spike_at: int = 1234, eval_every: int = 500) -> list[dict]:
    """A finished run with a smooth falling loss, one spike and an eval every `eval_every` steps
    (about 130 bytes a step: 8,000 steps make a file long enough for a columnar cache)."""
    records = [hello(run_dir.name, steps)]
    for step in range(1, steps + 1):
        loss = 2.0 + 1.0 / math.sqrt(step) + (1.5 if step == spike_at else 0.0)
        records.append(metric(step, loss, tokens=step * 4096, lr=3e-4, gnorm=0.5, tok_s=30000.0, mem=1000))
        if step % eval_every == 0:
            records.append(evaluation(step, 2.2, tokens=step * 4096, val_ppl=9.0))
    records.append(finished(steps))
    return write_run(
        run_dir, records, status={"pid": 1, "state": "finished", "step": steps, "total_steps": steps}
    )


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped: no process has it (until the kernel reuses it)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (symlinks as their target text), to prove nothing was overwritten.
    engine.lock is left out: it holds no run data, only the pid of the last engine that took the
    folder (a refused `resume` takes it before it finds the checkpoint bad)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if rel == "engine.lock":
            continue
        if p.is_symlink():
            out[rel] = os.readlink(p).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out
