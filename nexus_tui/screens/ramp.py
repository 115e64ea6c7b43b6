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

from nexus_core.protocol import COMMAND_ARGS, RAMP
from nexus_core.text import clean_text
from nexus_tui import format as fmt
from nexus_tui.screens.confirm import FormDialog
from nexus_tui.widgets.chart import MetricChart
from nexus_tui.widgets.chart_spec import ChartSpec, Curve

Preview = Callable[[float, int, int, "str | None"], tuple[list[int], list[float]]]
"""(target_lr, ramp_steps, total_steps, checkpoint or None) -> (steps, lrs); may block (it runs the engine)."""
Now = Callable[[], tuple[int, "float | None", int]]
"""The run as it is now: (step, LR, total steps), read again every second while the dialog is open."""
NOW_EVERY_S = 1.0


def parse_ramp(target: str, ramp: str, total: str, at_step: int, run_total: int = 0) -> tuple[dict[str, Any] | None, str]:
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
        return None, (f"the ramp ends at step {at_step + steps}, past the total of {end}: "
                      "shorten the ramp or raise the total")
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
    RampScreen .row Input { width: 1fr; }
    RampScreen MetricChart { height: 3fr; min-height: 6; }
    RampScreen .buttons { dock: bottom; margin-top: 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, run_name: str, live: bool, checkpoints: list[dict[str, Any]], step: int, current_lr: float | None,
        total_steps: int, preview: Preview, now: Now | None = None,
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
        self.preview_points = 0
        """Points in the last drawn preview (0 until the engine answered)."""

    def compose(self) -> ComposeResult:
        how = "ramp the live run from its current LR" if self.live else "restart from the chosen checkpoint"
        with Vertical():
            yield Label(f"Resume {clean_text(self.run_name, limit=80)} with an LR ramp — {how}", classes="title",
                        markup=False)
            with VerticalScroll(id="ramp-body", can_focus=False):  # Tab goes field to field
                table: DataTable = DataTable(cursor_type="row", id="ckpts")
                table.styles.max_height = min(8, len(self.checkpoints) + 1)  # header + rows: no empty space
                table.display = bool(self.checkpoints)  # an empty table's rows go to the chart instead
                table.add_columns("step", "loss", "val loss", "best", "saved")
                for c in self.checkpoints:
                    saved = time.strftime("%H:%M:%S", time.localtime(c["time"])) if c.get("time") else fmt.DASH
                    table.add_row(
                        *map(fmt.plain, (c.get("step", "?"), fmt.loss(c.get("loss")), fmt.loss(c.get("val_loss")),
                                         "★" if c.get("best") else "", saved)),
                        key=str(c.get("path", c.get("step"))),
                    )
                if not self.checkpoints:
                    yield Label("No checkpoints yet" + (" (the live run is ramped from where it is)" if self.live else ""))
                yield table
                with Horizontal(classes="row"):
                    yield Input(f"{(self.current_lr or 1e-3):.2e}", id="target", tooltip="target LR")
                    fits = max(0, min(100, self.total_steps - self.step - 1))  # a default that is valid
                    yield Input(str(fits), id="ramp", tooltip="ramp steps")
                    yield Input("", id="total", placeholder=f"total (now {self.total_steps})", tooltip="new total steps")
                yield Label(f"now: step {self.step}, LR {fmt.lr(self.current_lr)}", id="now")
                yield MetricChart("LR preview", id="preview")
                yield Static("", classes="error", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Apply ramp" if self.live else "Resume", id="go", variant="primary")

    def on_mount(self) -> None:
        # A stopped run resumes from a checkpoint: pick it first; a live one ramps from where it is.
        (self.query_one("#ckpts") if self.checkpoints and not self.live else self.query_one("#target", Input)).focus()
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
        self.query_one("#total", Input).placeholder = f"total (now {total})"
        if self.live:  # a live ramp starts from where the run is now: redraw it from there
            self._update_preview()

    def _resume_step(self) -> int:
        ckpt = self._chosen()
        return int(ckpt["step"]) if ckpt and not self.live else self.step

    def _chosen(self) -> dict[str, Any] | None:
        if not self.checkpoints:
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
            self._compute_preview(args["target_lr"], args["ramp_steps"], args["total_steps"] or self.total_steps,
                                  ckpt)

    @work(thread=True, exclusive=True, group="lr-preview")
    def _compute_preview(self, target: float, ramp: int, total: int, ckpt: str | None) -> None:
        time.sleep(0.15)  # debounce typing: an exclusive newer call cancels this one first
        if get_current_worker().is_cancelled:
            return
        try:
            steps, lrs = self.preview(target, ramp, total, ckpt)
        except Exception as e:  # noqa: BLE001 - any failure is shown as one line, the dialog stays usable
            self.app.call_from_thread(self._show_error, f"preview failed: {e}")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._draw_preview, list(steps), list(lrs))

    def _draw_preview(self, steps: list[float], lrs: list[float]) -> None:
        try:
            chart = self.query_one("#preview", MetricChart)
        except NoMatches:
            return  # the dialog closed (or is closing) while the preview was computed
        color = (244, 162, 89)
        spec = ChartSpec(title=f"LR preview: {fmt.lr(lrs[0] if lrs else None)} → …", xlabel="step")
        spec.curves.append(Curve(steps, lrs, color))
        chart.show(spec)
        self.preview_points = len(steps)

    def _show_error(self, text: str) -> None:
        with contextlib.suppress(NoMatches):  # the dialog may be closing
            self.query_one("#error", Static).update(clean_text(text))

    def _submit(self) -> None:
        args, error = self._args()
        if args is None:
            self.query_one("#error", Static).update(error)
            return
        ckpt = self._chosen()
        args["from_ckpt"] = None if self.live or ckpt is None else ckpt.get("path")
        self.dismiss(args)


def checkpoint_rows(store: Any, run: Any) -> list[dict[str, Any]]:
    """The run's checkpoints, newest first, each with the training loss at its step (from the store)."""
    steps, losses = store.series(run.name, "ce", x="step")
    steps, losses = list(steps), list(losses)
    rows = []
    for ckpt in reversed(run.ckpts):
        at = bisect.bisect_right(steps, ckpt.step) - 1
        rows.append({**ckpt.to_dict(), "loss": losses[at] if at >= 0 else None})
    return rows
