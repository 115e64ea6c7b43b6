"""Decoded records as the store takes them in bulk: metric columns (`MetricBlock`) and pieces.

Shared by the decoder (fastdecode.py, fixedlayout.py), the cache (colcache.py) and the store's bulk
path (bulk.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

VALUE_KEYS = ("loss", "ce", "lr", "gnorm", "tok_s", "mem")
"""The metric fields that become series (the store's METRIC_KEYS)."""
COLUMN_FIELDS = ("step", "tokens", "time", "seq", *VALUE_KEYS)


@dataclass
class MetricBlock:
    """Consecutive metric records as columns. A field a record lacked (or had as nil) is NaN in its
    column and False in `present[field]`; a field every record had has no entry in `present`."""

    seq: np.ndarray
    """int64; -1 where a record had no seq."""
    step: np.ndarray
    tokens: np.ndarray
    time: np.ndarray
    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.step)

    def has_all(self, name: str) -> bool:
        return name not in self.present

    def slice(self, start: int, stop: int | None = None) -> MetricBlock:
        s = slice(start, stop)
        return MetricBlock(self.seq[s], self.step[s], self.tokens[s], self.time[s],
                           {k: v[s] for k, v in self.values.items()}, {k: v[s] for k, v in self.present.items()})

    def records(self) -> list[dict[str, Any]]:
        """The block as the dicts RecordDecoder would have given (fields it had, as floats; seq int)."""
        out = []
        cols = {"step": self.step, "tokens": self.tokens, "time": self.time, **self.values}
        lists = {k: v.tolist() for k, v in cols.items()}
        masks = {k: m.tolist() for k, m in self.present.items()}
        seqs = self.seq.tolist()
        for i in range(len(self)):
            rec: dict[str, Any] = {"type": "metric"}
            if "seq" not in masks or masks["seq"][i]:
                rec["seq"] = seqs[i]
            for k, col in lists.items():
                if k not in masks or masks[k][i]:
                    rec[k] = col[i]
            out.append(rec)
        return out

    @staticmethod
    def concat(blocks: list[MetricBlock]) -> MetricBlock:
        keys = set().union(*(b.present for b in blocks))
        present = {k: np.concatenate([b.present.get(k, np.ones(len(b), bool)) for b in blocks]) for k in keys}
        return MetricBlock(
            np.concatenate([b.seq for b in blocks]), np.concatenate([b.step for b in blocks]),
            np.concatenate([b.tokens for b in blocks]), np.concatenate([b.time for b in blocks]),
            {k: np.concatenate([b.values[k] for b in blocks]) for k in VALUE_KEYS}, present,
        )


Piece = MetricBlock | list[dict[str, Any]]
"""A stretch of the stream in order: metric columns, or other records as dicts."""


def batch_records(pieces: list[Piece]) -> list[dict[str, Any]]:
    """Pieces back to plain records, in stream order (for callers that want dicts)."""
    out: list[dict[str, Any]] = []
    for p in pieces:
        out.extend(p.records() if isinstance(p, MetricBlock) else p)
    return out
