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
    limits or the run refuses it (or has not read it within `timeout` s: it then never will). A
    writer that knows `resume` only by the name a release of Nexus used, `unpause`, is asked again
    with that name."""
    if error := command_error(command):
        raise ControlError(error)
    try:
        return send_command(run_dir, command.name, timeout=timeout, **as_args(command))
    except ControlError as e:
        if command.name != RESUME or not ("unknown command" in str(e) or "not take" in str(e)):
            raise
    return send_command(run_dir, UNPAUSE, timeout=timeout)


def stop_question(name: str, hello: Any) -> str:
    """The stop dialog's question, promising only what this run will do: the engine checkpoints, then
    exits; a reported script ends its loop itself when it reads `should_stop` (hello `stop`: flag) or
    is ended at its next log() by a KeyboardInterrupt (interrupt); another writer decides itself."""
    how = hello.get("stop")
    if hello.get("source") == "reporter" or how in ("flag", "interrupt"):
        if how == "flag":
            return (
                f"Stop {name}? Its script ends its loop when it next checks run.should_stop (no checkpoint)."
            )
        return (
            f"Stop {name}? Its script is ended at its next log() by a KeyboardInterrupt, as W&B's stop "
            "does (no checkpoint)."
        )
    if not hello.get("source") and hello.get("commands") is None:
        return f"Stop {name}? It checkpoints, then exits."
    return f"Stop {name}? Its program is asked to end early; what it saves is up to it."


def ramp_preview(
    run_dir: Path,
    target_lr: float,
    ramp_steps: int,
    steps: int | None = None,
    from_ckpt: str | None = None,
) -> tuple[list[int], list[float]]:
    """The LR a ramped resume would follow, computed in-process by the core (torch-free)."""
    got = noted_ramp_preview(run_dir, target_lr, ramp_steps, steps, from_ckpt)
    return got.steps, got.lrs


def noted_ramp_preview(
    run_dir: Path,
    target_lr: float,
    ramp_steps: int,
    steps: int | None = None,
    from_ckpt: str | None = None,
    hello: dict[str, Any] | None = None,
) -> LrPreview:
    """The preview with what it assumes (`note`; a run Nexus did not write); `hello`: the run's newest."""
    try:
        return lr_preview(
            run_dir,
            float(target_lr),
            int(ramp_steps),
            None if steps is None else int(steps),
            from_ckpt,
            hello=hello,
        )
    except NexusError as e:
        raise LaunchError(str(e)) from None
