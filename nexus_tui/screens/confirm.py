"""Small yes/no and three-way questions: stopping a run, and what to do with live runs on quit.

Questions name runs, and run names are untrusted: they are cleaned and never parsed as markup.

Stopping a run and quitting are the two keys that can cost hours of training, so both ask first and
both default to the harmless answer (Escape cancels).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, ScreenResultType
from textual.widgets import Button, Label

from nexus_core.text import clean_text


class Dialog(ModalScreen[ScreenResultType]):
    """A centred, bordered modal. Its CSS is unscoped on purpose: scoped screen CSS is prefixed with
    the screen's type and would not match the screen itself."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    Dialog .buttons { height: auto; margin-top: 1; align-horizontal: right; }
    Dialog .buttons Button { margin-left: 1; }
    Dialog .error { color: $error; height: auto; }
    Dialog .title { text-style: bold; margin-bottom: 1; }
    Dialog Vertical > Label { width: 100%; }  /* wrap long questions instead of cutting them */
    """


class FormDialog(Dialog[ScreenResultType]):
    """A dialog with inputs and a "go" button: Enter in any input or "go" submits, anything else and
    Escape cancel. Subclasses say what submitting means."""

    def _submit(self) -> None:
        raise NotImplementedError

    def on_input_submitted(self) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(Dialog[bool]):
    """Ask a yes/no question; dismisses with True only on the confirming button or key y."""

    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Yes", details: list[str] | None = None) -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.details = details or []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(clean_text(self.question), classes="title", markup=False)
            for line in self.details:  # paths and reasons from a run folder: cleaned, never markup
                yield Label(clean_text(line, limit=200), markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="no")
                yield Button(self.yes, id="yes", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class QuitScreen(Dialog[str | None]):
    """On quit with live runs: 'leave' them training, 'stop' them (checkpoint first), or cancel."""

    BINDINGS = [
        Binding("escape", "answer(None)", "Cancel"),
        Binding("l", "answer('leave')", "Leave training"),
        Binding("s", "answer('stop')", "Stop runs"),
    ]

    def __init__(self, live: list[str]) -> None:
        super().__init__()
        self.live = live

    def compose(self) -> ComposeResult:
        with Vertical():
            names = ", ".join(clean_text(n, limit=80) for n in self.live)
            yield Label(f"{len(self.live)} run(s) still training: {names}", classes="title", markup=False)
            yield Label(
                "Leave them training (the next `nexus` re-attaches them), or stop them "
                "(each saves a checkpoint first)?"
            )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Stop runs", id="stop", variant="error")
                yield Button("Leave training", id="leave", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
