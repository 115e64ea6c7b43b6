"""The keys, on `?` or F1: every key of the dashboard, and for the selected run whether it works in the
state that run is in, with the reason when it does not (lazygit's `?` panel, k9s's context hints).

The app decides what works (`RunActions.key_help`); this screen only draws it. Escape, `?`, F1 or `q`
close it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from nexus_core.text import clean_text
from nexus_tui.screens.confirm import Dialog


@dataclass(frozen=True)
class KeyHelp:
    """One row: the key as shown, what it does, and why it does nothing now ('' when it works)."""

    key: str
    what: str
    why_not: str = ""
    section: str = "run"


class HelpScreen(Dialog[None]):
    """The keys and what each does on the selected run now."""

    DEFAULT_CSS = """
    HelpScreen > Vertical { width: 84; height: 90%; padding: 0 1; }
    HelpScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape,question_mark,f1,q", "close", "Close")]

    def __init__(self, subject: str, rows: list[KeyHelp]) -> None:
        super().__init__()
        self.subject = subject
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Keys — {clean_text(self.subject, limit=80)}", classes="title", markup=False)
            table: DataTable = DataTable(cursor_type="row", id="keys", zebra_stripes=True)
            table.add_column("key", width=3)
            table.add_column("does", width=32)
            table.add_column("on the selected run", width=28)
            for row in self.rows:
                status = (
                    Text("✓ works", style="green")
                    if not row.why_not
                    else Text(f"✗ {row.why_not}", style="dim")
                )
                table.add_row(Text(row.key, style="bold"), Text(row.what), status, height=None)
            yield table
            yield Label(
                "↑↓ scroll · Escape (or ?) closes · ctrl+p searches every command by name", markup=False
            )

    def on_mount(self) -> None:
        self.query_one("#keys").focus()

    def action_close(self) -> None:
        self.dismiss(None)
