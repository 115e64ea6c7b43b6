"""Everything the runs logged beyond numbers, by step: text, tables, histograms, pictures and sounds.

Tables are drawn as aligned text, each histogram as one shaded row (rows of one key, step after step,
read as TensorBoard's distributions), a picture as its file name, size and caption (the text
fallback: a terminal that cannot draw pictures still says what is there). Layout: history/mediaview.py.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from nexus_core.recordtypes import Histogram, Media, Table
from nexus_core.recordtypes import Text as TextRecord
from nexus_core.text import clean_text
from nexus_tui.history.mediaview import header, lines_of
from nexus_tui.widgets.reflow_log import ReflowLog


class MediaPane(ReflowLog):
    """Append-only view of text, table, histogram and media records."""

    DEFAULT_CSS = """
    MediaPane { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=4000, **kwargs)
        self.shown: list[str] = []
        """Every line written, plain (tests read what a person would see)."""

    def add_media(self, run_name: str, color: str, record: TextRecord | Table | Histogram | Media) -> None:
        """Show one record under a header in the run's colour (`color` as #rrggbb)."""
        top = header(clean_text(run_name, limit=80), record)
        self.add(Text(top, style=f"bold {color}"))
        body = lines_of(record)
        self.add(Text("\n".join(body), no_wrap=record.type in ("table", "histogram")))
        self.shown += [top, *body]
