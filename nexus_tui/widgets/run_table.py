"""The run list: one row per run, each run's name in its own colour, updated in place.

Rows are keyed by run name and cells are updated rather than the table rebuilt, so the cursor and
scroll position survive the several refreshes a second that live runs cause.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from nexus_core.text import clean_text
from nexus_tui import format as fmt
from nexus_tui.themes import ChartPalette
from nexus_tui.widgets.throttle import Throttle

if TYPE_CHECKING:
    from nexus_tui.history.store import RunView

COLUMNS = (
    ("name", "Run"),
    ("model", "Model"),
    ("device", "Device"),
    ("state", "State"),
    ("step", "Step/Total"),
    ("eta", "ETA"),
    ("loss", "Loss"),
    ("ce", "H"),
    ("best", "Best val"),
    ("tok_s", "Tok/s"),
)

DROP_ORDER = ("model", "device", "eta", "tok_s")
"""Columns hidden, first to last, while the table is too narrow for all of them: the run's name,
state, step, loss/H and best val always stay (at 80x24 nobody should scroll sideways to see them)."""

STATE_STYLES = {
    "running": "bold green",
    "paused": "bold yellow",
    "checkpointing": "cyan",
    "starting": "dim",
    "finished": "blue",
    "crashed": "bold red",
    "stalled": "bold yellow reverse",
    "stopped": "dim",
    "failed": "bold red",
    "killed": "magenta",
}


def row_cells(run: RunView, palette: ChartPalette, marked: bool) -> list[Any]:
    """The cells of one run's row, in COLUMNS order: every one a rich Text, because DataTable parses
    a plain str cell as markup and a run's text must never be (docs/SECURITY.md)."""
    mark = "● " if marked else "  "
    name = Text(mark + run.label, style=f"bold {palette.hex(run.color)}")
    shown = run.shown_state()  # "stalled": running, but silent far beyond its usual pace
    label = "starting…" if shown == "starting" else clean_text(str(shown or "?"))  # importing torch, building
    state = Text(label, style=STATE_STYLES.get(str(shown), ""))
    loading = getattr(run, "loading", None)
    if loading is not None:  # its history is still being read: the records' state is not news yet
        state = Text(f"loading {int(loading * 100)}%", style="italic")
    if run.exit_code not in (None, 0):
        state.append(f" ({run.exit_code})", style="red")
    total = run.total_steps or 0
    step = f"{run.step or 0}/{total}" if total else str(run.step or 0)
    return [
        name,
        fmt.plain(run.model or fmt.DASH),
        fmt.plain(run.device or fmt.DASH),
        state,
        fmt.plain(step),
        *map(
            fmt.plain,
            (
                fmt.duration(None if loading is not None else run.eta_s),
                fmt.loss(run.loss),
                fmt.loss(run.ce),
                fmt.loss(run.best_val_loss),
                fmt.count(run.tok_s),
            ),
        ),
    ]


URGENT = ("name", "model", "device", "state")
"""Columns whose change is news (a run stopped, crashed, finished): drawn at once, never held back."""


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
        self._shown: tuple[str, ...] = tuple(key for key, _ in COLUMNS)
        self._content: dict[str, int] = {}
        self._drawn: dict[tuple[str, str], Any] = {}
        """(run, column) -> the cell value last written, to write only what changed."""
        """column -> widest cell seen, to know what fits before a column is shown."""
        self._throttle = Throttle(self)

    def on_mount(self) -> None:
        self._show_columns(self._shown)

    def on_resize(self) -> None:
        self._fit()

    def _show_columns(self, keys: tuple[str, ...]) -> None:
        """(Re)build the table with these columns: rare (a resize across a threshold), so a rebuild
        that keeps the cursor on the same run is simpler than juggling column positions."""
        cursor = self.highlighted
        self._drawn.clear()
        self.clear(columns=True)
        self._shown = keys
        labels = dict(COLUMNS)
        for key in keys:
            self.add_column(labels[key], key=key)
        if self._palette is not None:
            for name, run in self._runs.items():
                self.add_row(*self._cells(run), key=name)
        if cursor is not None:
            self.select_run(cursor)

    def _cells(self, run: RunView) -> list[Any]:
        assert self._palette is not None
        cells = row_cells(run, self._palette, run.name in self.marked)
        return [c for (key, _), c in zip(COLUMNS, cells, strict=True) if key in self._shown]

    def _wanted(self) -> tuple[str, ...]:
        """The columns that fit the table's width, dropping DROP_ORDER's first."""
        keys = [key for key, _ in COLUMNS]
        room = self.scrollable_content_region.width
        if room <= 0:  # not laid out yet
            return tuple(keys)
        widths = {
            key: max(cell_len(label), self._content.get(key, 0)) + 2 * self.cell_padding
            for key, label in COLUMNS
        }
        for key in DROP_ORDER:
            if sum(widths[k] for k in keys) <= room:
                break
            keys.remove(key)
        return tuple(keys)

    def _fit(self) -> bool:
        """Show the columns that fit now; returns whether the table was rebuilt."""
        wanted = self._wanted()
        if wanted == self._shown:
            return False
        self._show_columns(wanted)
        return True

    @property
    def highlighted(self) -> str | None:
        """Name of the run under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value)
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no cursor row
            return None

    @property
    def selected(self) -> list[str]:
        """Marked runs in table order, else the highlighted run."""
        if self.marked:
            return [n for n in self._runs if n in self.marked]
        name = self.highlighted
        return [name] if name else []

    def show_runs(self, runs: Iterable[RunView], palette: ChartPalette, live: bool = False) -> None:
        """Add new runs, update the cells of known ones (cursor stays where it is). `live`: only
        records arrived, so the cells of known runs change at most once a second (throttle.py)."""
        runs = list(runs)
        routine = live and self._palette is palette and all(run.name in self._runs for run in runs)
        if routine:  # a state, a name, a model or a device that changed is shown at once
            for run in runs:
                cells = dict(
                    zip(
                        (key for key, _ in COLUMNS),
                        row_cells(run, palette, run.name in self.marked),
                        strict=True,
                    )
                )
                if any(
                    key in self._shown and self._drawn.get((run.name, key)) != cells[key] for key in URGENT
                ):
                    routine = False
                    break
        self._throttle(lambda: self._show(runs, palette), live=routine)

    def _show(self, runs: list[RunView], palette: ChartPalette) -> None:
        self._palette = palette
        was_empty = not self.row_count
        cells = {run.name: row_cells(run, palette, run.name in self.marked) for run in runs}
        for run in runs:
            for (key, _), cell in zip(COLUMNS, cells[run.name], strict=True):
                width = cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))
                self._content[key] = max(self._content.get(key, 0), width)
        fresh = [run for run in runs if run.name not in self._runs]
        self._runs.update((run.name, run) for run in runs)
        if not self._fit():  # a rebuild already drew every row
            for run in runs:
                if run in fresh:
                    self.add_row(*self._cells(run), key=run.name)
                    continue
                shown = [
                    c for (key, _), c in zip(COLUMNS, cells[run.name], strict=True) if key in self._shown
                ]
                for key, value in zip(self._shown, shown, strict=True):
                    if self._drawn.get((run.name, key)) != value:  # an update repaints the table
                        self._drawn[(run.name, key)] = value
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
            self.update_cell(name, "name", self._cells(self._runs[name])[0])
        self.post_message(self.SelectionChanged(self.selected))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.marked:
            self.post_message(self.SelectionChanged(self.selected))
