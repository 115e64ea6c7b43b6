"""`nexus export --wide`: W&B's shape (what `run.history()` returns there): one row per (run, step),
one column per key, a step's metric and eval values side by side; and `--meta FILE`: each run's
config and summary as JSON (summary.json, else the last value of every key).

Built from the same folded points as the long table (export.py's `facts_rows`), so both agree point
for point. Columns: run, step, tokens, time, then every key in the order first seen. CSV cells follow
export.py's rules (a formula-looking text cell gets a leading "'").
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from nexus_core.safefile import read_json
from nexus_tui.documents.export import ExportError, _csv_cell, facts_rows, safe_text
from nexus_tui.documents.report.facts import RunFacts

HEAD = ("run", "step", "tokens", "time")


def wide_table(runs: Sequence[RunFacts]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the wide shape; a key a step did not log is None."""
    keys: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    at: dict[tuple[str, int], dict[str, Any]] = {}
    for facts in runs:
        for point in facts_rows(facts):
            row = at.get((point.run, point.step))
            if row is None:
                row = at[(point.run, point.step)] = {
                    "run": point.run,
                    "step": point.step,
                    "tokens": point.tokens,
                    "time": point.time,
                }
                rows.append(row)
            keys.setdefault(point.key, len(keys))
            row[point.key] = point.value
    columns = [*HEAD, *keys]
    return columns, [[row.get(c) for c in columns] for row in rows]


def write_wide_csv(out: io.TextIOBase | Any, runs: Sequence[RunFacts]) -> int:
    columns, rows = wide_table(runs)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow(["" if v is None else _csv_cell(v) if isinstance(v, str) else repr(v) for v in row])
    return len(rows)


def wide_parquet_table(runs: Sequence[RunFacts]) -> Any:
    try:
        import pyarrow as pa
    except ImportError as e:
        from nexus_tui.documents.export import PARQUET_HINT

        raise ExportError(PARQUET_HINT) from e
    columns, rows = wide_table(runs)
    data = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return pa.table({c: list(v) for c, v in zip(columns, data, strict=True)})


def meta(runs: Sequence[RunFacts]) -> dict[str, Any]:
    """{run: {"config": ..., "summary": ...}}: summary.json when the run wrote one (the reporter),
    else the last value of every key."""
    out: dict[str, Any] = {}
    for facts in runs:
        summary: Any = None
        with contextlib.suppress(OSError, ValueError):
            summary = read_json(facts.run_dir / "summary.json")
        if not isinstance(summary, dict):
            summary = {}
            for point in facts_rows(facts):
                summary[point.key] = point.value
        out[safe_text(facts.name)] = {"config": facts.config, "summary": summary}
    return out


def meta_json(runs: Sequence[RunFacts]) -> str:
    return json.dumps(meta(runs), indent=1, sort_keys=True, default=str)
