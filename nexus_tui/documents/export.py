"""`nexus export`: every raw point of every series of some runs, as CSV or Parquet, for pandas/polars.

TensorBoard's CSV export samples a series down to 1,000 points; this writes every point the run
folder holds. The layout is long ("tidy"): one row per (record, key), columns

    run, kind, step, tokens, time, key, value

`kind` is "metric" (one optimizer step) or "eval"; `key` is a standard field (loss, ce, lr, gnorm,
tok_s, step_s, mem, val_loss, val_ppl) or any extra numeric key a writer logged (`record.extra`);
`time` is the record's unix time in seconds. A long table needs no column per key that most rows
would leave empty (extra keys come and go), and pivots to wide in one call:
`df.pivot_table(index=["run", "step"], columns="key", values="value")`.

A resumed run is folded as `nexus report` and the dashboard fold it (report/facts.py): the newer
records replace the stretch a resume re-trained, so each (run, kind, step) appears once.
Run names and keys come from run folders (untrusted): control characters are removed, and in CSV a
text cell that a spreadsheet would read as a formula (=, +, -, @ first) gets a leading "'".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from nexus_core.recordtypes import EVAL_VALUES, METRIC_VALUES
from nexus_core.safefile import writing_through
from nexus_core.units import as_int, as_num, is_real
from nexus_tui.documents.report.facts import RunFacts
from nexus_tui.documents.report.safe import one_line

COLUMNS = ("run", "kind", "step", "tokens", "time", "key", "value")
METRIC_FIELDS = METRIC_VALUES  # the record types' one table
EVAL_FIELDS = EVAL_VALUES
PARQUET_HINT = "Parquet needs pyarrow: pip install 'nexus[export]'"
_FORMULA_START = ("=", "+", "-", "@")


class ExportError(ValueError):
    """A reason the export cannot be written, in one line (a missing library, a bad output path)."""


class Row(NamedTuple):
    """One point (a tuple: hundreds of thousands of them are made per export)."""

    run: str
    kind: str
    step: int
    tokens: int | None
    time: float | None
    key: str
    value: float


def safe_text(text: object) -> str:
    """One line with no control characters or escape sequences (report/safe.py's rule)."""
    return one_line(text)


def record_rows(run: str, kind: str, rec: Any) -> Iterator[Row]:
    """The rows of one metric or eval record (a typed Record): its standard numeric fields, then its
    extra keys (already checked printable by the decoder; cleaned again here all the same)."""
    step = as_int(getattr(rec, "step", None))
    if step is None:
        return
    tokens, at = as_int(getattr(rec, "tokens", None)), as_num(getattr(rec, "time", None))
    for key in METRIC_FIELDS if kind == "metric" else EVAL_FIELDS:
        value = getattr(rec, key, None)
        if value.__class__ is float or is_real(value):
            yield Row(run, kind, step, tokens, at, key, float(value))
    for key, value in (getattr(rec, "extra", None) or {}).items():
        yield Row(run, kind, step, tokens, at, _key(key), float(value))


_KEYS: dict[str, str] = {}


def _key(key: str) -> str:
    """safe_text, remembered: the same few keys come back on every record."""
    safe = _KEYS.get(key)
    if safe is None:
        safe = safe_text(key)
        if len(_KEYS) < 10_000:
            _KEYS[key] = safe
    return safe


MetricRow = tuple[int, int, "float | None", list[tuple[str, float]]]
"""(step, tokens, finite time or None, [(key, value)...]): `MetricTable.rows_by_step`'s rows."""


def _in_step_order(facts: RunFacts) -> Iterator[tuple[MetricRow | None, Any]]:
    """A folded run's metric rows and eval records merged in step order, a step's metric before its
    eval: (row, None) or (None, eval record). The one order every export format writes."""
    evals = sorted(facts.evals)
    i = 0
    for row in facts.metrics.rows_by_step(METRIC_FIELDS):
        while i < len(evals) and evals[i] < row[0]:
            yield None, facts.evals[evals[i]]
            i += 1
        yield row, None
        if i < len(evals) and evals[i] == row[0]:
            yield None, facts.evals[evals[i]]
            i += 1
    for step in evals[i:]:
        yield None, facts.evals[step]


def facts_rows(facts: RunFacts) -> Iterator[Row]:
    """Every point of one folded run, in step order (a step's metric before its eval)."""
    name = safe_text(facts.name)
    for row, ev in _in_step_order(facts):
        if row is None:
            yield from record_rows(name, "eval", ev)
            continue
        step, tokens, at, values = row
        for key, value in values:
            yield Row(name, "metric", step, tokens, at, _key(key), value)


def rows(runs: Sequence[RunFacts]) -> Iterator[Row]:
    for facts in runs:
        yield from facts_rows(facts)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def write_csv(out: io.TextIOBase | Any, points: Iterator[Row]) -> int:
    """The long table as CSV (header first) to a text stream; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    cell = _csv_cell
    for r in points:
        writer.writerow(
            (
                cell(r.run),
                r.kind,
                r.step,
                "" if r.tokens is None else r.tokens,
                "" if r.time is None else repr(r.time),
                cell(r.key),
                repr(r.value),
            )
        )
        n += 1
    return n


def csv_chunks(runs: Sequence[RunFacts]) -> Iterator[str]:
    """The same text as `write_csv(out, rows(runs))`, as chunks of many lines, made a metric row at a
    time straight from the folded columns: no Row tuple or csv.writer call per point (a 1e6-step run
    is 7 million points). Run names and keys, the only text cells, are quoted by the csv module once
    each; every other cell is a number, which needs no quoting."""
    cells: dict[str, str] = {}

    def text_cell(text: str) -> str:
        cell = cells.get(text)
        if cell is None and not text:
            return ""  # a row's empty cell is nothing (a one-cell row would quote it)
        if cell is None:
            line = io.StringIO()
            csv.writer(line, lineterminator="\n").writerow((_csv_cell(text),))
            cell = cells[text] = line.getvalue()[:-1]
        return cell

    def eval_lines(run: str, rec: Any) -> list[str]:
        return [
            f"{text_cell(r.run)},{r.kind},{r.step},{'' if r.tokens is None else r.tokens},"
            f"{'' if r.time is None else repr(r.time)},{text_cell(r.key)},{r.value!r}\n"
            for r in record_rows(run, "eval", rec)
        ]

    yield ",".join(COLUMNS) + "\n"
    out: list[str] = []
    for facts in runs:
        run = safe_text(facts.name)
        name = text_cell(run)
        keys: dict[str, str] = {}
        for row, ev in _in_step_order(facts):
            if row is None:
                out += eval_lines(run, ev)
                continue
            step, tokens, at, values = row
            head = (
                f"{name},metric,{step},{'' if tokens is None else tokens},{'' if at is None else repr(at)},"
            )
            for key, value in values:
                cell = keys.get(key)
                if cell is None:
                    cell = keys[key] = text_cell(_key(key))
                out.append(f"{head}{cell},{value!r}\n")
            if len(out) >= 65536:
                yield "".join(out)
                out.clear()
    if out:
        yield "".join(out)


def write_runs_csv(out: io.TextIOBase | Any, runs: Sequence[RunFacts]) -> int:
    """`csv_chunks` to a text stream; returns the number of data rows (points)."""
    lines = 0
    for chunk in csv_chunks(runs):
        out.write(chunk)
        lines += chunk.count("\n")
    return lines - 1  # the header


def parquet_table(points: Iterator[Row]) -> Any:
    """The long table as a pyarrow Table (run, kind and key dictionary-encoded: they repeat)."""
    try:
        import pyarrow as pa
    except ImportError as e:
        raise ExportError(PARQUET_HINT) from e
    columns = list(zip(*points, strict=True)) or [() for _ in COLUMNS]
    cols = {c: list(values) for c, values in zip(COLUMNS, columns, strict=True)}
    return pa.table(cols, schema=_parquet_schema(pa))


def _parquet_schema(pa: Any) -> Any:
    """The long table's Arrow schema: run, kind and key dictionary-encoded (they repeat)."""
    text = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            ("run", text),
            ("kind", text),
            ("step", pa.int64()),
            ("tokens", pa.int64()),
            ("time", pa.float64()),
            ("key", text),
            ("value", pa.float64()),
        ]
    )


