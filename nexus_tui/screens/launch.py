"""The new-run form: preset, device, name, steps and `section.key=value` overrides.

Everything that can be checked without the engine is checked here (name, steps, override shape), so
the common typos cost one red line in the form; the engine validates the rest when it starts and a
bad value there arrives as a crashed run with its one-line reason in the log pane.
"""

from __future__ import annotations

import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from engine.protocol import clean_text
from nexus_tui.screens.confirm import FormDialog
from nexus_tui.widgets import format as fmt

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OVERRIDE_RE = re.compile(r"^[a-z_]+\.[a-z_]+=.+$")


def available_presets() -> list[str]:
    """Preset names shipped with the engine, read as files (importing engine.config would pull the
    engine into the dashboard process)."""
    try:
        folder = resources.files("engine") / "presets"
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))
    except (ModuleNotFoundError, OSError):
        return ["tiny"]


def parse_launch(
    preset: str, device: str, name: str, steps: str, overrides: str, root: Path
) -> tuple[dict[str, Any] | None, str]:
    """The supervisor.launch arguments, or None and what to fix."""
    name = name.strip()
    if not NAME_RE.match(name):
        return None, "name: letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit"
    if (root / name).exists():
        return None, f"a run named {name!r} already exists in {root}; pick another name"
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
    return {"preset": preset, "name": name, "device": device, "steps": n, "overrides": items}, ""


def next_free_name(root: Path, base: str) -> str:
    """base-1, base-2, ... the first that is not a folder yet."""
    i = 1
    while (root / f"{base}-{i}").exists():
        i += 1
    return f"{base}-{i}"


class LaunchScreen(FormDialog[dict[str, Any] | None]):
    """Ask what to train; dismiss with supervisor.launch's keyword arguments, or None."""

    DEFAULT_CSS = """
    LaunchScreen Input, LaunchScreen Select { width: 1fr; }
    LaunchScreen Label { margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, root: Path, presets: list[str], devices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.root = root
        # The CPU-sized preset first: the default must be safe to press Enter on.
        self.presets = sorted(presets or ["tiny"], key=lambda p: (p != "tiny", p))
        self.devices = devices or [("cpu", "cpu")]
        """(value, label) pairs, e.g. ("cuda:0", "cuda:0 H100 (70.1/80.0 GiB free)")."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("New run", classes="title")
            yield Label("Preset")
            yield Select([(p, p) for p in self.presets], value=self.presets[0], allow_blank=False, id="preset")
            yield Label("Device")
            yield Select(
                [(fmt.plain(label), value) for value, label in self.devices], value=self.devices[0][0], allow_blank=False,
                id="device",
            )
            yield Label("Name")
            yield Input(next_free_name(self.root, self.presets[0]), id="name")
            yield Label("Steps (blank = the preset's)")
            yield Input("", id="steps", placeholder="e.g. 2000")
            yield Label("Overrides (section.key=value, space-separated)")
            yield Input("", id="overrides", placeholder="optim.name=muon model.n_layers=2")
            yield Static("", classes="error", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Launch", id="go", variant="primary")

    def _submit(self) -> None:
        value = {w.id: w.value for w in self.query(Input)}
        args, error = parse_launch(
            str(self.query_one("#preset", Select).value), str(self.query_one("#device", Select).value),
            value["name"], value["steps"], value["overrides"], self.root,
        )
        if args is None:
            self.query_one("#error", Static).update(clean_text(error))
            return
        self.dismiss(args)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "preset" and event.value is not Select.BLANK:
            self.query_one("#name", Input).value = next_free_name(self.root, str(event.value))
