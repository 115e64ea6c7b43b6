"""The red bar across the top that makes an alert impossible to miss.

A toast disappears after a few seconds; a NaN at 3 a.m. must still be on screen in the morning. The
bar stays until dismissed (key a) and counts what arrived meanwhile, so nothing is hidden behind the
newest alert.
"""

from __future__ import annotations

from typing import Any

from textual.reactive import reactive
from textual.widgets import Static

from nexus_core.text import clean_text


class AlertBar(Static):
    """Shows the newest undismissed alert and how many more there are."""

    DEFAULT_CSS = """
    AlertBar {
        dock: top;
        height: auto;
        max-height: 3;
        display: none;
        background: $error;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    AlertBar.-active { display: block; }
    """

    alerts: reactive[list[str]] = reactive(list, always_update=True)
    """Undismissed alert lines, oldest first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)

    def raise_alert(self, text: str) -> None:
        self.alerts = [*self.alerts, clean_text(text)]

    def dismiss(self) -> None:
        self.alerts = []

    def watch_alerts(self, alerts: list[str]) -> None:
        self.set_class(bool(alerts), "-active")
        if not alerts:
            self.update("")
            return
        more = f"  (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
        self.update(f"⚠ {alerts[-1]}{more}   [a] dismiss")