def _run_arrays(facts: RunFacts) -> dict[str, Any] | None:
    """One folded run's points as numpy columns in `facts_rows`' order (a metric row's fields, then
    its extra keys, step by step; a step's eval after its metric), keys as indices into `keys`. None
    for a run whose steps are not int64 (a hostile file's huge ones): the row path takes those."""
    import numpy as np

    m = facts.metrics
    if m.step.dtype != np.int64 or m.tokens.dtype != np.int64:
        return None
    order = m.order
    names = [k for k in METRIC_FIELDS if k in m.values] + list(m.extra)
    n, width = len(order), len(names)
    if width:
        values = np.column_stack([(m.values[k] if k in m.values else m.extra[k])[order] for k in names])
        has = np.column_stack(
            [np.ones(n, bool) if m.present.get(k) is None else m.present[k][order] for k in names]
        )
    else:
        values, has = np.empty((n, 0)), np.empty((n, 0), bool)
    keep = has.ravel()
    row = np.repeat(np.arange(n), width)[keep]
    times = m.values["time"][order] if "time" in m.values else np.full(n, np.nan)
    time_ok = np.isfinite(times) & (
        np.ones(n, bool) if m.present.get("time") is None else m.present["time"][order]
    )
    cols = {
        "step": m.step[order][row],
        "tokens": m.tokens[order][row],
        "tokens_ok": np.ones(len(row), bool),
        "time": times[row],
        "time_ok": time_ok[row],
        "key": np.tile(np.arange(width), n)[keep],
        "value": values.ravel()[keep],
        "eval": np.zeros(len(row), bool),
    }
    keys = [_key(k) for k in names]
    points = [r for step in sorted(facts.evals) for r in record_rows("", "eval", facts.evals[step])]
    if points:
        index = {k: i for i, k in enumerate(keys)}
        for r in points:
            index.setdefault(r.key, len(index))
        keys = list(index)
        evals = {
            "step": np.array([r.step for r in points], np.int64),
            "tokens": np.array([r.tokens or 0 for r in points], np.int64),
            "tokens_ok": np.array([r.tokens is not None for r in points]),
            "time": np.array([math.nan if r.time is None else r.time for r in points], np.float64),
            "time_ok": np.array([r.time is not None for r in points]),
            "key": np.array([index[r.key] for r in points], np.int64),
            "value": np.array([r.value for r in points], np.float64),
            "eval": np.ones(len(points), bool),
        }
        both = {c: np.concatenate((cols[c], evals[c])) for c in cols}
        at = np.lexsort((both["eval"], both["step"]))  # stable: a step's metric fields keep their order
        cols = {c: v[at] for c, v in both.items()}
    cols["keys"] = keys
    return cols


