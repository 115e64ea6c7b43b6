"""What a comparison of runs says, as data and as GitHub markdown: results and config differences.

People used to copy numbers from the compare screen into markdown tables by hand, which invites
typos and stale figures. This module builds the rows once from a MetricStore, so the compare screen
(which only draws them), `nexus compare` and the screen's copy key all agree. Torch-free and
textual-free: the CLI path loads runs straight from their metrics files.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_core.config import flatten
from nexus_core.families import FAMILY_SECTIONS, migrate, option_family
from nexus_core.protocol import METRICS_FILE, clean_text
from nexus_core.units import as_num
from nexus_tui import format as fmt
from nexus_tui.documents.report.safe import md, one_line
from nexus_tui.history.reader import read_history
from nexus_tui.history.store import MetricStore, RunView

SKIPPED_KEYS = frozenset({"name", "train.device"})
"""Config keys that always differ between runs and say nothing about what was tried."""


@dataclass(frozen=True)
class Column:
    """One results column: its headers, how a value reads, and which way is better (None: neither,
    e.g. steps and tokens are what you asked for, not what you won)."""

    header: str
    markdown_header: str
    text: Callable[[Any], str]
    better: str | None


COLUMNS: tuple[Column, ...] = (
    Column("best val", "best val loss (nats)", fmt.loss, "min"),
    Column("val PPL", "val PPL", fmt.ppl, "min"),
    Column("final H", "final H (nats)", fmt.loss, "min"),
    Column("steps", "steps", lambda v: str(v or 0), None),
    Column("tokens", "tokens", fmt.count, None),
    Column("tok/s", "tok/s (median)", fmt.count, "max"),
    Column("wall", "time training", fmt.duration, "min"),
)


@dataclass(frozen=True)
class ResultRow:
    """One run's numbers, unformatted, in COLUMNS order (None where the run has no such value)."""

    name: str
    values: tuple[float | int | None, ...]

    def cells(self) -> list[str]:
        return [col.text(v) for col, v in zip(COLUMNS, self.values, strict=True)]


IDLE_FLOOR_S = 60.0
IDLE_FACTOR = 20.0
"""A gap between training records longer than max(IDLE_FLOOR_S, IDLE_FACTOR x the median gap) is time
the run was not training (stopped, then resumed hours later; a long pause): not wall time."""


def active_seconds(times: Sequence[float]) -> float | None:
    """Seconds spent training, from the times of a run's training records: the sum of the gaps
    between them, less idle gaps (a run that trained ~70 s and was resumed a minute later is ~70 s,
    not 2m28s). None with fewer than two records."""
    ts = sorted(t for t in times if math.isfinite(t))
    if len(ts) < 2:
        return None
    gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
    idle = max(IDLE_FLOOR_S, IDLE_FACTOR * statistics.median(gaps))
    return sum(g for g in gaps if g <= idle)


