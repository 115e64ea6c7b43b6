"""What log() does with a value that is not a number: the path off the hot one (values.grab said no).

- wandb data types (`media.py`, `plot.py`) file their own records (table, histogram, media);
- a string is kept as a text record at its step; a bool as 0/1;
- a tensor, array or list of numbers with more than one element is kept as a histogram record, as
  wandb does; a list of media values files each. A torch tensor is queued as a detached reference
  (`LATER`) and binned by the writer thread (`later_records`): log() never reads a tensor.
None means the value has no record (a dict of objects, None...): the caller says once it skipped it.
"""

from __future__ import annotations

import sys
from typing import Any

from nexus.media import Histogram, Sink, WBValue
from nexus_core import protocol as P

MAX_TEXT = 100_000
"""Characters of a logged string kept (a record stays far under the protocol's 1 MiB)."""
LATER = "_tensor"
"""A queued histogram's field holding the tensor the writer thread bins (never filed as is)."""


def rich_records(sink: Sink, key: str, value: Any, step: int) -> list[dict[str, Any]] | None:
    if isinstance(value, WBValue):
        return value._records(sink, key, step)
    if isinstance(value, str):
        return [{"type": P.TEXT, "key": key, "text": value[:MAX_TEXT], "step": step}]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, WBValue) for v in value):
        return [r for v in value for r in v._records(sink, key, step)]
    if _numeric_array(value):
        return tensor_histogram(key, value, step)
    return None


def tensor_histogram(key: str, value: Any, step: int) -> list[dict[str, Any]]:
    """A torch tensor as a queued reference (binned later, on the writer thread); anything else binned now."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return [
            {"type": P.HISTOGRAM, "key": key, "step": step, LATER: value.detach().clone()}
        ]  # queued, no sync
    return Histogram(value)._records(None, key, step)  # type: ignore[arg-type]


def later_records(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The writer thread's side: the queued tensor binned into a histogram record (one device read);
    a tensor that cannot be read is a lost record, said in a log record, never a dead writer."""
    tensor = item.pop(LATER)
    try:
        return [
            {
                **Histogram(tensor)._records(None, item["key"], item["step"])[0],  # type: ignore[arg-type]
                "time": item.get("time"),
            }
        ]
    except Exception as e:  # noqa: BLE001 - the reporter must never take the training down
        return [
            {
                "type": P.LOG,
                "level": "warning",
                "time": item.get("time"),
                "text": f"key {item['key'][:100]!r}: its tensor could not be read ({type(e).__name__}: {e})",
            }
        ]


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
