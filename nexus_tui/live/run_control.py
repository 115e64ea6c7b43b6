"""Steering a run that is already going: typed commands over its control socket, and the LR preview
of a ramped resume. Works the same for runs this dashboard launched and runs it attached to, since
both are reached through their folder, never through a process handle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nexus_core.commands import Command, as_args, command_error
from nexus_core.control import COMMAND_TIMEOUT_S
from nexus_core.errors import NexusError
from nexus_core.lr_preview import LrPreview, lr_preview
from nexus_core.protocol import RESUME, UNPAUSE, ControlError, send_command
from nexus_tui.live.launch_args import LaunchError


def send(run_dir: Path, command: Command, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
    """Send one typed command; raises ControlError with a one-line reason if it is out of its
    limits or the run refuses it (or has not read it within `timeout` s: it then never will). An
    engine started by an older Nexus knows `unpause` by its old name, `resume`: that one answer is
    retried with the old name."""
    if error := command_error(command):
        raise ControlError(error)
    try:
        return send_command(run_dir, command.name, timeout=timeout, **as_args(command))
    except ControlError as e:
        if command.name != UNPAUSE or "unknown command" not in str(e):
            raise
    return send_command(run_dir, RESUME, timeout=timeout)


def ramp_preview(
    run_dir: Path, target_lr: float, ramp_steps: int, steps: int | None = None, from_ckpt: str | None = None,
) -> tuple[list[int], list[float]]:
    """The LR a ramped resume would follow, computed in-process by the core (torch-free)."""
    got = noted_ramp_preview(run_dir, target_lr, ramp_steps, steps, from_ckpt)
    return got.steps, got.lrs


def noted_ramp_preview(
    run_dir: Path, target_lr: float, ramp_steps: int, steps: int | None = None, from_ckpt: str | None = None,
    hello: dict[str, Any] | None = None,
) -> LrPreview:
    """The preview with what it assumes (`note`; a run Nexus did not write); `hello`: the run's newest."""
    try:
        return lr_preview(run_dir, float(target_lr), int(ramp_steps), None if steps is None else int(steps),
                          from_ckpt, hello=hello)
    except NexusError as e:
        raise LaunchError(str(e)) from None
