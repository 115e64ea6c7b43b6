"""What the adapters share: finding or starting the run, and setting its total steps once known."""

from __future__ import annotations

from typing import Any

import nexus
from nexus.reporter import Run


def start_run(run: Run | None, init_kwargs: dict[str, Any]) -> tuple[Run, bool]:
    """The run an adapter reports into, and whether the adapter started it (and so ends it): the one
    handed over, else the script's current `nexus.run`, else a new one from `init_kwargs`."""
    if run is not None:
        return run, False
    if nexus.run is not None:
        return nexus.run, False
    return nexus.init(**init_kwargs), True


def set_total_steps(run: Run, total: Any) -> None:
    """Tell the run (and so the dashboard's ETA) its length once the framework knows it."""
    try:
        total = int(total)
    except (TypeError, ValueError, OverflowError):
        return
    if total > 0 and total != run.total_steps:
        run.total_steps = total
        run._describe()  # a fresh hello carries it


def file_sample(run: Run, prompt: str, text: str, requested: bool = False, step: int | None = None) -> None:
    """A sample record not asked for through the `g` key (TensorBoard's add_text, say), at `step`
    (default: the last step filed)."""
    import time

    from nexus_core import protocol as P

    at = run._done_step() if step is None else step
    run._writer.put(
        {
            "type": P.SAMPLE,
            "step": at,
            "prompt": prompt,
            "text": text,
            "requested": requested,
            "time": time.time(),
        }
    )


WRAPPERS = frozenset({"AcceleratedOptimizer", "LightningOptimizer"})
"""Optimizer wrappers whose step() calls the wrapped optimizer's: torch's step hooks live on that one."""


def innermost_optimizer(optimizer: Any) -> Any:
    """The torch optimizer under accelerate's or Lightning's wrapper (the one the LR hooks go on)."""
    for _ in range(8):
        if type(optimizer).__name__ not in WRAPPERS:
            break
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if inner is None:
            break
        optimizer = inner
    return optimizer