def median_of(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else None


def ended_config(run: RunView) -> dict[str, Any]:
    """The config the run ended with: its hello's, with the total a live ramp or a resume moved
    (`train.steps`), so two runs both ramped to 400 do not read `400 vs 300`."""
    config = dict(run.config or {})
    train = config.get("train")
    if isinstance(train, dict) and run.total_steps > 0 and train.get("steps") != run.total_steps:
        config["train"] = {**train, "steps": run.total_steps}
    return config


def result_row(store: MetricStore, run: RunView) -> ResultRow:
    """best val loss, its PPL (the same number, read as perplexity), final H, steps, tokens, the
    median tok/s (the last one is one noisy step), and the time spent training (`active_seconds`:
    idle gaps such as the wait before a resume do not count; a loop that logs only `loss` is timed
    by its loss records, as the charts draw it)."""
    times, _ = store.series(run.name, "ce" if len(run.series["ce"]) else "loss", x="time")
    _, tok_s = store.series(run.name, "tok_s")
    best = run.best_val_loss
    return ResultRow(
        run.name, (best, best, run.ce, run.step or 0, run.tokens, median_of(tok_s), active_seconds(times))
    )


def results(store: MetricStore, names: Sequence[str]) -> list[ResultRow]:
    """Rows for the named runs the store knows, in the order given."""
    return [result_row(store, run) for run in (store.get(n) for n in names) if run is not None]


def _applies(family: Any, key: str) -> bool:
    """Whether a run of this family reads the key: a [model.<family>] key only that family's runs. A
    family the core does not know (a newer engine, or no config at all) is taken to read everything,
    so nothing it set is hidden."""
    owner = option_family(key)
    return owner is None or family == owner or not isinstance(family, str) or family not in FAMILY_SECTIONS


def config_differences(configs: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Keys whose value is not the same in every run, with each run's value as text.

    A family option counts only among the runs whose family reads it, and reads "–" in the others:
    a transformer has no model.hybrid.ssm_state. So an option that fewer than two runs read is never
    listed (the model.family row already says the runs differ). A run written before the family
    tables (every option flat in [model]) is migrated first, so it lines up with a new one."""
    flat = {name: flatten(migrate(cfg or {})) for name, cfg in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    out = []
    for key in keys:
        if key in SKIPPED_KEYS:
            continue
        applies = [_applies(flat[n].get("model.family"), key) for n in configs]
        values = [
            repr(flat[n][key]) if ok and key in flat[n] else fmt.DASH
            for n, ok in zip(configs, applies, strict=True)
        ]
        if len({v for v, ok in zip(values, applies, strict=True) if ok}) > 1:
            out.append((key, values))
    return out


# -- markdown ------------------------------------------------------------------------------------


def _best_rows(rows: list[ResultRow], index: int) -> set[int]:
    """Rows showing the best value of a column. Ties are judged on the text shown (two walls of
    "0s" both win, or the bold would point at a difference nobody can see); none win when every
    run shows the same text or fewer than two runs have a value."""
    column = COLUMNS[index]
    have = [
        (i, v) for i, r in enumerate(rows) if (v := r.values[index]) is not None and as_num(v) is not None
    ]
    if column.better is None or len(have) < 2:
        return set()
    pick = min if column.better == "min" else max
    best = column.text(pick(v for _, v in have))
    shown = {i: column.text(v) for i, v in have}
    if len(set(shown.values())) == 1:
        return set()
    return {i for i, text in shown.items() if text == best}


def _escape(text: str) -> str:
    """Run names and values come from run folders: no escape sequence or newline may reach the text,
    and no character that opens markup (`<img onerror=...>`, links, emphasis) or ends a table cell
    (`|`): the report's one markdown escaper (report/safe.md), headings and cells alike."""
    return md(text, limit=200)


def _code(text: str) -> str:
    """A value for the inside of a `code span` (markup is inert there; backslashes are shown as
    typed): a backtick would end the span early and a pipe the table cell."""
    return one_line(text, limit=200).replace("`", "'").replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[str]], right: list[bool]) -> str:
    """A GitHub table whose columns line up in plain text too (padded cells, `---:` for numbers)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths = [max(w, 3) for w in widths]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(
        ("-" * (w - 1) + ":") if r else "-" * w for w, r in zip(widths, right, strict=True)
    )
    return "\n".join([line(header), rule + " |", *(line(r) for r in rows)])


def results_markdown(rows: list[ResultRow]) -> str:
    """The results table with the best value of each column that has a better direction in bold."""
    bold = [_best_rows(rows, i) for i in range(len(COLUMNS))]
    body = []
    for n, row in enumerate(rows):
        cells = [f"**{c}**" if n in bold[i] else c for i, c in enumerate(row.cells())]
        body.append([_escape(row.name), *cells])
    header = ["run", *(c.markdown_header for c in COLUMNS)]
    return markdown_table(header, body, [False] + [True] * len(COLUMNS))


def differences_markdown(names: list[str], configs: dict[str, Any]) -> str:
    """Only the keys that differ; one line saying so when nothing does."""
    rows = config_differences(configs)
    if not rows:
        return "_The configs are identical._" if len(names) > 1 else "_One run: nothing to compare._"
    body = [
        [f"`{_code(key)}`", *(v if v == fmt.DASH else f"`{_code(v)}`" for v in values)]
        for key, values in rows
    ]
    return markdown_table(["config key", *map(_escape, names)], body, [False] * (len(names) + 1))


def comparison_markdown(store: MetricStore, names: Sequence[str]) -> str:
    """The whole comparison, ready to paste into an issue or a PR."""
    runs = [r for r in (store.get(n) for n in names) if r is not None]
    shown = [r.name for r in runs]
    parts = [
        f"## Comparing {', '.join(map(_escape, shown))}",
        "",
        "### Results",
        "",
        results_markdown(results(store, shown)),
        "",
        "### Config differences",
        "",
        differences_markdown(shown, {r.name: ended_config(r) for r in runs}),
        "",
    ]
    return "\n".join(parts)


# -- loading runs without the dashboard ----------------------------------------------------------


class UnknownRunError(ValueError):
    """A run name that is not a run folder under the root: one line, naming the ones that are."""


def run_dir_for(root: Path, name: str) -> Path:
    """root/NAME, or NAME itself when it is a path to a run folder."""
    for candidate in (root / name, Path(name)):
        if (candidate / METRICS_FILE).exists():  # not is_file(): a FIFO or folder there gets its own line
            return candidate
    known = sorted(d.name for d in root.iterdir() if (d / METRICS_FILE).is_file()) if root.is_dir() else []
    hint = f"runs there: {', '.join(known)}" if known else "it holds no runs"
    raise UnknownRunError(clean_text(f"no run named {name!r} under {root}/ ({hint})"))


def load_runs(
    root: str | Path, names: Sequence[str], warn: Callable[[str, str], None] | None = None
) -> tuple[MetricStore, list[str]]:
    """A store holding the named runs' whole histories, and their names in the order given.
    Every name is checked before any file is read, so a typo costs nothing. `warn(run, text)` hears
    what reading a run skipped (a torn tail, garbage) and a run with no whole record at all."""
    root = Path(root)
    dirs = [run_dir_for(root, n) for n in names]
    store = MetricStore()
    shown: list[str] = []
    for d in dirs:
        name = d.name if d.name not in shown else str(d)
        history = read_history(store, name, d)
        shown.append(name)
        if warn is None:
            continue
        for text in history.warnings:
            warn(name, text)
        if not history.pieces:
            warn(name, f"{d / METRICS_FILE} holds no whole record yet: its row is empty")
    return store, shown
