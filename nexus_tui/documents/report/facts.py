"""One run folder read into plain data the sections draw from: records folded the way the dashboard
folds them, so a report and the screen never disagree about a run.

The file is read the dashboard's way (history/reader.py: the columnar cache where it matches, the
rest decoded as columns): the metric records, nearly all of a long run, are folded as columns
(metric_table.py); the few others (hello, eval, ckpt, sample, alert, state, log) one by one.
A resumed run appends to the same metrics file, and a resume from an earlier checkpoint re-trains
steps the file already holds; as in `MetricStore`, the newer records replace the stretch they re-draw
(everything past the resume's start step). Every field is type-checked: the folder is untrusted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus_core.families import migrate
from nexus_core.protocol import LOG_FILE
from nexus_core.recordtypes import Metric
from nexus_core.runfolder import tail_bytes
from nexus_core.units import as_int, as_num
from nexus_tui.documents.report.metric_table import MetricFold, MetricTable
from nexus_tui.documents.runs_index import RunSummary, summarize_run
from nexus_tui.history.columnar.columns import MetricBlock, Piece
from nexus_tui.history.reader import History, read_pieces, reduce_pieces


@dataclass
class Event:
    """A line of the run's timeline: where in the run it happened, and what."""

    step: int
    time: float | None
    kind: str
    text: str


