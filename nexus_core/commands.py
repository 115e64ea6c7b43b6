"""One type per control command, with its limits next to its fields: the one place they are stated.

Commands travel as msgpack maps with a "cmd" key over the run's control socket (control.py). The
dashboard builds them as these Structs and sends them with `as_args`; the dialogs check what a person
typed with `command_error`. Their limits are schema.COMMAND_ARGS, the one table the engine checks too.

Three words that used to be one: `resume` restarts a stopped run from a checkpoint (the CLI command
and Supervisor.resume); `unpause` lets a paused run go on (this command, and the trainer's method of
that name). The command was called "resume" before: engines still accept that name for one release,
and the dashboard falls back to it for engines started by an older Nexus.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from nexus_core.control import check_command


class Command(msgspec.Struct, kw_only=True, tag_field="cmd", forbid_unknown_fields=False):
    """A control command; `name` is what travels in the "cmd" key."""

    @property
    def name(self) -> str:
        return str(self.__struct_config__.tag)  # every kind is declared with a str tag


class Pause(Command, tag="pause"):
    pass


class Unpause(Command, tag="unpause"):
    pass


class Checkpoint(Command, tag="checkpoint"):
    pass


class EvalNow(Command, tag="eval"):
    pass


class Stop(Command, tag="stop"):
    """Checkpoint, then exit."""


class Generate(Command, tag="generate"):
    """The text arrives later as a `sample` record with requested=True."""

    prompt: str = ""
    tokens: int = 100
    temperature: float = 0.8
    top_k: int = 40


class Ramp(Command, tag="ramp"):
    """LR goes linearly from where it is to target_lr over ramp_steps, then follows the schedule
    stretched to total_steps (None: keep the run's total)."""

    target_lr: float
    ramp_steps: int
    total_steps: int | None = None


AnyCommand = Union[Pause, Unpause, Checkpoint, EvalNow, Stop, Generate, Ramp]  # noqa: UP007 - for msgspec


def as_args(command: Command) -> dict[str, Any]:
    """The command's fields as send_command's keyword arguments (None fields left out)."""
    return {k: v for k, v in msgspec.structs.asdict(command).items() if v is not None}


def command_error(command: Command) -> str:
    """'' when the command is within its limits (schema.COMMAND_ARGS, as the engine checks them), else
    one line that says what is wrong."""
    return check_command({"cmd": command.name, **as_args(command)})
