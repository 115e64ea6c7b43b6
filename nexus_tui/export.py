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

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_core.units import as_int, as_num
from nexus_tui.comparison import run_dir_for
from nexus_tui.report.facts import RunFacts, load_facts
from nexus_tui.report.safe import one_line

COLUMNS = ("run", "kind", "step", "tokens", "time", "key", "value")
METRIC_FIELDS = ("loss", "ce", "lr", "gnorm", "tok_s", "step_s", "mem")
EVAL_FIELDS = ("val_loss", "val_ppl")
PARQUET_HINT = "Parquet needs pyarrow: pip install 'nexus[export]'"
_FORMULA_START = ("=", "+", "-", "@")


class ExportError(ValueError):
    """A reason the export cannot be written, in one line (a missing library, a bad output path)."""


@dataclass(frozen=True)
class Row:
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
    """The rows of one metric or eval record: its standard numeric fields, then its extra keys."""
    step = as_int(rec.get("step"))
    if step is None:
        return
    tokens, at = as_int(rec.get("tokens")), as_num(rec.get("time"))
    for key in METRIC_FIELDS if kind == "metric" else EVAL_FIELDS:
        value = rec.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield Row(run, kind, step, tokens, at, key, float(value))
    extra = getattr(rec, "extra", None) or {}
    for key, value in extra.items():
        yield Row(run, kind, step, tokens, at, safe_text(key), float(value))


def facts_rows(facts: RunFacts) -> Iterator[Row]:
    """Every point of one folded run, in step order (a step's metric before its eval)."""
    name = safe_text(facts.name)
    for step in sorted(set(facts.metrics) | set(facts.evals)):
        if step in facts.metrics:
            yield from record_rows(name, "metric", facts.metrics[step])
        if step in facts.evals:
            yield from record_rows(name, "eval", facts.evals[step])


def load(root: str | Path, names: Sequence[str]) -> list[RunFacts]:
    """The named runs (names under root, or run folder paths), folded. Every name is resolved before
    any file is read. Raises comparison.UnknownRunError or OSError (a file it cannot read)."""
    root = Path(root)
    dirs = [run_dir_for(root, n) for n in names]
    runs: list[RunFacts] = []
    for d in dirs:
        shown = {f.name for f in runs}
        runs.append(load_facts(d, d.name if d.name not in shown else str(d)))
    return runs


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
    for r in points:
        writer.writerow([_csv_cell(r.run), r.kind, r.step, _csv_cell(r.tokens), _csv_cell(r.time),
                         _csv_cell(r.key), repr(r.value)])
        n += 1
    return n


def parquet_table(points: Iterator[Row]) -> Any:
    """The long table as a pyarrow Table (run, kind and key dictionary-encoded: they repeat)."""
    try:
        import pyarrow as pa
    except ImportError as e:
        raise ExportError(PARQUET_HINT) from e
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for r in points:
        for c in COLUMNS:
            cols[c].append(getattr(r, c))
    text = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema([("run", text), ("kind", text), ("step", pa.int64()), ("tokens", pa.int64()),
                        ("time", pa.float64()), ("key", text), ("value", pa.float64())])
    return pa.table(cols, schema=schema)


def write_parquet(path: Path, points: Iterator[Row]) -> int:
    table = parquet_table(points)
    import pyarrow.parquet as pq

    _atomic(path, lambda tmp: pq.write_table(table, tmp))
    return table.num_rows


def write_csv_file(path: Path, points: Iterator[Row]) -> int:
    count = 0

    def write(tmp: str) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            count = write_csv(f, points)

    _atomic(path, write)
    return count


def _atomic(path: Path, write: Any) -> None:
    """Write through a temporary file beside `path`, then rename: a failed export leaves no half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
