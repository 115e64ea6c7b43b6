"""Every run's history as the widgets see it, built from engine records. No screen, no threads.

The same run can be fed twice (its pipe and its metrics.msgpack file, or a re-scan after the app
restarts), records can arrive with gaps (a full pipe drops records; the file backfills them later),
and a resumed run appends to the same file with steps that may go backwards. So the store
deduplicates by each record's "seq" (its index in the file), inserts late backfills where they
belong, and cuts a series back when a newer record restarts it from an earlier step. Records arrive
typed (nexus_core.recordtypes, checked once by the decoder); the run's standing (state, step, best
val, ...) is folded by the core's one reducer, RunState.apply, which RunView extends.
Every string a record carries (names, samples, log and alert text, config values, hello fields)
is cleaned of escape sequences and control characters here, once, on the way in (`clean_record`,
with nexus_core's `clean_text`): the widgets never see raw run text (docs/SECURITY.md).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import signal
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from nexus_core.recordtypes import (
    Alert,
    Ckpt,
    Eval,
    Hello,
    Log,
    Metric,
    Record,
    Sample,
    State,
    to_record,
)
from nexus_core.schema import ALERT, CKPT, CRASHED, EVAL, HELLO, LOG, MEDIA_TYPES, METRIC, SAMPLE, STATE
from nexus_core.state import Exited, Launched, derived_tok_s
from nexus_core.text import clean_data, clean_text
from nexus_tui.history.bulk import ingest_pieces
from nexus_tui.history.changes import Changes
from nexus_tui.history.runview import (
    MAX_ALERTS,
    MAX_EXTRA_SERIES,
    MAX_MEDIA,
    MAX_SAMPLES,
    MediaRecord,
    RunView,
    SeqFilter,
    Series,
)
from nexus_tui.history.series_keys import EVAL_KEYS, METRIC_KEYS, SERIES_KEYS, X_AXES

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

    def ingest(self, run_name: str, run_dir: str | Path | None, records: list[Any]) -> Changes:
        """Fold records into the run's view; returns what changed (empty if all were seen): the kinds,
        and the samples, logs and alerts it added (`Changes`).
        Records are typed (RecordDecoder made them); a plain map is checked into one first, and one
        that is not a valid record is skipped."""
        changed = Changes()
        with self._lock:
            run = self._view(run_name, run_dir)
            seqs = self._seqs[run_name]
            for item in records if isinstance(records, list) else ():
                rec = item if isinstance(item, Record) else to_record(item)
                if rec is None:
                    continue
                seq = rec.seq
                if seq is not None and seq < 0:
                    seq = None  # not from the file (the engine's "never started" note): no dedup
                late = False
                if (
                    seq is not None
                    and isinstance(rec, Hello)
                    and seqs.seen(seq)
                    and self._restarted(run, seq, rec)
                ):
                    run, seqs = self._reset(run_name), self._seqs[run_name]
                    changed.add("hello")
                if seq is not None:
                    if not seqs.first_time(seq):
                        continue
                    late = seq < seqs.max_seen
                handler = _HANDLERS.get(rec.type)
                if handler is None:
                    continue
                if not isinstance(rec, (Metric, Eval)):  # numbers only (typed); every other string is shown
                    rec = clean_record(rec)
                kind = handler(self, run, rec, seq, late)
                if kind:
                    changed.record(kind, rec)
        return changed

    def ingest_batch(
        self, run_name: str, run_dir: str | Path | None, pieces: list[Any], loading: float | None = None
    ) -> Changes:
        """Fold a decoded batch (metric columns and record lists, in stream order) into the run:
        the same result as `ingest` of the same records, a block of metric columns at a time.
        `loading`: how far a history read has got (sizes the columns once)."""
        with self._lock:
            return ingest_pieces(self, run_name, run_dir, pieces, loading)

    def _restarted(self, run: RunView, seq: int, hello: Hello) -> bool:
        """A hello at an already used seq from another process, starting at step 0: a new run in a
        folder deleted and recreated under the same name (its seqs restart at 0). Not a replay of the
        same file (the hello seen at that seq has the same pid and time), nor a resume (it appends
        with new seqs and a start_step past 0)."""
        if hello.start_step:
            return False
        seen = self._hellos.get(run.name, {}).get(seq)
        return seen is not None and seen != (hello.pid, hello.time)

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
        for cut in [k for k in self._cuts if k[0] == name]:
            del self._cuts[cut]
        return run

    def apply_event(self, name: str, event: Launched | Exited, run_dir: str | Path | None = None) -> Changes:
        """An event the dashboard saw itself (it launched the run, the run's process exited), folded
        by the same reducer as the records. A crash also becomes an alert."""
        with self._lock:
            run = self._view(name, run_dir)
            if isinstance(event, Exited) and event.log_tail:  # engine.log is run text too
                event = dataclasses.replace(event, log_tail=clean_text(event.log_tail, multiline=True))
            was_live = run.live
            kind = run.apply(event)
            if isinstance(event, Exited) and run.state == CRASHED and event.exit_code != -signal.SIGTERM:
                changed = Changes([kind] if kind else [])
                if was_live or not any(a.kind == "crash" for a in run.alerts[-3:]):
                    alert = Alert(kind="crash", step=run.step, text=run.reason, time=time.time())
                    self._add_alert(run, alert)
                    changed.record("alerts", alert)
                return changed
            return Changes([kind] if kind else [])

    # -- one handler per record type -------------------------------------------------------------

    def _on_hello(self, run: RunView, rec: Hello, seq: int | None, late: bool) -> str:
        if seq is not None:
            self._hellos.setdefault(run.name, {})[seq] = (rec.pid, rec.time)
        if not late:  # an old hello backfilled after a newer one changes nothing: the newer describes the run
            run._rate.clear()
        return run.apply(rec, late)

    def _on_metric(self, run: RunView, rec: Metric, seq: int | None, late: bool) -> str:
        # The hot path (a million-step replay): attributes, no checks (the decoder typed the record).
        step = float(rec.step)
        tokens = float(rec.tokens)
        t = rec.time or 0.0
        values = [(k, float(v)) for k in METRIC_KEYS if (v := getattr(rec, k)) is not None]
        if rec.tok_s is None and not late and (rate := derived_tok_s(run.metric, rec)) is not None:
            values.append(("tok_s", rate))  # a writer that counts tokens but not their rate
        if late:
            added = False
            for key, value in values:
                added |= self._add_point(run, key, seq, late, step, tokens, t, value)
            if rec.extra:
                added |= self._add_extras(run, rec, seq, late, tokens, t)
            return "metrics" if added else ""
        group = [run.series[k] for k, _ in values]
        if not (
            group
            and Series.append_shared(
                group, list(run.series.values()), step, tokens, t, [v for _, v in values]
            )
        ):
            for key, value in values:
                s = run.series[key]
                if s.step and step <= s.step[-1]:
                    self._add_point(run, key, seq, late, step, tokens, t, value)
                else:
                    s.append(step, tokens, t, value)
        if rec.extra:
            self._add_extras(run, rec, seq, late, tokens, t)
        window = run._rate
        if window and step < window[-1][1]:
            window.clear()  # resumed from an earlier step: the old speed does not apply
        if t:
            window.append((t, step))
        return run.apply(rec)

    def _on_eval(self, run: RunView, rec: Eval, seq: int | None, late: bool) -> str:
        step = float(rec.step)
        for key in EVAL_KEYS:
            value = getattr(rec, key)
            if value is not None:
                self._add_point(run, key, seq, late, step, float(rec.tokens), rec.time or 0.0, value)
        if rec.extra:
            self._add_extras(run, rec, seq, late, float(rec.tokens), rec.time or 0.0)
        return run.apply(rec, late)

    def _on_sample(self, run: RunView, rec: Sample, seq: int | None, late: bool) -> str:
        run.apply(rec, late)
        _bounded_append(run.samples, rec, MAX_SAMPLES, late)
        return "samples"

    def _on_media(self, run: RunView, rec: MediaRecord, seq: int | None, late: bool) -> str:
        _bounded_append(run.media, rec, MAX_MEDIA, late)
        return "media"

    def _on_ckpt(self, run: RunView, rec: Ckpt, seq: int | None, late: bool) -> str:
        run.apply(rec, late)
        _bounded_append(run.ckpts, rec, 10_000, late)
        return "ckpt"

    def _on_state(self, run: RunView, rec: State, seq: int | None, late: bool) -> str:
        return run.apply(rec, late)

    def _on_log(self, run: RunView, rec: Log, seq: int | None, late: bool) -> str:
        run.apply(rec, late)
        run.logs.append(rec)
        return "logs"

    def _on_alert(self, run: RunView, rec: Alert, seq: int | None, late: bool) -> str:
        run.apply(rec, late)
        self._add_alert(run, rec)
        return "alerts"

    def _add_extras(
        self, run: RunView, rec: Metric | Eval, seq: int | None, late: bool, tokens: float, t: float
    ) -> bool:
        """A writer's own numbers (`record.extra`, e.g. a reporter's `train/acc`) as series named by
        their key, at most MAX_EXTRA_SERIES per run; a key that names one of ours is not taken."""
        added = False
        for key, value in rec.extra.items():
            if key in SERIES_KEYS:
                continue
            if key not in run.series:
                if len(run.series) >= len(SERIES_KEYS) + MAX_EXTRA_SERIES:
                    continue
                run.series[key] = Series()
            added |= self._add_point(run, key, seq, late, float(rec.step), tokens, t, value)
        return added

    def _add_alert(self, run: RunView, rec: Alert) -> None:
        run.alerts.append(rec)
        del run.alerts[:-MAX_ALERTS]

    def _add_point(
        self,
        run: RunView,
        key: str,
        seq: int | None,
        late: bool,
        step: float,
        tokens: float,
        t: float,
        value: float,
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


def _bounded_append(items: list[Any], rec: Sample | Ckpt | MediaRecord, limit: int, late: bool) -> None:
    if late:
        items.insert(bisect.bisect_right([r.step for r in items], rec.step), rec)
    else:
        items.append(rec)
    del items[:-limit]


def _copy(column: Any) -> array:
    out = array("d")
    out.frombytes(memoryview(column.view).cast("B"))  # one copy, not two (tobytes would add one)
    return out


_HANDLERS: dict[str, Callable[[MetricStore, RunView, Any, int | None, bool], str]] = {  # by record type
    HELLO: MetricStore._on_hello,
    METRIC: MetricStore._on_metric,
    EVAL: MetricStore._on_eval,
    SAMPLE: MetricStore._on_sample,
    CKPT: MetricStore._on_ckpt,
    STATE: MetricStore._on_state,
    LOG: MetricStore._on_log,
    ALERT: MetricStore._on_alert,
    **{kind: MetricStore._on_media for kind in MEDIA_TYPES},
}


def clean_record(rec: Record) -> Record:
    """`rec` with every string in it cleaned for showing (nexus_core's clean_text, newlines kept for
    samples and log blocks; dicts and lists such as hello's config cleaned all the way down). The
    record is returned as is when nothing in it needed cleaning, so the common case copies nothing."""
    changes: dict[str, Any] = {}
    for name in rec.__struct_fields__:
        value = getattr(rec, name)
        if isinstance(value, str):
            cleaned: Any = clean_text(value, multiline=True)
        elif isinstance(value, (dict, list)):
            cleaned = clean_data(value)
        else:
            continue
        if cleaned != value:
            changes[name] = cleaned
    return msgspec.structs.replace(rec, **changes) if changes else rec
