"""The run list: one row per run, each run's name in its own colour, updated in place.

Rows are keyed by run name and cells are updated rather than the table rebuilt, so the cursor and
scroll position survive the several refreshes a second that live runs cause.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from nexus_tui.themes import ChartPalette
from nexus_tui.widgets import format as fmt

if TYPE_CHECKING:
    from nexus_tui.store import RunView

COLUMNS = (
    ("name", "Run"), ("model", "Model"), ("device", "Device"), ("state", "State"),
    ("step", "Step/Total"), ("eta", "ETA"), ("loss", "Loss"), ("ce", "H"),
    ("best", "Best val"), ("tok_s", "Tok/s"),
)

STATE_STYLES = {
    "running": "bold green", "paused": "bold yellow", "checkpointing": "cyan", "starting": "dim",
    "finished": "blue", "crashed": "bold red", "stopped": "dim",
}


def row_cells(run: RunView, palette: ChartPalette, marked: bool) -> list[Any]:
    """The cells of one run's row, in COLUMNS order."""
    mark = "● " if marked else "  "
    name = Text(mark + run.name, style=f"bold {palette.hex(run.color)}")
    label = "starting…" if run.state == "starting" else str(run.state or "?")  # importing torch, building
    state = Text(label, style=STATE_STYLES.get(str(run.state), ""))
    if run.exit_code not in (None, 0):
        state.append(f" ({run.exit_code})", style="red")
    total = run.total_steps or 0
    step = f"{run.step or 0}/{total}" if total else str(run.step or 0)
    return [
        name, str(run.model or fmt.DASH), str(run.device or fmt.DASH), state, step,
        fmt.duration(run.eta_s), fmt.loss(run.loss), fmt.loss(run.ce), fmt.loss(run.best_val_loss),
        fmt.count(run.tok_s),
    ]


class RunTable(DataTable):
    """Every run the app knows of. Space marks runs: the charts show the marked runs, or the
    highlighted one when none is marked."""

    DEFAULT_CSS = """
    RunTable { height: auto; max-height: 9; }
    """

    BINDINGS = [Binding("space", "toggle_mark", "Mark", show=False)]

    class SelectionChanged(Message):
        """The set of runs the charts should show changed."""

        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.marked: set[str] = set()
        self._runs: dict[str, RunView] = {}
        self._palette: ChartPalette | None = None

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted(self) -> str | None:
        """Name of the run under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value)
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no cursor row
            return None

    @property
    def selected(self) -> list[str]:
        """Marked runs in table order, else the highlighted run."""
        if self.marked:
            return [n for n in self._runs if n in self.marked]
        name = self.highlighted
        return [name] if name else []

    def show_runs(self, runs: Iterable[RunView], palette: ChartPalette) -> None:
        """Add new runs, update the cells of known ones (cursor stays where it is)."""
        self._palette = palette
        was_empty = not self.row_count
        for run in runs:
            cells = row_cells(run, palette, run.name in self.marked)
            old = self._runs.get(run.name)
            self._runs[run.name] = run
            if old is None:
                self.add_row(*cells, key=run.name)
                continue
            for (key, _), value in zip(COLUMNS, cells, strict=True):
                self.update_cell(run.name, key, value, update_width=True)
        if was_empty and self.row_count:
            self.post_message(self.SelectionChanged(self.selected))

    def select_run(self, name: str) -> None:
        """Move the cursor to a run (e.g. one just launched)."""
        with contextlib.suppress(RowDoesNotExist):
            self.move_cursor(row=self.get_row_index(name))

    def action_toggle_mark(self) -> None:
        name = self.highlighted
        if name is None:
            return
        self.marked.symmetric_difference_update({name})
        if self._palette is not None and name in self._runs:
            self.update_cell(name, "name", row_cells(self._runs[name], self._palette, name in self.marked)[0])
        self.post_message(self.SelectionChanged(self.selected))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.marked:
            self.post_message(self.SelectionChanged(self.selected))
