"""One type per control command, with its limits next to its fields: the one place they are stated.

Commands travel as msgpack maps with a "cmd" key over the run's control socket (control.py). The
dashboard builds them as these Structs and sends them with `as_args`; the dialogs check what a person
typed with `command_error`, so a limit lives here once instead of in each form.

Three words that used to be one: `resume` restarts a stopped run from a checkpoint (the CLI command
and Supervisor.resume); `unpause` lets a paused run go on (this command, and the trainer's method of
that name). The command was called "resume" before: engines still accept that name for one release,
and the dashboard falls back to it for engines started by an older Nexus.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec

MAX_GENERATE_TOKENS = 4096
MAX_TEMPERATURE = 5.0
MAX_TARGET_LR = 10.0


class Command(msgspec.Struct, kw_only=True, tag_field="cmd", forbid_unknown_fields=False):
    """A control command; `name` is what travels in the "cmd" key."""

    @property
    def name(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


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
    tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_GENERATE_TOKENS)] = 100
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_TEMPERATURE)] = 0.8
    top_k: Annotated[int, msgspec.Meta(ge=0)] = 40


class Ramp(Command, tag="ramp"):
    """LR goes linearly from where it is to target_lr over ramp_steps, then follows the schedule
    stretched to total_steps (None: keep the run's total)."""

    target_lr: Annotated[float, msgspec.Meta(gt=0.0, lt=MAX_TARGET_LR)]
    ramp_steps: Annotated[int, msgspec.Meta(ge=0)]
    total_steps: Annotated[int, msgspec.Meta(ge=1)] | None = None


AnyCommand = Union[Pause, Unpause, Checkpoint, EvalNow, Stop, Generate, Ramp]  # noqa: UP007 - for msgspec


def as_args(command: Command) -> dict[str, Any]:
    """The command's fields as send_command's keyword arguments (None fields left out)."""
    return {k: v for k, v in msgspec.structs.asdict(command).items() if v is not None}


def command_error(command: Command) -> str:
    """'' when the command is within its limits, else one line that says what is wrong."""
    try:
        msgspec.convert({"cmd": command.name, **as_args(command)}, AnyCommand)
    except msgspec.ValidationError as e:
        return f"{command.name}: {e}"
    return ""
