"""A run's metric records as the report reads them: the per-record fold's answer, held as columns.

The report used to fold every metric record into a dict `step -> record` (a million dicts for a
million-step run, ~12 s with the decode). Here the same fold keeps `step -> row` only, filled a block
of decoded columns at a time (`dict.update` keeps the dict's own rules: a step written again takes
the newer row in the older one's place, a cut step comes back at the end), and the rows that stand
are taken out of the columns in that dict's order at the end. So every question a section asks
("the values of a key", "the metric at a step", "the steps whose loss is NaN") has the answer the
record-by-record fold gave, number for number and in the same order.

Steps and token counts stay exact integers (an int64 column, or Python ints for a hostile file's
huge ones); the other fields are float64 with a mask where some record lacked them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nexus_core.recordtypes import Metric
from nexus_tui.history.columnar.columns import BLOCK_KEYS, MetricBlock

FIELDS = ("time", *BLOCK_KEYS)
"""The float columns of a metric record besides its extra keys."""


def _exact(values: list[int]) -> np.ndarray:
    """Python ints as int64 when they fit, else as objects (a damaged file's step of 2**70)."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return np.array(values, dtype=object)


def _records_block(recs: list[Metric]) -> tuple[MetricBlock, np.ndarray, np.ndarray]:
    """Metric records the decoder gave as records (a damaged stretch) as a block, and their steps
    and token counts exact."""
    n = len(recs)
    values, present = {}, {}
    for key in FIELDS:
        got = [getattr(r, key) for r in recs]
        values[key] = np.array([math.nan if v is None else v for v in got], dtype=np.float64)
        mask = np.array([v is not None for v in got], dtype=bool)
        if not mask.all():
            present[key] = mask
    extra: dict[str, np.ndarray] = {}
    for key in dict.fromkeys(k for r in recs for k in r.extra):
        extra[key] = np.array([r.extra.get(key, math.nan) for r in recs], dtype=np.float64)
        mask = np.array([key in r.extra for r in recs], dtype=bool)
        if not mask.all():
            present[key] = mask
    steps, tokens = _exact([r.step for r in recs]), _exact([r.tokens for r in recs])
    block = MetricBlock(
        np.full(n, -1, np.int64),
        steps.astype(np.float64),
        tokens.astype(np.float64),
        values.pop("time"),
        values,
        present,
        extra,
    )
    return block, steps, tokens


@dataclass
class MetricFold:
    """The fold of a run's metric records in stream order, as `step -> row` plus the rows' columns."""

    index: dict[int, int] = field(default_factory=dict)
    """step -> row of the record that stands for it, in the order the per-record fold's dict had."""
    _blocks: list[MetricBlock] = field(default_factory=list)
    _steps: list[np.ndarray] = field(default_factory=list)
    _tokens: list[np.ndarray] = field(default_factory=list)
    _rows: int = 0

    def add_block(self, block: MetricBlock) -> int:
        """A stretch of decoded metric records; returns its last step."""
        steps = block.step.astype(np.int64)  # the decoder keeps only exact integers in columns
        self._add(block, steps, block.tokens.astype(np.int64))
        return int(steps[-1])

    def add_records(self, recs: list[Metric]) -> None:
        self._add(*_records_block(recs))

    def _add(self, block: MetricBlock, steps: np.ndarray, tokens: np.ndarray) -> None:
        if not len(block):
            return
        self.index.update(zip(steps.tolist(), range(self._rows, self._rows + len(block)), strict=True))
        self._blocks.append(block)
        self._steps.append(steps)
        self._tokens.append(tokens)
        self._rows += len(block)

    def cut(self, after: int) -> None:
        """A resume from step `after`: the steps past it no longer stand."""
        for step in [s for s in self.index if s > after]:
            del self.index[step]

    def table(self) -> MetricTable:
        if not self.index:
            return MetricTable()
        merged = MetricBlock.concat(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
        rows = np.fromiter(self.index.values(), np.int64, len(self.index))
        steps = np.concatenate(self._steps)[rows]
        tokens = np.concatenate(self._tokens)[rows]
        values = {"time": merged.time[rows], **{k: merged.values[k][rows] for k in BLOCK_KEYS}}
        present = {k: m[rows] for k, m in merged.present.items() if k != "seq"}
        return MetricTable(
            steps,
            tokens,
            values,
            {k: c[rows] for k, c in merged.extra.items()},
            {k: m for k, m in present.items() if not m.all()},
        )


@dataclass
class MetricTable:
    """The metric records that stand, one row per step, rows in the per-record fold's dict order."""

    step: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    tokens: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    values: dict[str, np.ndarray] = field(default_factory=dict)
    """time and the Metric fields (BLOCK_KEYS), NaN where missing."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """A writer's own keys, in the order the run first logged them."""
    present: dict[str, np.ndarray] = field(default_factory=dict)
    """Masks of the columns some row lacks (a column every row has has none)."""
    _order: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.step)

    @property
    def max_step(self) -> int:
        return int(self.step.max()) if len(self.step) else 0

    @property
    def order(self) -> np.ndarray:
        """Row indices in step order."""
        if self._order is None:
            self._order = np.argsort(self.step, kind="stable")
        return self._order

    def _column(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(values as float64, mask of the rows that have it), or None for a key no row has."""
        if key in ("step", "tokens"):
            col = getattr(self, key).astype(np.float64)
            return col, np.ones(len(col), bool)
        col = self.values.get(key)
        if col is None:
            col = self.extra.get(key)
        if col is None:
            return None
        mask = self.present.get(key)
        return col, (np.ones(len(col), bool) if mask is None else mask)

    def _finite_mask(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        got = self._column(key)
        if got is None:
            return None
        col, mask = got
        return col, mask & np.isfinite(col)

    def finite(self, key: str) -> list[float]:
        """The key's finite values in row order (what `as_num(record.get(key))` kept)."""
        got = self._finite_mask(key)
        return [] if got is None else got[0][got[1]].tolist()

    def series(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(x, value) in step order where both are finite numbers."""
        ys, xs = self._finite_mask(key), self._finite_mask(x)
        if ys is None or xs is None:
            return [], []
        keep = (ys[1] & xs[1])[self.order]
        rows = self.order[keep]
        return xs[0][rows].tolist(), ys[0][rows].tolist()

    def nonfinite_steps(self, key: str) -> list[int]:
        """Sorted steps whose record has `key` as NaN or an infinity."""
        got = self._column(key)
        if got is None:
            return []
        col, mask = got
        return sorted(self.step[mask & ~np.isfinite(col)].tolist())

    def gaps(self, a: str, b: str) -> list[float]:
        """a - b at each row where both are finite and so is the difference, in row order."""
        ga, gb = self._finite_mask(a), self._finite_mask(b)
        if ga is None or gb is None:
            return []
        both = ga[1] & gb[1]
        with np.errstate(over="ignore", invalid="ignore"):
            diff = ga[0][both] - gb[0][both]
        return diff[np.isfinite(diff)].tolist()

    def at(self, step: int) -> dict[str, Any] | None:
        """The record that stands for `step`, as {field: value} of the fields it has; None if none."""
        if not len(self.step):
            return None
        order = self.order
        i = int(np.searchsorted(self.step[order], step))
        if i >= len(order) or self.step[order[i]] != step:
            return None
        row = int(order[i])
        out: dict[str, Any] = {"step": int(self.step[row]), "tokens": int(self.tokens[row])}
        for key, col in (*self.values.items(), *self.extra.items()):
            mask = self.present.get(key)
            if mask is None or mask[row]:
                out[key] = float(col[row])
        return out

    def rows_by_step(
        self, keys: tuple[str, ...]
    ) -> Iterator[tuple[int, int, float | None, list[tuple[str, float]]]]:
        """(step, tokens, finite time or None, [(key, value)...]) per row in step order: the fields in
        `keys` the row has, then its own extra keys: what `nexus export` writes of a metric record."""
        if not len(self.step):
            return  # no metric record stands (a file of garbage): the empty table has no columns
        order = self.order.tolist()
        steps, tokens = self.step.tolist(), self.tokens.tolist()
        times = self.values["time"].tolist()
        time_mask = self.present.get("time")
        has = (lambda i: True) if time_mask is None else time_mask.__getitem__
        cols = [(k, self.values[k].tolist(), self.present.get(k)) for k in keys if k in self.values]
        cols += [(k, c.tolist(), self.present.get(k)) for k, c in self.extra.items()]
        cols = [(k, c, None if m is None else m.tolist()) for k, c, m in cols]
        for i in order:
            t = times[i]
            at = t if has(i) and math.isfinite(t) else None
            yield steps[i], tokens[i], at, [(k, c[i]) for k, c, m in cols if m is None or m[i]]
