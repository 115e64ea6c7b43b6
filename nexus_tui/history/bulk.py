"""Fold decoded metric columns into a MetricStore a block at a time.

The store's `ingest` takes one record at a time: right for hellos, states and the odd backfill,
~10 µs a record for a million-record replay. A `MetricBlock` (see fastdecode.py) whose records are
the run's next seqs in order, with steps that only go forward, is appended here column-wise, with
exactly the state `ingest` would have left (last step, tokens, loss..., the ETA's rate window, the
`running` state). Anything else (a gap or overlap in seqs other than a replayed prefix, a step going
back for a resume, a missing step) is handed to `ingest` as records: rare, and right by definition.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nexus_core.protocol import STATES, read_status
from nexus_core.recordtypes import State
from nexus_tui.history.changes import Changes
from nexus_tui.history.columnar.fastdecode import VALUE_KEYS, MetricBlock
from nexus_tui.history.runview import MAX_EXTRA_SERIES, SERIES_KEYS, RunView, SeqFilter, Series


class MetricStore(Protocol):
    """What this module uses of `store.MetricStore`, which imports it: declared here, not imported,
    so the two modules form no cycle (bulk is the store's helper, below it)."""

    _runs: dict[str, RunView]
    _seqs: dict[str, SeqFilter]
    _lock: threading.RLock

    def get(self, name: str) -> RunView | None: ...

    def _view(self, name: str, run_dir: str | Path | None = None) -> RunView: ...

    def ingest(self, run_name: str, run_dir: str | Path | None, records: list[Any]) -> Changes: ...


RATE_WINDOW = 50


def ingest_pieces(
    store: MetricStore, name: str, run_dir: str | Path | None, pieces: list[Any], loading: float | None = None
) -> Changes:
    """Each piece in order: record lists through `ingest`, metric blocks in bulk. `loading`: how
    much of the file a history read has reached with this batch (0..1), to size the columns once."""
    changed = Changes()
    rows = sum(len(p) for p in pieces if isinstance(p, MetricBlock))
    if rows:
        _reserve(store._view(name, run_dir), rows, loading)
    for piece in pieces:
        if isinstance(piece, MetricBlock):
            if len(piece):
                changed.merge(ingest_block(store, name, run_dir, piece))
            if piece.release is not None:
                piece.release()
        elif piece:
            changed.merge(store.ingest(name, run_dir, piece))
    return changed


def _reserve(run: RunView, rows: int, loading: float | None) -> None:
    """One allocation per column for a history instead of growing by half again and again (a
    copy each time, and up to half of it unused at the end): a history read batch by batch
    reserves, when a column would grow, what the whole file will hold at the rate so far
    (`loading` of it gave these rows); a batch of a whole history (the cache) reserves its rows."""
    columns = {
        id(c): c
        for k in VALUE_KEYS
        for c in (run.series[k].step, run.series[k].tokens, run.series[k].time, run.series[k].value)
    }.values()
    for column in columns:
        if column.n + rows <= len(column.buf):
            continue
        if loading is not None and 0.0 < loading < 1.0:
            column.reserve(max(rows, int((column.n + rows) / loading * 1.02) - column.n))
        elif rows > 100_000 or loading is not None:  # the whole (rest of a) history in this batch
            column.reserve(rows)


def ingest_block(store: MetricStore, name: str, run_dir: str | Path | None, block: MetricBlock) -> Changes:
    run = store._view(name, run_dir)
    seqs = store._seqs[name]
    fast = _fast_part(store, name, block)
    if fast is None:
        return store.ingest(name, run_dir, block.records())
    if not len(fast):
        return Changes()
    b = _with_derived_tok_s(run, fast)
    if b is None:
        return store.ingest(name, run_dir, fast.records())
    step = b.step
    tokens = b.tokens if b.has_all("tokens") else np.where(b.present["tokens"], b.tokens, 0.0)
    t = b.time if b.has_all("time") else np.where(b.present["time"], b.time, 0.0)
    if b.has_all("time"):
        newest = float(np.max(b.time))
    elif b.present["time"].any():
        newest = float(np.max(b.time[b.present["time"]]))
    else:
        newest = None
    if newest is not None:
        run.updated = newest if run.updated is None else max(run.updated, newest)
    _extend(run, VALUE_KEYS, b.values, b, step, tokens, t)
    if b.extra:  # a writer's own keys: new series made in the order `MetricStore._add_extras` makes them
        keys = _extra_keys(b)
        for key in keys:
            if key not in run.series:
                run.series[key] = Series()
        _extend(run, keys, b.extra, b, step, tokens, t)
    rate = run._rate
    if rate and step[0] < rate[-1][1]:
        rate.clear()  # as MetricStore._on_metric: a resume from an earlier step
    timed = np.flatnonzero(t != 0)[-RATE_WINDOW:]
    rate.extend(zip(t[timed].tolist(), step[timed].tolist(), strict=True))
    for rec in fast.slice(max(0, len(fast) - 2)).records():  # the reducer decides state, step, last values
        run.apply(rec)  # (the last two: a tok_s the writer did not log is their rate)
    seqs.mark += len(b)
    seqs.max_seen = max(seqs.max_seen, int(b.seq[-1]))
    return Changes(["metrics"])


def _with_derived_tok_s(run: RunView, b: MetricBlock) -> MetricBlock | None:
    """The block with tok_s filled in where its writer counted tokens but logged no rate, each row
    from the one before it (the first from the run's last metric), as `derived_tok_s` does record by
    record; None when the derived points would re-draw the series (the per-record path cuts it)."""
    logged = b.present.get("tok_s")
    if logged is not None and logged.all() or b.has_all("tok_s"):
        return b
    last = run.metric
    tokens = np.where(b.present["tokens"], b.tokens, 0.0) if not b.has_all("tokens") else b.tokens
    t = np.where(b.present["time"], b.time, np.nan) if not b.has_all("time") else b.time
    prev_tokens = np.concatenate(([float(last.tokens) if last is not None else 0.0], tokens[:-1]))
    prev_t = np.concatenate(
        ([float(last.time) if last is not None and last.time is not None else np.nan], t[:-1])
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (t > prev_t) & (tokens > prev_tokens) & (prev_tokens > 0)
        rate = np.where(ok, (tokens - prev_tokens) / np.where(ok, t - prev_t, 1.0), np.nan)
    ok &= ~logged if logged is not None else True
    if not ok.any():
        return b
    series = run.series["tok_s"]
    if len(series) and b.step[ok][0] <= series.step[-1]:
        return None
    values = dict(b.values)
    values["tok_s"] = np.where(ok, rate, b.values["tok_s"])
    present = dict(b.present)
    present["tok_s"] = ok | (logged if logged is not None else False)
    return MetricBlock(b.seq, b.step, b.tokens, b.time, values, present, b.extra, b.release)


def _extra_keys(b: MetricBlock) -> list[str]:
    """The block's extra keys that give points to a series of their own, by their first record
    holding them (then as the records order them): the order the per-record path adds them in."""
    order = list(b.extra)
    first = {
        k: (0 if b.has_all(k) else int(np.argmax(b.present[k])))
        for k in order
        if k not in SERIES_KEYS and (b.has_all(k) or b.present[k].any())
    }
    return sorted(first, key=lambda k: (first[k], order.index(k)))


def _extend(
    run: RunView,
    keys: Sequence[str],
    values: dict[str, np.ndarray],
    b: MetricBlock,
    step: np.ndarray,
    tokens: np.ndarray,
    t: np.ndarray,
) -> None:
    """Append each key's present points; the keys every record had share one set of x columns."""
    whole = [key for key in keys if b.has_all(key)]
    if whole:
        Series.extend_group([run.series[k] for k in whole], step, tokens, t, [values[k] for k in whole])
    for key in keys:
        if key not in whole and b.present[key].any():
            m = b.present[key]
            run.series[key].extend(step[m], tokens[m], t[m], values[key][m])


def _fast_part(store: MetricStore, name: str, b: MetricBlock) -> MetricBlock | None:
    """The part of the block not seen before, if it can be appended in bulk; None if not."""
    seqs = store._seqs[name]
    run = store._runs[name]
    if "seq" in b.present or "step" in b.present or seqs.above or seqs.max_seen >= seqs.mark:
        return None
    seq = b.seq
    if len(seq) > 1 and not (np.diff(seq) == 1).all():
        return None
    if seq[-1] < seqs.mark:
        return b.slice(0, 0)  # all replayed: nothing new
    if seq[0] < seqs.mark:
        b = b.slice(seqs.mark - int(seq[0]))
    if int(b.seq[0]) != seqs.mark or (b.seq < 0).any():
        return None
    step = b.step
    if not np.isfinite(step).all() or (len(step) > 1 and not (np.diff(step) > 0).all()):
        return None
    if np.isnan(b.time).any() and ("time" not in b.present or np.isnan(b.time[b.present["time"]]).any()):
        return None  # a NaN time: the per-record fold's max() decides what `updated` becomes
    if not np.isfinite(b.tokens[b.present.get("tokens", slice(None))]).all():
        return None  # the per-record path decides what an infinite token count means
    extras = _extra_keys(b)
    if len({*run.series, *extras}) > len(SERIES_KEYS) + MAX_EXTRA_SERIES:
        return None  # past the cap: the per-record path decides which keys get a series
    for key in (*VALUE_KEYS, *extras):
        series = run.series.get(key)
        if series is None or not len(series):
            continue
        mask = b.present.get(key)
        if mask is not None and not mask.any():
            continue
        first = step[0] if mask is None else step[mask][0]
        if first <= series.step[-1]:
            return None  # a resume re-drawing a stretch: the per-record path cuts the series
    return b


def set_loading(store: MetricStore, name: str, run_dir: str | Path | None, loading: float | None) -> bool:
    """Track a large history read; returns whether the run's row should redraw. At its start the
    run's status file seeds state, step and total (a finished run reads `finished` at once, not
    `running` from the first records replayed), and the table shows `loading N%` until the end."""
    with store._lock:
        run = store.get(name)
        if loading is None:
            if run is None or run.loading is None:
                return False
            run.loading = None
            return True
        if run is None or (run.loading is None and not run.hello and run_dir is not None):
            run = store._view(name, run_dir)
            status = read_status(run_dir) if run_dir is not None else None
            if status and status.get("state") in STATES:  # as a state record, through the reducer
                step, total = status.get("step"), status.get("total_steps")
                run.apply(
                    State(
                        state=status["state"],
                        step=step if type(step) is int else None,
                        total_steps=total if type(total) is int and total > 0 else None,
                    )
                )
        was = run.loading
        run.loading = min(max(float(loading), 0.0), 1.0)
        return was is None or int(was * 100) != int(run.loading * 100)
