"""The new-run form: preset, device, name, steps, `section.key=value` overrides and processes (one
run over N ranks with torchrun), or instead of the preset any command that reports with `nexus`.

Everything that can be checked without the engine is checked here (name, steps, override shape), so
the common typos cost one red line in the form. Then, before the form closes, `check` asks the engine
itself (`python -m engine train --check`: its own config rules, torch-free, nothing created), so an
override the CLI would refuse is a red line here too, never a crashed run or an orphan folder.

At 80x24 the fields scroll and the buttons stay docked at the bottom, always reachable.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from nexus_core.config import preset_names
from nexus_core.names import RUN_NAME_RULE, command_base, free_run_name, next_free_name, run_name_ok
from nexus_core.text import clean_text
from nexus_tui import format as fmt
from nexus_tui.screens.confirm import FormDialog

OVERRIDE_RE = re.compile(r"^[a-z_]+\.[a-z_]+=.+$")
MAX_RANKS = 64

Check = Callable[[dict[str, Any]], str]
"""launch arguments -> '' if the engine would start them, else its one-line refusal (may block)."""


def available_presets() -> list[str]:
    """Preset names, from the shared core (torch-free)."""
    return preset_names() or ["tiny"]


def parse_launch(
    preset: str,
    device: str,
    name: str,
    steps: str,
    overrides: str,
    root: Path,
    nproc: str = "1",
    command: str = "",
) -> tuple[dict[str, Any] | None, str]:
    """The app's launch arguments, or None and what to fix. A command is split like a shell would
    (shlex) but never run by one; it takes the place of the preset, its steps and overrides."""
    name = name.strip()
    if not run_name_ok(name):
        return None, f"name: {RUN_NAME_RULE}"
    if (root / name).exists():
        return None, f"a run named {name!r} already exists in {root}; pick another name"
    try:
        ranks = int(nproc.strip() or "1")
    except ValueError:
        return None, f"processes must be a whole number (1 = one process), got {nproc!r}"
    if not 1 <= ranks <= MAX_RANKS:
        return None, f"processes must be 1 to {MAX_RANKS}, got {ranks}"
    if command.strip():
        try:
            argv = shlex.split(command)
        except ValueError as e:
            return None, f"command: {e}"
        if steps.strip() or overrides.strip() or ranks > 1:
            return None, (
                "steps, overrides and processes are for presets: give them to your command "
                "(e.g. torchrun --nproc-per-node 2 train.py)"
            )
        return {"command": argv, "name": name, "device": device}, ""
    n = 0
    if steps.strip():
        try:
            n = int(steps)
        except ValueError:
            return None, f"steps must be a whole number (blank = the preset's), got {steps!r}"
        if n < 1:
            return None, f"steps must be at least 1, got {n}"
    try:
        items = shlex.split(overrides)
    except ValueError as e:
        return None, f"overrides: {e}"
    for item in items:
        if not OVERRIDE_RE.match(item):
            return None, f"override {item!r} must look like section.key=value, e.g. optim.lr=1e-3"
    if ranks > 1 and device.startswith("cuda"):
        device = "cuda"  # torchrun gives each rank its own GPU, cuda:LOCAL_RANK
    args = {"preset": preset, "name": name, "device": device, "steps": n, "overrides": items}
    return ({**args, "nproc": ranks} if ranks > 1 else args), ""


class LaunchScreen(FormDialog[dict[str, Any] | None]):
    """Ask what to train; dismiss with supervisor.launch's keyword arguments, or None."""

    DEFAULT_CSS = """
    LaunchScreen > Vertical { height: 34; }
    LaunchScreen #launch-body { height: 1fr; }
    LaunchScreen Input, LaunchScreen Select { width: 1fr; }
    LaunchScreen Label { margin-top: 1; }
    LaunchScreen .pair { height: auto; }
    LaunchScreen .pair Vertical { height: auto; width: 1fr; }
    LaunchScreen .buttons { dock: bottom; margin-top: 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#name"
    """Enter launches the defaults at once (on the preset's list, Enter would only open it)."""

    def __init__(
        self,
        root: Path,
        presets: list[str],
        devices: list[tuple[str, str]],
        check: Check | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.check = check
        """Asks the engine whether these launch arguments would start ('' or its one-line refusal)."""
        # The CPU-sized preset first: the default must be safe to press Enter on.
        self.presets = sorted(presets or ["tiny"], key=lambda p: (p != "tiny", p))
        self._suggested = next_free_name(self.root, self.presets[0])
        """The name the form last filled in itself: while the field still holds it, it follows the
        preset or command chosen."""
        self.devices = devices or [("cpu", "cpu")]
        """(value, label) pairs, e.g. ("cuda:0", "cuda:0 H100 (70.1/80.0 GiB free)")."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("New run", classes="title")
            with VerticalScroll(id="launch-body", can_focus=False):  # Tab goes field to field
                yield Label("Preset (or your own script: type its command at the bottom)")
                yield Select(
                    [(p, p) for p in self.presets], value=self.presets[0], allow_blank=False, id="preset"
                )
                yield Label("Device")
                yield Select(
                    [(fmt.plain(label), value) for value, label in self.devices],
                    value=self.devices[0][0],
                    allow_blank=False,
                    id="device",
                )
                yield Label("Name")
                yield Input(self._suggested, id="name")
                with Horizontal(classes="pair"):
                    with Vertical():
                        yield Label("Steps (blank = the preset's)")
                        yield Input("", id="steps", placeholder="e.g. 2000")
                    with Vertical():
                        yield Label("Processes (torchrun ranks)")
                        yield Input("1", id="nproc", placeholder="1")
                yield Label("Overrides (section.key=value, space-separated)")
                yield Input("", id="overrides", placeholder="optim.name=muon model.n_layers=2")
                yield Label("Or a command instead of the preset (reports with nexus.init())")
                yield Input("", id="command", placeholder="python train.py --lr 3e-4")
                yield Label("Start")
                yield Select(self._when_options(), value="now", allow_blank=False, id="when")
            yield Static("", classes="error", id="error", markup=False)  # outside the scroll: always seen
            with Horizontal(classes="buttons"):  # docked at the bottom: reachable at any height
                yield Button("Cancel", id="cancel")
                yield Button("Launch", id="go", variant="primary")

    def on_mount(self) -> None:
        # The name has focus (Enter launches the defaults), but the form is read from its top: focusing
        # the name scrolled the preset and device out of sight on a short terminal.
        self.call_after_refresh(self.query_one("#launch-body", VerticalScroll).scroll_home, animate=False)

    def _when_options(self) -> list[tuple[str, str]]:
        """Now, when a slot is free (the queue), or after one of the runs here has ended."""
        try:
            runs = sorted(d.name for d in self.root.iterdir() if d.is_dir() and run_name_ok(d.name))[:200]
        except OSError:
            runs = []
        return [
            ("now", "now"),
            ("when a slot is free (queue)", "queue"),
            *((f"after {fmt.plain(r)} ends", f"after:{r}") for r in runs),
        ]

    def _submit(self) -> None:
        value = {w.id: w.value for w in self.query(Input)}
        args, error = parse_launch(
            str(self.query_one("#preset", Select).value),
            str(self.query_one("#device", Select).value),
            value["name"],
            value["steps"],
            value["overrides"],
            self.root,
            value["nproc"],
            value["command"],
        )
        if args is None:
            self.query_one("#error", Static).update(clean_text(error))
            return
        if (when := str(self.query_one("#when", Select).value)) != "now":
            args["when"] = when  # queued, not started: the queue picks the device
        if self.check is None:
            self.dismiss(args)
            return
        self.query_one("#error", Static).update("checking with the engine…")
        self._check(args)

    @work(thread=True, exclusive=True, group="launch-check")
    def _check(self, args: dict[str, Any]) -> None:
        """The engine's verdict off the event loop (a subprocess: about half a second)."""
        assert self.check is not None
        try:
            refusal = self.check(args)
        except Exception as e:  # noqa: BLE001 - any failure is one red line; the form stays open
            refusal = f"could not check: {e}"
        self.app.call_from_thread(self._checked, args, refusal)

    def _checked(self, args: dict[str, Any], refusal: str) -> None:
        if not self.is_attached:
            return
        if refusal:
            self.query_one("#error", Static).update(clean_text(refusal))
            return
        self.dismiss(args)

    def _suggest_name(self) -> None:
        """The name the form suggests: the command's script's (as nexus.init would name it) when a
        command is typed, else the preset's; a name the person typed is never replaced."""
        name = self.query_one("#name", Input)
        if name.value.strip() != self._suggested:
            return  # the person's own name
        base = command_base(self.query_one("#command", Input).value)
        preset = self.query_one("#preset", Select).value
        suggestion = (
            free_run_name(self.root, base)
            if base
            else next_free_name(self.root, str(preset))
            if preset is not Select.BLANK
            else name.value
        )
        self._suggested = suggestion
        name.value = suggestion

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "preset" and event.value is not Select.BLANK:
            self._suggest_name()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "command":
            self._suggest_name()
