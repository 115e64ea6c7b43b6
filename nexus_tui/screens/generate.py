"""The generate dialog: prompt, tokens, temperature, top-k -> a `generate` command.

Values are checked here, before anything is sent, so a typo costs one red line in the dialog rather
than a refused command; the limits are the engine's own table (protocol.COMMAND_ARGS).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from nexus_core.protocol import COMMAND_ARGS, GENERATE
from nexus_core.text import clean_text
from nexus_tui.screens.confirm import FormDialog
from nexus_tui.screens.fields import Field


def parse_generate(
    prompt: str, tokens: str, temperature: str, top_k: str
) -> tuple[dict[str, Any] | None, str]:
    """The command's arguments, or None and a one-line reason (limits: protocol.COMMAND_ARGS)."""
    try:
        n = int(tokens)
    except ValueError:
        return None, f"tokens must be a whole number, got {tokens!r}"
    try:
        temp = float(temperature)
    except ValueError:
        return None, f"temperature must be a number, got {temperature!r}"
    try:
        k = int(top_k)
    except ValueError:
        return None, f"top-k must be a whole number (0 = off), got {top_k!r}"
    args = {"prompt": prompt, "tokens": n, "temperature": temp, "top_k": k}
    limits = COMMAND_ARGS[GENERATE]
    for name, value in args.items():
        if err := limits[name].error(GENERATE, name, value):
            return None, err.removeprefix(f"{GENERATE} ").replace("top_k", "top-k")
    return args, ""


class GenerateScreen(FormDialog[dict[str, Any] | None]):
    """Ask for sampling settings; dismiss with the `generate` arguments, or None."""

    DEFAULT_CSS = """
    GenerateScreen Input { width: 1fr; }
    GenerateScreen .row { height: auto; }
    GenerateScreen .row Field { width: 1fr; margin-right: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_name: str, prompt: str = "def ", from_step: int | None = None) -> None:
        super().__init__()
        self.from_step = from_step
        """A run that is not live samples from its newest checkpoint (this step's), as `nexus generate`."""
        self.run_name = run_name
        self.default_prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical():
            name = clean_text(self.run_name, limit=80)
            title = (
                f"Sample from {name} (between steps; training is untouched)"
                if self.from_step is None
                else f"Sample from {name}'s newest checkpoint (step {self.from_step})"
            )
            yield Label(title, classes="title", markup=False)
            yield Field("prompt", Input(self.default_prompt, placeholder="prompt", id="prompt"))
            with Horizontal(classes="row"):
                yield Field("tokens", Input("100", id="tokens", tooltip="tokens to generate"))
                yield Field(
                    "temperature", Input("0.8", id="temperature", tooltip="0 = always the likeliest token")
                )
                yield Field(
                    "top-k (0 = off)", Input("40", id="top_k", tooltip="sample among the k likeliest")
                )
            yield Static("", classes="error", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Generate", id="go", variant="primary")

    def _submit(self) -> None:
        values = {w.id: w.value for w in self.query(Input)}
        args, error = parse_generate(
            values["prompt"], values["tokens"], values["temperature"], values["top_k"]
        )
        if args is None:
            self.query_one("#error", Static).update(error)
            return
        self.dismiss(args)
