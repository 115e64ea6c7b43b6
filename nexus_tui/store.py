"""Every run's history as the widgets see it, built from engine records. No screen, no threads.

The same run can be fed twice (its pipe and its metrics.msgpack file, or a re-scan after the app
restarts), records can arrive with gaps (a full pipe drops records; the file backfills them later),
and a resumed run appends to the same file with steps that may go backwards. So the store
deduplicates by each record's "seq" (its index in the file), inserts late backfills where they
belong, and cuts a series back when a newer record restarts it from an earlier step. Records come
from another process and maybe another version: every field is read with a type check and garbage
is skipped, never raised.
"""

from __future__ import annotations

import bisect
import math
import signal
import threading
from array import array
from pathlib import Path
from typing import Any

from engine.protocol import CRASHED, FINISHED, LIVE_STATES, STARTING, STATES, STOPPED
from nexus_tui.runview import (
    EVAL_KEYS,
    MAX_ALERTS,
    MAX_SAMPLES,
    METRIC_KEYS,
    REAL_TYPES,
    SERIES_KEYS,
    X_AXES,
    RunView,
    SeqFilter,
    Series,
    as_int,
    as_num,
)

__all__ = ["MetricStore", "RunView", "Series", "SERIES_KEYS", "X_AXES"]


class MetricStore:
    """All runs' views. `ingest` is the only writer; it returns what changed so the app redraws only
    that. A lock makes it safe to call from reader threads, though the app normally calls it on its
    own thread (callbacks are forwarded as messages)."""

    def __init__(self) -> None:
        self._runs: dict[str, RunView] = {}
        self._seqs: dict[str, SeqFilter] = {}
        self._cuts: dict[tuple[str, str], tuple[int, float]] = {}
        """(run, series) -> (seq, step) of the last resume cut: older backfills past it are stale."""
        self._hellos: dict[str, dict[int, tuple[Any, Any]]] = {}
        """run -> seq -> (pid, time) of each hello ingested: who wrote that seq, to spot a new run."""
        self._lock = threading.RLock()

    # -- reading ---------------------------------------------------------------------------------

    def runs(self) -> list[RunView]:
        with self._lock:
            return list(self._runs.values())

    def get(self, name: str) -> RunView | None:
        return self._runs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._runs

    def series(self, name: str, key: str, x: str = "step") -> tuple[array, array]:
        """Copies of (x column, values) of one series; empty if the run or series is unknown.
        Copies, so a worker thread can downsample them while new records keep arriving."""
        with self._lock:
            run = self._runs.get(name)
            s = run.series.get(key) if run else None
            if s is None or x not in X_AXES:
                return array("d"), array("d")
            return _copy(s.column(x)), _copy(s.value)

    # -- writing ---------------------------------------------------------------------------------

    def _view(self, name: str, run_dir: str | Path | None = None) -> RunView:
        run = self._runs.get(name)
        if run is None:
            run = RunView(name=name, run_dir=Path(run_dir) if run_dir else None, color=len(self._runs))
            self._runs[name] = run
            self._seqs[name] = SeqFilter()
        elif run.run_dir is None and run_dir:
            run.run_dir = Path(run_dir)
        return run

    def ingest(self, run_name: str, run_dir: str | Path | None, records: list[Any]) -> set[str]:
        """Fold records into the run's view; returns the kinds that changed (empty if all were seen)."""
        changed: set[str] = set()
        with self._lock:
            run = self._view(run_name, run_dir)
            seqs = self._seqs[run_name]
            for rec in records if isinstance(records, list) else ():
                if not isinstance(rec, dict):
                    continue
                seq = as_int(rec.get("seq"))
                if seq is not None and seq < 0:
                    seq = None  # not from the file (the engine's "never started" note): no dedup
                late = False
                if seq is not None and rec.get("type") == "hello" and seqs.seen(seq) and self._restarted(run, seq, rec):
                    run, seqs = self._reset(run_name), self._seqs[run_name]
                    changed.add("hello")
                if seq is not None:
                    if not seqs.first_time(seq):
                        continue
                    late = seq < seqs.max_seen
                rtype = rec.get("type")
                handler = _HANDLERS.get(rtype) if isinstance(rtype, str) else None
                if handler is None:
                    continue
                t = as_num(rec.get("time"))
                if t is not None:
                    run.updated = t if run.updated is None else max(run.updated, t)
                kind = handler(self, run, rec, seq, late)
                if kind:
                    changed.add(kind)
        return changed

    def ingest_batch(self, run_name: str, run_dir: str | Path | None, pieces: list[Any]) -> set[str]:
        """Fold a decoded batch (metric columns and record lists, in stream order) into the run:
        the same result as `ingest` of the same records, a block of metric columns at a time."""
        from nexus_tui.bulk import ingest_pieces

        with self._lock:
            return ingest_pieces(self, run_name, run_dir, pieces)

    def _restarted(self, run: RunView, seq: int, hello: dict[str, Any]) -> bool:
        """A hello at an already used seq from another process, starting at step 0: a new run in a
        folder deleted and recreated under the same name (its seqs restart at 0). Not a replay of the
        same file (the hello seen at that seq has the same pid and time), nor a resume (it appends
        with new seqs and a start_step past 0)."""
        if as_int(hello.get("start_step")):
            return False
        seen = self._hellos.get(run.name, {}).get(seq)
        return seen is not None and seen != _identity(hello)

    def _reset(self, name: str) -> RunView:
        """Start the run's view over (its folder was deleted and a new run took the name), keeping its
        colour. The Series objects are emptied, not replaced, so their `edits` counter tells chart
        caches that extend by appending to start over."""
        old = self._runs[name]
        run = RunView(name=name, run_dir=old.run_dir, color=old.color)
        for key, s in old.series.items():
            s.cut_from(-math.inf)
            run.series[key] = s
        self._runs[name] = run
        self._seqs[name] = SeqFilter()
        self._hellos.pop(name, None)
        for key in [k for k in self._cuts if k[0] == name]:
            del self._cuts[key]
        return run

    def mark_exited(self, name: str, exit_code: int | None, log_tail: str = "") -> set[str]:
        """The run's process ended (exit_code None: it vanished and nobody saw its status). A run that
        had not said it finished becomes crashed, with the tail of its log to show why."""
        with self._lock:
            run = self._view(name)
            run.exit_code = exit_code
            if exit_code == -signal.SIGTERM:
                # SIGTERM is a stop request (the engine's own handler checkpoints and exits 0); dying of
                # it means it came before the handler was up, e.g. the dashboard's quit-with-stop
                # while the engine still imported torch. Nothing was lost: stopped, not crashed.
                if run.state in LIVE_STATES:
                    early = not run.hello  # no hello yet: it never got to train
                    run.state = STOPPED
                    run.reason = "stopped by SIGTERM" + (" before training started" if early else "")
                return {"state"}
            if exit_code == 0 and run.state in LIVE_STATES:
                done = run.total_steps > 0 and run.step >= run.total_steps
                run.state, run.reason = (FINISHED if done else STOPPED), "process exited"
            elif exit_code != 0 and (run.state in LIVE_STATES or exit_code is not None):
                was_live = run.state in LIVE_STATES
                run.state = CRASHED
                run.reason = _exit_text(exit_code)
                run.crash_tail = log_tail
                if was_live or not any(a.get("kind") == "crash" for a in run.alerts[-3:]):
                    self._add_alert(run, {"type": "alert", "kind": "crash", "step": run.step, "text": run.reason})
                return {"state", "alerts"}
            return {"state"}

    def warn(self, name: str, text: str) -> set[str]:
        """A problem the dashboard found about a run (garbage in its stream, a failed command)."""
        with self._lock:
            run = self._view(name)
            run.logs.append({"type": "log", "level": "warning", "text": str(text), "time": None})
            return {"logs"}

    # -- one handler per record type -------------------------------------------------------------

    def _on_hello(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        if seq is not None:
            self._hellos.setdefault(run.name, {})[seq] = _identity(rec)
        if late:
            return ""  # an old hello backfilled after a newer one: the newer describes the run
        run.hello = rec
        if isinstance(rec.get("config"), dict):
            run.config = rec["config"]
        for attr, value in (("model", rec.get("model")), ("device", rec.get("device"))):
            if isinstance(value, str):
                setattr(run, attr, value)
        run.pid = as_int(rec.get("pid"))
        run.params = as_int(rec.get("params"))
        total = as_int(rec.get("total_steps"))
        if total is not None and total > 0:
            run.total_steps = total
        run.start_step = max(0, as_int(rec.get("start_step")) or 0)
        run.state, run.reason, run.exit_code, run.crash_tail = STARTING, "", None, ""
        run._rate.clear()
        t = as_num(rec.get("time"))
        if run.started is None and t is not None:
            run.started = t
        return "hello"

    def _on_metric(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        # The hot path (a million-step replay): plain type() checks instead of helper calls.
        step = rec.get("step")
        if type(step) not in REAL_TYPES:
            return ""
        step = float(step)
        tokens = rec.get("tokens")
        tokens = float(tokens) if type(tokens) in REAL_TYPES else 0.0
        t = rec.get("time")
        t = float(t) if type(t) in REAL_TYPES else 0.0
        values = [(k, float(v)) for k in METRIC_KEYS if type(v := rec.get(k)) in REAL_TYPES]
        if late:
            added = False
            for key, value in values:
                added |= self._add_point(run, key, seq, late, step, tokens, t, value)
            return "metrics" if added else ""
        for key, value in values:
            s = run.series[key]
            if s.step and step <= s.step[-1]:
                self._add_point(run, key, seq, late, step, tokens, t, value)
            else:
                s.append(step, tokens, t, value)
        got = dict(values)
        run.metric = rec
        run.step, run.tokens = int(step), int(tokens)
        run.loss, run.ce, run.lr, run.tok_s = got.get("loss"), got.get("ce"), got.get("lr"), got.get("tok_s")
        rate = run._rate
        if rate and step < rate[-1][1]:
            rate.clear()  # resumed from an earlier step: the old speed does not apply
        if t:
            rate.append((t, step))
        if run.state not in LIVE_STATES and run.exit_code is None:
            run.state = "running"  # a metric after a final state: the run was resumed
        elif run.state == STARTING:
            run.state = "running"
        return "metrics"

    def _on_eval(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        step = as_num(rec.get("step"))
        if step is None:
            return ""
        tokens = as_num(rec.get("tokens")) or 0.0
        t = as_num(rec.get("time")) or 0.0
        for key in EVAL_KEYS:
            value = as_num(rec.get(key))
            if value is not None:
                self._add_point(run, key, seq, late, step, tokens, t, value)
        val = as_num(rec.get("val_loss"))
        if val is not None and math.isfinite(val):
            if not late:
                run.val_loss = val
            if run.best_val_loss is None or val < run.best_val_loss:
                run.best_val_loss = val
        return "eval"

    def _on_sample(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        if not isinstance(rec.get("text"), str):
            return ""
        _bounded_append(run.samples, rec, MAX_SAMPLES, late)
        return "samples"

    def _on_ckpt(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        if not isinstance(rec.get("path"), str):
            return ""
        _bounded_append(run.ckpts, rec, 10_000, late)
        return "ckpt"

    def _on_state(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        state = rec.get("state")
        if late or state not in STATES:
            return ""
        run.state = state
        run.reason = rec.get("reason") if isinstance(rec.get("reason"), str) else ""
        step = as_int(rec.get("step"))
        if step is not None:
            run.step = step
        code = as_int(rec.get("exit_code"))
        if code is not None:
            run.exit_code = code
        return "state"

    def _on_log(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        if not isinstance(rec.get("text"), str):
            return ""
        run.logs.append(rec)
        return "logs"

    def _on_alert(self, run: RunView, rec: dict[str, Any], seq: int | None, late: bool) -> str:
        if not isinstance(rec.get("text"), str) and not isinstance(rec.get("kind"), str):
            return ""
        self._add_alert(run, rec)
        return "alerts"

    def _add_alert(self, run: RunView, rec: dict[str, Any]) -> None:
        run.alerts.append(rec)
        del run.alerts[:-MAX_ALERTS]

    def _add_point(
        self, run: RunView, key: str, seq: int | None, late: bool, step: float, tokens: float, t: float, value: float
    ) -> bool:
        """Append in order; a record newer than the series' last one with a step at or before its last
        step means a resume re-drawing that stretch, so the old points from there on are dropped."""
        s = run.series[key]
        if late:
            cut = self._cuts.get((run.name, key))
            if cut is not None and seq is not None and seq < cut[0] and step >= cut[1]:
                return False  # a backfilled point of a stretch that a resume has since replaced
            s.insert_sorted(step, tokens, t, value)
            return True
        if s.step and step <= s.step[-1]:
            s.cut_from(step)
            if seq is not None:
                self._cuts[(run.name, key)] = (seq, step)
        s.append(step, tokens, t, value)
        return True


def _bounded_append(items: list[dict[str, Any]], rec: dict[str, Any], limit: int, late: bool) -> None:
    if late:
        steps = [as_num(r.get("step")) or 0.0 for r in items]
        items.insert(bisect.bisect_right(steps, as_num(rec.get("step")) or 0.0), rec)
    else:
        items.append(rec)
    del items[:-limit]


def _copy(column: Any) -> array:
    out = array("d")
    out.frombytes(column.view.tobytes())
    return out


def _identity(hello: dict[str, Any]) -> tuple[Any, Any]:
    """Which process wrote a hello: its pid and start time (a pid alone can be reused)."""
    return as_int(hello.get("pid")), as_num(hello.get("time"))


def _exit_text(code: int | None) -> str:
    if code is None:
        return "the process is gone (killed, or the machine restarted)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with status {code}"


_HANDLERS = {
    "hello": MetricStore._on_hello,
    "metric": MetricStore._on_metric,
    "eval": MetricStore._on_eval,
    "sample": MetricStore._on_sample,
    "ckpt": MetricStore._on_ckpt,
    "state": MetricStore._on_state,
    "log": MetricStore._on_log,
    "alert": MetricStore._on_alert,
}
