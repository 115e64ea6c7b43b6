"""What each key does on the highlighted run now, and why not when it does nothing: the `?` screen's
rows. One reading of the rules the keys themselves follow (`check_action`, `_lacks`, `has_checkpoint`),
so the help never promises what a key refuses."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding

from nexus_core.schema import PAUSED
from nexus_tui.screens.help import KeyHelp
from nexus_tui.widgets.run_table import RunTable

RUN_COMMANDS = {
    "pause": "pause",
    "checkpoint": "checkpoint",
    "eval_now": "eval",
    "generate": "generate",
    "stop": "stop",
    "ramp": "ramp",
}
"""Run keys' actions and the command each sends (a reported run may lack a handler for it)."""
NEEDS_RUN = {*RUN_COMMANDS, "report"}
WHAT = {
    "help": "this list of keys",
    "new_run": "start a run: a preset or your own command",
    "pause": "pause the run (again: go on)",
    "ramp": "ramp the LR of a live run, or resume a stopped one",
    "stop": "stop the run (it checkpoints first)",
    "quit": "quit (leave the runs training, or stop them)",
    "compare": "compare the marked runs (space marks), else all",
    "checkpoint": "save a checkpoint now",
    "eval_now": "evaluate now",
    "generate": "sample text from the model",
    "report": "write the training report",
    "cycle_theme": "next colour theme",
    "queue": "the queue: jobs waiting for a slot (hold, cancel, reorder, priority)",
    "park": "park the run (checkpoint, end it, free its slot), or unpark a parked one",
}
SECTION = {"queue": "app", "park": "run"}
"""Keys kept out of the footer whose place in the list is not the charts'."""


def key_help(app: Any) -> tuple[str, list[KeyHelp]]:
    """(what the rows are about, one row per key) for the highlighted run of `app` (a NexusApp)."""
    try:
        name = app.screen_stack[0].query_one(RunTable).highlighted
    except Exception:  # noqa: BLE001 - no table yet
        name = None
    run = app.store.get(name) if name else None
    subject = f"on {run.label} ({run.shown_state()})" if run is not None else "no run selected"
    rows = []
    for binding in app.BINDINGS:
        if not isinstance(binding, Binding):
            continue
        action = binding.action
        key = binding.key_display or app.get_key_display(binding)
        what = WHAT.get(action, binding.description)
        section = (
            "run" if action in NEEDS_RUN else SECTION.get(action) or ("charts" if not binding.show else "app")
        )
        rows.append(KeyHelp(key, *_status(app, run, action, what), section=section))
    rows.sort(key=lambda r: ("run", "app", "charts").index(r.section))
    return subject, rows


def _status(app: Any, run: Any, action: str, what: str) -> tuple[str, str]:
    """(what the key does on this run, why it does not: '' when it works)."""
    if action == "compare" and not app.store.runs():
        return what, "no runs yet"
    if action == "park":
        return _park_status(run, what)
    if action not in NEEDS_RUN:
        return what, ""
    if run is None:
        return what, "no run selected (n starts one)"
    if action == "pause" and run.state == PAUSED:
        what = "go on (the run is paused)"
    if action in ("eval_now", "generate") and app._checkpoint_run() is not None:
        from nexus_tui.app.checkpoint_actions import newest_step

        return f"{what}, from its newest checkpoint (step {newest_step(run)})", ""
    if action == "ramp" and not run.live:
        from nexus_tui.app.checkpoint_actions import has_checkpoint

        if run.hello is not None and run.hello.get("source") == "reporter":
            return what, "its own script reported it: run the script again with nexus.init(..., resume=True)"
        if not has_checkpoint(run):
            return what, f"{run.state} with no checkpoint on disk: nothing to resume from"
        return "resume it from a checkpoint, with an LR ramp", ""
    if action in app.LIVE_ONLY.values() and not run.live:
        return what, f"{run.state}: only a live run takes it"
    cmd = RUN_COMMANDS.get(action)
    offered = run.hello.get("commands") if run.hello is not None else None
    if (
        cmd
        and isinstance(offered, list)
        and cmd not in offered
        and not (cmd == "pause" and "unpause" in offered)
    ):
        lacking = run.hello.get("lacking")
        if isinstance(lacking, dict) and lacking.get(cmd):
            return what, str(lacking[cmd])  # what its writer says would make it work (an adapter's)
        if run.hello.get("source") != "reporter":
            return what, f"its writer does not list {cmd} in its hello's commands"
        return what, f"its script registers no handler for {cmd}"
    return what, ""


def _park_status(run: Any, what: str) -> tuple[str, str]:
    """The park key's row: the same rules `JobActions.action_park` follows."""
    from nexus_core.schema import PARK, PARKED

    if run is None:
        return what, "no run selected"
    if run.state == PARKED:
        return "unpark: resume it exactly when a slot is free", ""
    if not run.live:
        return what, f"{run.state}: only a live run can be parked"
    offered = run.hello.get("commands") if run.hello is not None else None
    if isinstance(offered, list) and PARK not in offered:
        return (
            what,
            "its script does not resume (a checkpoint handler and nexus.init(resume=...) make it parkable)",
        )
    return what, ""
