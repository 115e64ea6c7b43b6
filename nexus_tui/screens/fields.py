"""A labelled input: the label a person reads above the box, not only in a tooltip or a placeholder
that vanishes once they type (the Generate dialog read `100 | 0.8 | 40` with nothing saying what)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label


class Field(Vertical):
    """One form field: its label on top, the input under it. Queries still find the Input by its id."""

    DEFAULT_CSS = """
    Field { height: auto; width: 1fr; }
    Field > Label { color: $text-muted; width: 100%; }
    Field > Input { width: 100%; }
    """

    def __init__(self, label: str, field: Input) -> None:
        super().__init__(classes="field")
        self.label = label
        self.field = field

    def compose(self) -> ComposeResult:
        yield Label(self.label, markup=False)
        yield self.field
