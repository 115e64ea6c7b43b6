"""LR-ramped resume: pick a checkpoint, a target LR, ramp steps and a new total, see the schedule.

A converged run resumed straight at a high LR can be ruined for good; a linear ramp from where the LR
is to the target is the safe way. The dialog shows the run's checkpoints and a live preview of the LR
the engine will follow (computed by the engine's own schedule code via `preview`, off the event loop),
so the person sees the ramp before committing to it. On a live run the ramp is sent as a command; on a
stopped or finished run the app restarts it from the chosen checkpoint.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Button, DataTable, Input, Label, Static
from textual.worker import get_current_worker

from nexus_core.checkpoints import existing_steps
from nexus_core.protocol import COMMAND_ARGS, RAMP
from nexus_core.text import clean_text
from nexus_tui import format as fmt
from nexus_tui.screens.confirm import FormDialog
from nexus_tui.screens.fields import Field
from nexus_tui.widgets.chart import MetricChart
from nexus_tui.widgets.chart_spec import ChartSpec, Curve

Preview = Callable[
    [float, int, int, "str | None"], "tuple[list[int], list[float]] | tuple[list[int], list[float], str]"
]
"""(target_lr, ramp_steps, total_steps, checkpoint or None) -> (steps, lrs[, what it assumes]); may block."""
Now = Callable[[], tuple[int, "float | None", int]]
"""The run as it is now: (step, LR, total steps), read again every second while the dialog is open."""
NOW_EVERY_S = 1.0


def default_ramp(resume_step: int, total: int) -> tuple[int, int]:
    """A valid starting point for the dialog: (ramp steps, new total or 0 to keep the run's).

    The ramp takes a quarter of what is left (at most 100 steps), so the schedule still has room to
    decay after it; a finished run (nothing left) is offered half its length again, since resuming
    it only makes sense with a new total. Never a ramp that ends past the total."""
    new_total = 0
    if total > 0 and total - resume_step <= 1:
        new_total = resume_step + max(10, total // 2)
    left = (new_total or total) - resume_step
    ramp = max(1, min(100, left // 4)) if left > 1 else (100 if total <= 0 else 0)
    return ramp, new_total


def parse_ramp(
    target: str, ramp: str, total: str, at_step: int, run_total: int = 0
) -> tuple[dict[str, Any] | None, str]:
    """The ramp arguments, or None and what to fix. total 0 = keep the run's total (`run_total`)."""
    try:
        lr = float(target)
    except ValueError:
        return None, f"target LR must be a number like 3e-4, got {target!r}"
    limits = COMMAND_ARGS[RAMP]
    if err := limits["target_lr"].error("target", "LR", lr):
        return None, err
    try:
        steps = int(ramp)
    except ValueError:
        return None, f"ramp steps must be a whole number, got {ramp!r}"
    if err := limits["ramp_steps"].error("ramp", "steps", steps):
        return None, err
    n = 0
    if total.strip():
        try:
            n = int(total)
        except ValueError:
            return None, f"total steps must be a whole number (blank = keep), got {total!r}"
        if n <= at_step:
            return None, f"total steps ({n}) must be past the resume step ({at_step})"
    end = n or run_total
    if end and at_step + steps >= end:
        return None, (
            f"the ramp ends at step {at_step + steps}, past the total of {end}: "
            "shorten the ramp or raise the total"
        )
    return {"target_lr": lr, "ramp_steps": steps, "total_steps": n}, ""


class RampScreen(FormDialog[dict[str, Any] | None]):
    """Dismisses with target_lr, ramp_steps, total_steps (0 = keep) and from_ckpt (path or None)."""

    # A fixed height (capped by Dialog's max-height) lets the body take what is left after the title
    # and the buttons, which are docked so they never scroll away. In the body the table and the chart
    # share the spare rows (fr) and shrink to their min heights first; only below that does it scroll.
    DEFAULT_CSS = """
    RampScreen > Vertical { width: 90; height: 32; padding: 0 1; }
    RampScreen #ramp-body { height: 1fr; }
    RampScreen DataTable { height: 1fr; min-height: 3; }
    RampScreen .row { height: auto; }
    RampScreen .row Field { width: 1fr; margin-right: 1; }
    RampScreen MetricChart { height: 3fr; min-height: 6; }
    RampScreen #assumes { color: $text-muted; }
    RampScreen .buttons { dock: bottom; margin-top: 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        run_name: str,
        live: bool,
        checkpoints: list[dict[str, Any]],
        step: int,
        current_lr: float | None,
        total_steps: int,
        preview: Preview,
        now: Now | None = None,
        paused: bool = False,
    ) -> None:
        super().__init__()
        self.run_name = run_name
        self.live = live
        self.checkpoints = checkpoints
        self.step = step
        self.current_lr = current_lr
        self.total_steps = total_steps
        self.preview = preview
        self.now = now
        self.paused = paused
        """A paused live run: Apply also unpauses it (the key is Ramp/Resume: it should go on)."""
        self.preview_points = 0
        """Points in the last drawn preview (0 until the engine answered)."""
        self.preview_note = ""
        """What the last drawn preview assumes (a run Nexus did not write), shown under the chart."""

    def compose(self) -> ComposeResult:
        name = clean_text(self.run_name, limit=80)
        if self.live:
            title = f"Ramp the LR of {name} — live, from the step it is at" + (
                " (then unpause it)" if self.paused else ""
            )
        else:
            title = f"Resume {name} from a checkpoint, with an LR ramp"
        start = self.step if self.live or not self.checkpoints else int(self.checkpoints[0].get("step") or 0)
        ramp, new_total = default_ramp(start, self.total_steps)
        with Vertical():
            yield Label(title, classes="title", markup=False)
            with VerticalScroll(id="ramp-body", can_focus=False):  # Tab goes field to field
                table: DataTable = DataTable(cursor_type="row", id="ckpts")
                table.styles.max_height = min(8, len(self.checkpoints) + 1)  # header + rows: no empty space
                # A live ramp starts where the run is: a table to move through that changed nothing
                # misled. An empty table's rows go to the chart instead.
                table.display = bool(self.checkpoints) and not self.live
                table.add_columns("step", "loss", "val loss", "best", "saved")
                for c in self.checkpoints:
                    saved = (
                        time.strftime("%H:%M:%S", time.localtime(c["time"])) if c.get("time") else fmt.DASH
                    )
                    table.add_row(
                        *map(
                            fmt.plain,
                            (
                                c.get("step", "?"),
                                fmt.loss(c.get("loss")),
                                fmt.loss(c.get("val_loss")),
                                "★" if c.get("best") else "",
                                saved,
                            ),
                        ),
                        key=str(c.get("path", c.get("step"))),
                    )
                if self.live:
                    yield Label(
                        "The ramp starts at the run's current step (checkpoints load only when a "
                        "stopped run resumes)."
                    )
                elif not self.checkpoints:
                    yield Label("No checkpoints on disk: nothing to resume from.")
                else:
                    yield Label("Checkpoint to resume from (↑↓ picks; only those still on disk):")
                yield table
                with Horizontal(classes="row"):
                    yield Field(
                        "target LR",
                        Input(
                            f"{(self.current_lr or 1e-3):.2e}",
                            id="target",
                            tooltip="the LR the ramp ends at; the schedule goes on from there",
                        ),
                    )
                    yield Field(
                        "ramp steps",
                        Input(
                            str(ramp),
                            id="ramp",
                            tooltip="steps to go linearly from the current LR to the target",
                        ),
                    )
                    yield Field(
                        "total (blank = keep)",
                        Input(
                            str(new_total) if new_total else "",
                            id="total",
                            placeholder=f"now {self.total_steps}",
                            tooltip="new total steps of the run",
                        ),
                    )
                yield Label(f"now: step {self.step}, LR {fmt.lr(self.current_lr)}", id="now")
                yield MetricChart("LR preview", id="preview")
                yield Label("", id="assumes", markup=False)
                yield Static("", classes="error", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                go = ("Apply and unpause" if self.paused else "Apply ramp") if self.live else "Resume"
                yield Button(go, id="go", variant="primary")

    def on_mount(self) -> None:
        # A stopped run resumes from a checkpoint: pick it first; a live one ramps from where it is.
        (
            self.query_one("#ckpts")
            if self.checkpoints and not self.live
            else self.query_one("#target", Input)
        ).focus()
        if not self.live and not self.checkpoints:
            self.query_one("#go", Button).disabled = True  # it could only fail
        self._update_preview()
        if self.now is not None:
            self.set_interval(NOW_EVERY_S, self._refresh_now)

    def _refresh_now(self) -> None:
        """A dialog shows live numbers: the run trains on while the person types."""
        assert self.now is not None
        step, lr, total = self.now()
        if (step, lr, total) == (self.step, self.current_lr, self.total_steps):
            return
        self.step, self.current_lr, self.total_steps = step, lr, total
        self.query_one("#now", Label).update(f"now: step {step}, LR {fmt.lr(lr)}")
        self.query_one("#total", Input).placeholder = f"now {total}"
        if self.live:  # a live ramp starts from where the run is now: redraw it from there
            self._update_preview()

    def _resume_step(self) -> int:
        ckpt = self._chosen()
        return int(ckpt["step"]) if ckpt and not self.live else self.step

    def _chosen(self) -> dict[str, Any] | None:
        if not self.checkpoints or self.live:
            return None
        table = self.query_one("#ckpts", DataTable)
        return self.checkpoints[min(table.cursor_row, len(self.checkpoints) - 1)]

    def _args(self) -> tuple[dict[str, Any] | None, str]:
        v = {w.id: w.value for w in self.query(Input)}
        return parse_ramp(v["target"], v["ramp"], v["total"], self._resume_step(), self.total_steps)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._update_preview()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_preview()

    def _update_preview(self) -> None:
        args, error = self._args()
        self.query_one("#error", Static).update(clean_text(error))
        if args is not None:
            chosen = self._chosen()
            ckpt = None if self.live or chosen is None else chosen.get("path")
            self._compute_preview(
                args["target_lr"], args["ramp_steps"], args["total_steps"] or self.total_steps, ckpt
            )

    @work(thread=True, exclusive=True, group="lr-preview")
    def _compute_preview(self, target: float, ramp: int, total: int, ckpt: str | None) -> None:
        time.sleep(0.15)  # debounce typing: an exclusive newer call cancels this one first
        if get_current_worker().is_cancelled:
            return
        try:
            got = self.preview(target, ramp, total, ckpt)
            steps, lrs = got[0], got[1]
            note = str(got[2]) if len(got) > 2 else ""
        except Exception as e:  # noqa: BLE001 - any failure is shown as one line, the dialog stays usable
            self.app.call_from_thread(self._show_error, f"preview failed: {e}")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._draw_preview, list(steps), list(lrs), note)

    def _draw_preview(self, steps: list[float], lrs: list[float], note: str = "") -> None:
        try:
            chart = self.query_one("#preview", MetricChart)
            self.query_one("#assumes", Label).update(clean_text(note, limit=200))
        except NoMatches:
            return  # the dialog closed (or is closing) while the preview was computed
        self.preview_note = note
        color = (244, 162, 89)
        args, _ = self._args()
        title = f"LR preview from step {int(steps[0]) if steps else self._resume_step()}: {fmt.lr(lrs[0] if lrs else None)}"
        if args is not None:
            end = args["total_steps"] or self.total_steps
            title += f" → {fmt.lr(args['target_lr'])} over {args['ramp_steps']} steps" + (
                f", then the schedule to step {end}" if end else ""
            )
        spec = ChartSpec(title=title, xlabel="step")
        spec.curves.append(Curve(steps, lrs, color))
        chart.show(spec)
        self.preview_points = len(steps)

    def _show_error(self, text: str) -> None:
        with contextlib.suppress(NoMatches):  # the dialog may be closing
            self.query_one("#error", Static).update(clean_text(text))

    def _submit(self) -> None:
        if not self.live and not self.checkpoints:
            self.query_one("#error", Static).update(
                "no checkpoint on disk to resume from: Cancel, then n starts a new run"
            )
            return
        args, error = self._args()
        if args is None:
            self.query_one("#error", Static).update(error)
            return
        ckpt = self._chosen()
        args["from_ckpt"] = None if self.live or ckpt is None else ckpt.get("path")
        if self.live and self.paused:
            args["unpause"] = True
        self.dismiss(args)


def checkpoint_rows(store: Any, run: Any) -> list[dict[str, Any]]:
    """The run's checkpoints still on disk, newest first, each with the training loss at its step (from
    the store). A `ckpt` record outlives the folder `keep_last` deletes: offering it could only fail."""
    steps, losses = store.series(run.name, "ce", x="step")
    steps, losses = list(steps), list(losses)
    on_disk = existing_steps(run.run_dir) if run.run_dir is not None else None
    rows = []
    for ckpt in reversed(run.ckpts):
        if on_disk is not None and ckpt.step not in on_disk:
            continue
        at = bisect.bisect_right(steps, ckpt.step) - 1
        rows.append({**ckpt.to_dict(), "loss": losses[at] if at >= 0 else None})
    return rows
