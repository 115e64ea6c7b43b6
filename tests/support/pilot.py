"""Driving the real app under Pilot the way a person does: what they type into the launch form."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from support.preset import TINY_OVERRIDES

APP_SIDE_WORK = ["train.eval_every=25", "train.ckpt_every=100000", "train.save_best=false"]
"""Over the test preset for runs the app tests steer: evals every 25 steps, checkpoints only on request."""

FORM_OVERRIDES = " ".join([*TINY_OVERRIDES, *APP_SIDE_WORK])
"""The test preset as typed into the launch form's overrides field (one line, space-separated)."""


async def type_into(pilot: Any, selector: str, text: str) -> None:
    """Set an input on the current screen (as typing would) and let the app react."""
    widget = pilot.app.screen.query_one(selector)
    widget.value = text
    await pilot.pause()


class Host(App[None]):
    """A bare app holding one widget under test."""

    def __init__(self, widget: Any) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget
