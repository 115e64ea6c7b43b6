"""A numeric column that grows by chunks (float64 unless told): numpy storage with the few list-like
manners Series needs. The one growable column: the series (float64) and the curve caches (int64
bucket summaries, the float32 EMA) all use it.

`array('d')` appends one Python float at a time; a million-step run arrives in blocks of tens of
thousands (the columnar decoder, the cache), so columns take whole numpy arrays in one copy, and
readers get numpy views for vectorised work (min/max buckets, searchsorted) with no conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

_MIN = 256


class Grow:
    """Growable numeric column (float64 unless `dtype` says otherwise). Indexing an int gives a float; a slice gives a numpy copy (safe to
    hand to another thread while the column keeps growing); `view` is the live numpy view."""

    __slots__ = ("buf", "n")

    def __init__(self, values: Any = None, dtype: type = np.float64) -> None:
        self.buf: np.ndarray = np.empty(_MIN, dtype)
        self.n = 0
        if values is not None:
            self.extend(values)

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self) -> Iterator[float]:
        return iter(self.buf[: self.n].tolist())

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return self.buf[: self.n][key].copy()
        if key < 0:
            key += self.n
        if not 0 <= key < self.n:
            raise IndexError("Grow index out of range")
        return float(self.buf[key])

    @property
    def view(self) -> np.ndarray:
        return self.buf[: self.n]

    def _room(self, extra: int) -> None:
        need = self.n + extra
        if need > len(self.buf):
            # Half again what is needed: appends one at a time and block after block stay amortised
            # O(1); a bulk load that knows its size calls `reserve` first and gets no slack.
            grown = np.empty(max(need + need // 2, _MIN), self.buf.dtype)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown

    def reserve(self, extra: int) -> None:
        """Make room for `extra` more values in one allocation (a history about to be loaded)."""
        need = self.n + extra
        if need > len(self.buf):
            grown = np.empty(need, self.buf.dtype)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown

    def append(self, value: float) -> None:
        n = self.n  # the per-record path's hot spot: locals, no len()
        if n == self.buf.shape[0]:
            self._room(1)
        self.buf[n] = value
        self.n = n + 1

    def extend(self, values: Any) -> None:
        values = np.asarray(values, dtype=self.buf.dtype)
        self._room(len(values))
        self.buf[self.n : self.n + len(values)] = values
        self.n += len(values)

    def insert(self, at: int, value: float) -> None:
        self._room(1)
        self.buf[at + 1 : self.n + 1] = self.buf[at : self.n].copy()
        self.buf[at] = value
        self.n += 1

    def __delitem__(self, key: slice) -> None:
        """Only `del col[at:]` (a cut back) is supported."""
        if not isinstance(key, slice) or key.stop is not None or key.step is not None:
            raise TypeError("Grow supports only del col[at:]")
        start = key.start or 0
        self.n = max(0, min(self.n, start if start >= 0 else self.n + start))
