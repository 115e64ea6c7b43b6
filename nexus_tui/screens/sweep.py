"""The sweep view: a sweep's runs ranked by best val loss with the values it varied as columns
(`jobs.sweep_cli.sweep_table`, the same table `nexus sweep show` prints), refreshed each few seconds
while they train; `m` opens the compare screen with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from nexus_tui import format as fmt
from nexus_tui.jobs import ops, queuefile
from nexus_tui.jobs.sweep_cli import sweep_table

REFRESH_S = 2.0


class SweepScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    SweepScreen { align: center middle; }
    SweepScreen > Vertical { width: 96%; height: 90%; border: round $accent; background: $surface; }
    SweepScreen DataTable { height: 1fr; }
    SweepScreen #sweep-note { height: auto; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("m", "compare", "Compare them")]

    def __init__(self, root: Path, name: str) -> None:
        super().__init__()
        self.root, self.sweep = root, name
        self.runs: list[str] = []
        self._keys: list[str] | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(fmt.plain(f"Sweep {self.sweep}"), classes="title")
            yield DataTable(id="sweep", cursor_type="row", zebra_stripes=True)
            yield Static(
                "ranked by best val loss · m compare them · esc close", id="sweep-note", markup=False
            )

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(REFRESH_S, self.reload)

    def reload(self) -> None:
        try:
            keys, rows = sweep_table(self.root, self.sweep)
        except (ops.JobError, queuefile.QueueError) as e:
            self.query_one("#sweep-note", Static).update(fmt.plain(str(e)))
            return
        table = self.query_one(DataTable)
        if self._keys != keys:
            table.clear(columns=True)
            table.add_columns("#", "run", *keys, "best val", "state", "step")
            self._keys = keys
        table.clear()
        self.runs = [r[0] for r in rows]
        for i, (run, values, best, state, step) in enumerate(rows):
            cells: list[Any] = [
                i + 1,
                run,
                *(values[k] for k in keys),
                "-" if best is None else f"{best:.4f}",
                state,
                step,
            ]
            table.add_row(*(fmt.plain(c) for c in cells), key=run)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_compare(self) -> None:
        from nexus_tui.screens.compare import CompareScreen
        from nexus_tui.themes import palette_for

        app: Any = self.app
        names = [n for n in self.runs if app.store.get(n) is not None]
        if not names:
            self.notify("None of the sweep's runs has started yet", severity="warning")
            return
        app.push_screen(CompareScreen(app.store, palette_for(app.theme), names, app.ema))