def runs_parquet_table(runs: Sequence[RunFacts]) -> Any:
    """The long table of these runs as a pyarrow Table, built from their columns (the same rows as
    `parquet_table(rows(runs))`, without a Python tuple per point)."""
    try:
        import numpy as np
        import pyarrow as pa
    except ImportError as e:
        raise ExportError(PARQUET_HINT) from e
    parts = [_run_arrays(f) for f in runs]
    if any(p is None for p in parts):
        return parquet_table(rows(runs))
    names = [safe_text(f.name) for f in runs]
    key_index: dict[str, int] = {}
    pieces: dict[str, list[Any]] = {
        c: [] for c in ("run", "kind", "step", "tokens", "tokens_ok", "time", "time_ok", "key", "value")
    }
    for i, part in enumerate(parts):
        assert part is not None
        remap = np.array([key_index.setdefault(k, len(key_index)) for k in part["keys"]] or [0], np.int32)
        count = len(part["step"])
        pieces["run"].append(np.full(count, i, np.int32))
        pieces["kind"].append(part["eval"].astype(np.int32))
        pieces["key"].append(remap[part["key"]] if count else np.empty(0, np.int32))
        for c in ("step", "tokens", "tokens_ok", "time", "time_ok", "value"):
            pieces[c].append(part[c])
    cat = {c: np.concatenate(v) if v else np.empty(0) for c, v in pieces.items()}
    columns = [
        pa.DictionaryArray.from_arrays(
            pa.array(cat["run"], pa.int32()), pa.array(names or [""], pa.string())
        ),
        pa.DictionaryArray.from_arrays(
            pa.array(cat["kind"], pa.int32()), pa.array(["metric", "eval"], pa.string())
        ),
        pa.array(cat["step"], pa.int64()),
        pa.array(cat["tokens"], pa.int64(), mask=~cat["tokens_ok"].astype(bool)),
        pa.array(cat["time"], pa.float64(), mask=~cat["time_ok"].astype(bool)),
        pa.DictionaryArray.from_arrays(
            pa.array(cat["key"], pa.int32()), pa.array(list(key_index) or [""], pa.string())
        ),
        pa.array(cat["value"], pa.float64()),
    ]
    return pa.Table.from_arrays(columns, schema=_parquet_schema(pa))


def write_parquet(path: Path, runs: Sequence[RunFacts]) -> int:
    """Write the Parquet table to a path a person typed (through a symlink, into a FIFO, as `tee`)."""
    table = runs_parquet_table(runs)
    import pyarrow.parquet as pq

    with writing_through(path) as f:
        pq.write_table(table, f)
    return table.num_rows


def write_csv_file(path: Path, runs: Sequence[RunFacts]) -> int:
    """Write the CSV to a path a person typed (see writing_through: a failed export leaves no half file)."""
    return csv_through(path, lambda text: write_runs_csv(text, runs))


def csv_through(path: Path, write: Callable[[Any], int]) -> int:
    """`write(text file)` into an output path a person typed, through writing_through (a link kept,
    a FIFO streamed into, a regular file replaced whole); returns what `write` returned."""
    with writing_through(path) as f:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        count = write(text)
        text.flush()
        text.detach()  # the binary file is writing_through's to close (or rename into place)
    return count
