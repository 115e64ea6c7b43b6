"""At most one live update a second for text a person reads (the run table, the summary line).

Records arrive several times a second and every one changes a step count, a loss or an ETA; a
DataTable or a Static repaints its whole region on any change, which was a good part of the
dashboard's own CPU while runs train. Numbers are read about once a second, so live changes are
applied at most once per `interval`; the last one held back is applied when its slot comes (a
timer), and anything a person did (`live=False`) applies at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LIVE_TEXT_S = 1.0


class Throttle:
    """Rate-limits one widget's live updates; the newest held-back update wins."""

    def __init__(self, widget: Any, interval: float = LIVE_TEXT_S) -> None:
        self.widget = widget
        self.interval = interval
        self._last = -float("inf")
        self._pending: Callable[[], None] | None = None
        self._timer: Any = None

    def __call__(self, apply: Callable[[], None], live: bool) -> None:
        wait = self._last + self.interval - time.monotonic()
        if not live or wait <= 0:
            self._pending = None
            self._run(apply)
            return
        self._pending = apply
        if self._timer is None:
            self._timer = self.widget.set_timer(wait, self._slot)

    def _slot(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, None
        if pending is not None:
            self._run(pending)

    def _run(self, apply: Callable[[], None]) -> None:
        self._last = time.monotonic()
        apply()
