"""Decoded records as the store takes them in bulk: metric columns (`MetricBlock`) and pieces.

Shared by the decoder (fastdecode.py, fixedlayout.py), the cache (colcache.py) and the store's bulk
path (bulk.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nexus_core.recordtypes import METRIC_VALUES, Metric, Record
from nexus_tui.history.series_keys import METRIC_KEYS

VALUE_KEYS = METRIC_KEYS
"""The metric fields that become series (the store's METRIC_KEYS)."""
BLOCK_KEYS = (*VALUE_KEYS, *(k for k in METRIC_VALUES if k not in VALUE_KEYS))
"""Every number field of a Metric besides step/tokens/time/seq: what a block holds, so its records
are exactly the Metric structs RecordDecoder yields (step_s feeds no series, but the report reads it).
The series first: this order is the cache file's column order (colcache), kept as it was."""
COLUMN_FIELDS = ("step", "tokens", "time", "seq", *BLOCK_KEYS)


@dataclass
class MetricBlock:
    """Consecutive metric records as columns. A field a record lacked (or had as nil) is NaN in its
    column and False in `present[field]`; a field every record had has no entry in `present`.
    A writer's own numeric keys (RecordDecoder's `record.extra`) are columns of `extra`, in the order
    the records hold them, with their masks in `present` too (no extra key is a Metric field)."""

    seq: np.ndarray
    """int64; -1 where a record had no seq."""
    step: np.ndarray
    tokens: np.ndarray
    time: np.ndarray
    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    release: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    """Called once the store has copied the block (colcache: give the mapped pages back)."""

    def __len__(self) -> int:
        return len(self.step)

    def has_all(self, name: str) -> bool:
        return name not in self.present

    def slice(self, start: int, stop: int | None = None) -> MetricBlock:
        s = slice(start, stop)
        return MetricBlock(
            self.seq[s],
            self.step[s],
            self.tokens[s],
            self.time[s],
            {k: v[s] for k, v in self.values.items()},
            {k: v[s] for k, v in self.present.items()},
            {k: v[s] for k, v in self.extra.items()},
        )

    def records(self) -> list[Record]:
        """The block as the typed records RecordDecoder yields: Metric structs with the fields each
        record had (step and tokens ints, a missing field None, a missing seq None)."""
        cols = {"time": self.time, **self.values}
        lists = {k: v.tolist() for k, v in cols.items()}
        masks = {k: m.tolist() for k, m in self.present.items()}
        seqs, steps, tokens = (
            self.seq.tolist(),
            self.step.astype(np.int64).tolist(),
            self.tokens.astype(np.int64).tolist(),
        )
        seq_mask = masks.get("seq")
        extra = {k: v.tolist() for k, v in self.extra.items()}
        out: list[Record] = []
        for i in range(len(self)):
            fields = {k: (col[i] if k not in masks or masks[k][i] else None) for k, col in lists.items()}
            seq = seqs[i] if seq_mask is None or seq_mask[i] else None
            rec = Metric(seq=seq, step=steps[i], tokens=tokens[i], **fields)
            if extra and (mine := {k: col[i] for k, col in extra.items() if k not in masks or masks[k][i]}):
                rec.set_extra(mine)
            out.append(rec)
        return out

    @staticmethod
    def concat(blocks: list[MetricBlock]) -> MetricBlock:
        extras = list(dict.fromkeys(k for b in blocks for k in b.extra))
        keys = set().union(*(b.present for b in blocks), extras)

        def mask(b: MetricBlock, k: str) -> np.ndarray:
            if k in b.present:
                return b.present[k]
            return np.full(len(b), k not in extras or k in b.extra, bool)

        present = {k: np.concatenate([mask(b, k) for b in blocks]) for k in keys}
        present = {k: m for k, m in present.items() if not m.all()}
        return MetricBlock(
            np.concatenate([b.seq for b in blocks]),
            np.concatenate([b.step for b in blocks]),
            np.concatenate([b.tokens for b in blocks]),
            np.concatenate([b.time for b in blocks]),
            {k: np.concatenate([b.values[k] for b in blocks]) for k in BLOCK_KEYS},
            present,
            {k: np.concatenate([b.extra.get(k, np.full(len(b), np.nan)) for b in blocks]) for k in extras},
        )


Piece = MetricBlock | list[Record]
"""A stretch of the stream in order: metric columns, or other typed records."""


def batch_records(pieces: list[Piece]) -> list[Record]:
    """Pieces back to typed records, in stream order (for callers that want records)."""
    out: list[Record] = []
    for p in pieces:
        out.extend(p.records() if isinstance(p, MetricBlock) else p)
    return out
