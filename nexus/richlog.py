"""What log() does with a value that is not a number: the path off the hot one (values.grab said no).

- wandb data types (`media.py`, `plot.py`) file their own records (table, histogram, media);
- a string is kept as a text record at its step; a bool as 0/1;
- a tensor, array or list of numbers with more than one element is kept as a histogram record, as
  wandb does; a list of media values files each.
None means the value has no record (a dict of objects, None...): the caller says once it skipped it.
"""

from __future__ import annotations

import sys
from typing import Any

from nexus.media import Histogram, Sink, WBValue
from nexus_core import protocol as P

MAX_TEXT = 100_000
"""Characters of a logged string kept (a record stays far under the protocol's 1 MiB)."""


def rich_records(sink: Sink, key: str, value: Any, step: int) -> list[dict[str, Any]] | None:
    if isinstance(value, WBValue):
        return value._records(sink, key, step)
    if isinstance(value, str):
        return [{"type": P.TEXT, "key": key, "text": value[:MAX_TEXT], "step": step}]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, WBValue) for v in value):
        return [r for v in value for r in v._records(sink, key, step)]
    if _numeric_array(value):
        return Histogram(value)._records(sink, key, step)
    return None


def _numeric_array(value: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.numel() > 1 and not value.is_complex()
    module = type(value).__module__
    if module == "numpy":
        return getattr(value, "size", 0) > 1 and getattr(value.dtype, "kind", "") in "iuf"
    if isinstance(value, (list, tuple)) and len(value) > 1:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return False
