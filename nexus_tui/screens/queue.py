"""The queue screen (`J`): the box's jobs as they are in the runs folder's queue, waiting ones in the
order they will start, with keys to hold/release, cancel, reorder and prioritise them. It reads the
queue file each second (any writer: the runner, the CLI, another dashboard) and edits it through
`jobs.ops`, each edit on a worker thread; a refusal is one notification."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from nexus_tui import format as fmt
from nexus_tui.jobs import ops, queuefile
from nexus_tui.jobs.model import Job, QueueDoc, sort_key

COLUMNS = ("id", "run", "state", "slots", "prio", "after", "kind", "outcome")
HELP = "h hold/release · x cancel · u/d move up/down · t top · +/- priority · w its sweep · esc close"


def queue_rows(doc: QueueDoc) -> list[Job]:
    """Running jobs, then waiting ones in start order, then the last 50 ended ones."""
    waiting = sorted((j for j in doc.jobs if j.waiting), key=sort_key)
    ended = [j for j in doc.jobs if not (j.waiting or j.active)][-50:]
    return [*(j for j in doc.jobs if j.active), *waiting, *reversed(ended)]


class QueueScreen(ModalScreen[None]):
    """The queue, live, with its keys."""

    DEFAULT_CSS = """
    QueueScreen { align: center middle; }
    QueueScreen > Vertical { width: 96%; height: 90%; border: round $accent; background: $surface; }
    QueueScreen DataTable { height: 1fr; }
    QueueScreen #queue-note { height: auto; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape,q,J", "close", "Close"),
        Binding("h", "hold", "Hold/release"),
        Binding("x", "cancel_job", "Cancel"),
        Binding("u", "move(-1)", "Up"),
        Binding("d", "move(1)", "Down"),
        Binding("t", "top", "Top"),
        Binding("plus,equals_sign", "priority(1)", "Priority+"),
        Binding("minus", "priority(-1)", "Priority-"),
        Binding("w", "sweep", "Sweep view"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.jobs: list[Job] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Queue", classes="title")
            yield DataTable(id="queue", cursor_type="row", zebra_stripes=True)
            yield Static(HELP, id="queue-note", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.reload()
        self.set_interval(1.0, self.reload)

    def reload(self) -> None:
        """Re-read the queue; the cursor stays on its job."""
        note = self.query_one("#queue-note", Static)
        try:
            doc = queuefile.read(self.root)
        except queuefile.QueueError as e:
            note.update(fmt.plain(str(e)))
            return
        table = self.query_one(DataTable)
        current = self.current()
        self.jobs = queue_rows(doc)
        table.clear()
        for j in self.jobs:
            slots = ",".join(map(str, j.devices)) if j.active else str(j.gpus)
            table.add_row(
                *(
                    fmt.plain(c)
                    for c in (
                        j.id,
                        j.name,
                        j.state,
                        slots,
                        j.priority,
                        j.after or "-",
                        j.kind,
                        j.outcome or "-",
                    )
                ),
                key=str(j.id),
            )
        if current is not None:
            for i, j in enumerate(self.jobs):
                if j.id == current.id:
                    table.move_cursor(row=i)
        waiting = sum(1 for j in doc.jobs if j.waiting)
        running = sum(1 for j in doc.jobs if j.active)
        note.update(fmt.plain(f"{running} running, {waiting} waiting, cpu slots {doc.cpu_slots} · {HELP}"))

    def current(self) -> Job | None:
        table = self.query_one(DataTable)
        if not self.jobs or table.cursor_row is None or not 0 <= table.cursor_row < len(self.jobs):
            return None
        return self.jobs[table.cursor_row]

    def action_close(self) -> None:
        self.dismiss(None)

    def action_sweep(self) -> None:
        job = self.current()
        if job is None or not job.sweep:
            self.notify("This job is not part of a sweep (nexus sweep makes them)", severity="warning")
            return
        from nexus_tui.screens.sweep import SweepScreen

        self.app.push_screen(SweepScreen(self.root, job.sweep))

    def action_hold(self) -> None:
        if job := self.current():
            self._edit("release" if job.state == "held" else "hold", str(job.id))

    def action_cancel_job(self) -> None:
        if job := self.current():
            self._edit("cancel", str(job.id))

    def action_top(self) -> None:
        if job := self.current():
            self._edit("top", str(job.id))

    def action_move(self, delta: int) -> None:
        if job := self.current():
            self._edit("move", str(job.id), delta)

    def action_priority(self, delta: int) -> None:
        if job := self.current():
            self._edit("priority", str(job.id), job.priority + delta)

    @work(thread=True, group="queue-edit")
    def _edit(self, change: str, ref: str, value: int = 0) -> None:
        from nexus_tui.jobs.runner import ensure_runner

        try:
            if change == "move":
                ops.move(self.root, ref, value)
            elif change == "priority":
                ops.set_priority(self.root, [ref], value)
            else:
                {"hold": ops.hold, "release": ops.release, "cancel": ops.cancel, "top": ops.top}[change](
                    self.root, [ref]
                )
            if change in ("release", "top", "priority"):
                ensure_runner(self.root)
        except (ops.JobError, queuefile.QueueError) as e:
            self.app.call_from_thread(self.app.notify, str(e), severity="warning", markup=False)
        self.app.call_from_thread(self.reload)