@dataclass
class RunFacts:
    """What a report says about one run, unformatted."""

    name: str
    run_dir: Path
    summary: RunSummary
    pieces: list[Piece] = field(default_factory=list, repr=False)
    """Every whole record of the file in order, metric records as columns (the comparison folds
    them into a MetricStore)."""
    hellos: list[dict[str, Any]] = field(default_factory=list)
    metrics: MetricTable = field(default_factory=MetricTable)
    """The metric record that stands for each step (a re-trained step: the newest), as columns."""
    evals: dict[int, dict[str, Any]] = field(default_factory=dict)
    ckpts: dict[int, dict[str, Any]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    decode_warnings: list[str] = field(default_factory=list)
    log_tail: str = ""

    @property
    def hello(self) -> dict[str, Any]:
        return self.hellos[-1] if self.hellos else {}

    @property
    def config(self) -> dict[str, Any]:
        """The run's config; one written before the family tables, migrated to them."""
        cfg = self.hello.get("config")
        return migrate(cfg) if isinstance(cfg, dict) else {}

    @property
    def total_steps(self) -> int:
        return as_int(self.hello.get("total_steps")) or self.summary.total_steps

    @property
    def last_step(self) -> int:
        """The furthest step the records reached (the status file can lag a killed run by a step)."""
        return max(self.metrics.max_step, self.summary.step)

    @property
    def finished(self) -> bool:
        return self.summary.state == "finished"

    def option(self, section: str, key: str) -> Any:
        """One value; `key` may be dotted into a sub-table ('model', 'transformer.mtp_heads')."""
        part: Any = self.config.get(section)
        for name in key.split("."):
            part = part.get(name) if isinstance(part, dict) else None
        return part

    def series(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(x, value) of a metric or eval field, in step order, finite values only."""
        if key not in ("val_loss", "val_ppl"):
            return self.metrics.series(key, x)
        xs, ys = [], []
        for step in sorted(self.evals):
            rec = self.evals[step]
            v, at = as_num(rec.get(key)), (step if x == "step" else as_num(rec.get(x)))
            if v is not None and at is not None and math.isfinite(v):
                xs.append(float(at))
                ys.append(v)
        return xs, ys


def _cut(facts: RunFacts, fold: MetricFold, after: int) -> None:
    """A resume from step `after`: what the file said past it was re-trained, so it no longer stands."""
    fold.cut(after)
    for table in (facts.evals, facts.ckpts):
        for step in [s for s in table if s > after]:
            del table[step]
    facts.samples = [s for s in facts.samples if (as_int(s.get("step")) or 0) <= after]


def _event_text(rec: dict[str, Any]) -> tuple[str, str] | None:
    kind = rec.get("type")
    if kind == "hello":
        start = as_int(rec.get("start_step")) or 0
        src = rec.get("resumed_from")
        return ("resume", f"resumed from {src} at step {start}") if start or src else ("start", "started")
    if kind == "state" and isinstance(rec.get("state"), str):
        reason = rec.get("reason") if isinstance(rec.get("reason"), str) else ""
        if rec["state"] in ("running", "starting", "checkpointing"):
            return None  # every start says so: the timeline keeps the states people act on
        return "state", rec["state"] + (f": {reason}" if reason else "")
    if kind == "alert":
        return f"alert {rec.get('kind')}", str(rec.get("text", ""))
    if kind == "log" and isinstance(rec.get("text"), str):
        level = rec.get("level") if rec.get("level") in ("warning", "error") else "info"
        text = rec["text"]
        if level == "info" and not text.startswith(("LR ramp", "rolled back")):
            return None  # the params/corpus line (the config says it), "resumed from" (the hello does)
        return f"log {level}", text
    return None


def load_facts(
    run_dir: Path, name: str | None = None, read: Callable[[Path], History] = read_pieces
) -> RunFacts:
    """Read and fold one run folder. Raises OSError when its metrics file cannot be read.
    `read`: how the file is read (history.read_each_record: record by record, to check the columns)."""
    history = read(run_dir)
    summary = summarize_run(run_dir, fold=lambda: reduce_pieces(history.pieces))
    facts = RunFacts(name=name or run_dir.name, run_dir=run_dir, summary=summary, pieces=history.pieces)
    facts.decode_warnings = history.warnings
    fold = MetricFold()
    step = 0
    for piece in history.pieces:
        if isinstance(piece, MetricBlock):
            if len(piece):
                step = fold.add_block(piece)
            continue
        metrics: list[Metric] = []  # a damaged stretch's metric records come as records: fold them in runs
        for rec in piece:
            if isinstance(rec, Metric):
                metrics.append(rec)
                step = rec.step
                continue
            if metrics:
                fold.add_records(metrics)
                metrics = []
            step = _fold(facts, fold, rec, step)
        if metrics:
            fold.add_records(metrics)
    facts.metrics = fold.table()
    if facts.summary.state == "crashed" and not any(e.text.startswith("crashed") for e in facts.events):
        facts.events.append(
            Event(
                facts.last_step,
                facts.summary.updated,
                "state",
                f"crashed: {facts.summary.note or 'no closing record'}",
            )
        )
    facts.log_tail = _log_tail(run_dir / LOG_FILE)
    return facts


def _fold(facts: RunFacts, fold: MetricFold, rec: Any, step: int) -> int:
    """One record other than a metric into the facts; returns the step the run is at after it."""
    kind = rec.get("type")
    at = as_int(rec.get("step"))
    if kind == "hello":
        start = as_int(rec.get("start_step")) or 0
        # A fresh start in a used folder (deleted and re-created under the same name) replaces it
        # all, like the store's restart; a resume replaces what lies past its start step.
        _cut(facts, fold, start if start or rec.get("resumed_from") or not facts.hellos else -1)
        facts.hellos.append(rec)
        step = start
    elif kind in ("eval", "ckpt", "sample") and at is not None:
        if kind == "sample":
            if isinstance(rec.get("text"), str):
                facts.samples.append(rec)
        else:
            {"eval": facts.evals, "ckpt": facts.ckpts}[kind][at] = rec
    elif kind == "alert":
        facts.alerts.append(rec)
    if kind == "state" and at is not None:
        step = at
    event = _event_text(rec)
    if event is not None:
        facts.events.append(
            Event(at if kind == "alert" and at is not None else step, as_num(rec.get("time")), *event)
        )
    return step


def _log_tail(path: Path, lines: int = 12, limit: int = 1 << 16) -> str:
    """The last lines of engine.log (read from its end: a long run's log can be large)."""
    raw = tail_bytes(path, limit)  # regular files only: a FIFO log never hangs a report
    if raw is None:
        return ""
    data = raw.decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])
