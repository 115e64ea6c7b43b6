"""Every text sample the runs produced, with its step, newest last.

Samples are how a person sees a model learn ("To beUouri tiem" -> "To bere whisthid"), so each one
is shown whole: a header line in the run's colour (run, step, requested or scheduled), then the prompt
in bold followed by the generated text. It is a RichLog so it scrolls and caps its own memory.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from nexus_core.recordtypes import Sample
from nexus_core.text import clean_text
from nexus_tui.widgets.reflow_log import ReflowLog


class SamplesPane(ReflowLog):
    """Append-only view of `sample` records."""

    DEFAULT_CSS = """
    SamplesPane { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=4000, **kwargs)
        self.count = 0
        """How many samples have been shown (tests and the tab label read it)."""
        self.texts: list[str] = []
        """The generated texts in arrival order (the last is what a person just asked for)."""

    def add_sample(self, run_name: str, color: str, record: Sample) -> None:
        """Show one `sample` record; `color` is the run's colour as #rrggbb."""
        # The store cleaned the record's strings at ingest; the name is the run folder's (untrusted).
        prompt, text = record.prompt, record.text
        run_name = clean_text(run_name, limit=80)
        how = "asked" if record.requested else "scheduled"
        header = Text(f"▍{run_name} · step {record.step} · {how}", style=f"bold {color}")
        body = Text()
        body.append(prompt, style="bold")
        # Generated text may start with the prompt or not, depending on the engine; show it once.
        body.append(text[len(prompt) :] if prompt and text.startswith(prompt) else text)
        self.add(header)
        self.add(body)
        self.add(Text(""))
        self.count += 1
        self.texts.append(text)
