"""The two chart-grid dialogs: a regex filter (key /) and a chooser of which charts to show (key f)."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, SelectionList, Static

from nexus_tui.curves import chartgrid
from nexus_tui.screens.confirm import Dialog, FormDialog


def prompt(key: str) -> Text:
    """A chooser line: the section, then the key; a Text, so a key from a run is never read as markup."""
    return Text.assemble((f"{chartgrid.section(key):<8} ", "dim"), chartgrid.title(key))


class ChartFilterScreen(FormDialog[str]):
    """Type a regex; charts whose key does not match it are hidden (empty shows all). Dismisses with
    the text only when it compiles; a bad one says why and stays open."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Show charts whose name matches (regex, empty shows all)", classes="title")
            yield Input(self.current, placeholder="e.g. ^train/|acc", id="chart-filter")
            yield Static(id="error", classes="error", markup=False)
            with Horizontal(classes="buttons"):  # Cancel, then the action on the right, as in every dialog
                yield Button("Cancel", id="cancel")
                yield Button("Filter", variant="primary", id="go")

    def _submit(self) -> None:
        text = self.query_one("#chart-filter", Input).value
        try:
            chartgrid.compile_filter(text)
        except ValueError as exc:
            self.query_one("#error", Static).update(str(exc))
            return
        self.dismiss(text)


class ChartChooserScreen(Dialog[None]):
    """Every chart the shown runs have, ticked if shown: space toggles one, and the choice applies (and
    is saved beside the run) at once; escape, enter on Close, or f again closes."""

    BINDINGS = [Binding("escape,f", "close", "Close")]

    def __init__(self, keys: list[str], hidden: set[str], apply: Callable[[set[str]], None]) -> None:
        super().__init__()
        self.keys, self.hidden, self.apply = list(keys), set(hidden), apply

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Charts to show (space toggles, applies at once)", classes="title")
            yield SelectionList[str](
                *((prompt(k), k, k not in self.hidden) for k in self.keys),
                id="chart-choice",
            )
            with Horizontal(classes="buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        chosen = set(event.selection_list.selected)
        self.hidden = {k for k in self.keys if k not in chosen} | (self.hidden - set(self.keys))
        self.apply(self.hidden)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


__all__ = ["ChartChooserScreen", "ChartFilterScreen"]
