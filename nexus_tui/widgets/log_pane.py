"""The log pane: engine `log` records, lines of engine.log when a run crashes, and app warnings.

One place for everything textual that is not a sample, each line prefixed with the run's name in its
colour and a level colour, so "why did that run stop" is answered without leaving the dashboard.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

from nexus_core.text import clean_text
from nexus_tui.widgets.reflow_log import ReflowLog

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}


class LogPane(ReflowLog):
    """Timestamped, coloured log lines; keeps the last few thousand."""

    DEFAULT_CSS = """
    LogPane { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=5000, **kwargs)
        self.lines_written: list[str] = []
        """Plain text of each line (what tests and a copy command read)."""

    def add_line(
        self, source: str, text: str, level: str = "info", color: str = "", when: float | None = None
    ) -> None:
        """One line: HH:MM:SS source level text. `source` is a run name or 'nexus'. Both are cleaned
        here (escape sequences, control characters) whatever the caller passed: this is where run
        text becomes screen text. Long lines wrap; they are never cut."""
        source, text = clean_text(source, limit=80), clean_text(text)
        stamp = time.strftime("%H:%M:%S", time.localtime(when if when is not None else time.time()))
        line = Text(f"{stamp} ", style="dim")
        line.append(source, style=f"bold {color}" if color else "bold")
        if level != "info":
            line.append(f" {level}", style=LEVEL_STYLES.get(level, ""))
        line.append(" " + text, style=LEVEL_STYLES.get(level, ""))
        self.add(line)
        self.lines_written.append(f"{source} {level} {text}")

    def add_block(self, source: str, text: str, level: str = "error", color: str = "") -> None:
        """Several lines at once (a crashed run's log tail), each its own line."""
        for raw in clean_text(text, multiline=True).rstrip().splitlines()[-40:]:
            self.add_line(source, raw, level, color)
