"""One type per control command, with its limits next to its fields: the one place they are stated.

Commands travel as msgpack maps with a "cmd" key over the run's control socket (control.py). The
dashboard builds them as these Structs and sends them with `as_args`; the dialogs check what a person
typed with `command_error`. Their limits are schema.COMMAND_ARGS, the one table the engine checks too.

One name per command, the one docs/PROTOCOL.md gives: `resume` lets a paused run go on. (A release
of the dashboard sent `unpause` instead; engines and the reporter still accept it, and `send` falls
back to it for a writer that knows only that name. The CLI's `nexus resume` and Supervisor.resume
are a different thing: a stopped run restarted from a checkpoint.)
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


class Resume(Command, tag="resume"):
    """Let a paused run go on."""


class Checkpoint(Command, tag="checkpoint"):
    pass


class EvalNow(Command, tag="eval"):
    pass


class Stop(Command, tag="stop"):
    """Checkpoint, then exit."""


class Park(Command, tag="park"):
    """Checkpoint, then exit as `stopped` with reason `parked` (readers show `parked`): its GPU is
    free, and `resume` later continues it exactly. A run that cannot resume refuses it."""


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


AnyCommand = Union[Pause, Resume, Checkpoint, EvalNow, Stop, Park, Generate, Ramp]  # noqa: UP007 - for msgspec


HANDLER_LINES: dict[str, str] = {
    "checkpoint": "@run.on_checkpoint\ndef save():\n    torch.save(model.state_dict(), run.dir / 'model.pt')\n"
    "    return run.dir / 'model.pt'",
    "eval": "@run.on_eval\ndef evaluate():\n    return val_loss(model)  # a number, or a dict of eval values",
    "generate": "@run.on_sample\ndef sample(prompt, tokens, temperature, top_k):\n    return text",
    "ramp": "run.watch(optimizer)",
}
"""What a reported script adds so that a key works on it: the dashboard's refusal and the
reporter's own answer (nexus/control.py) both quote it."""


def refusal(run: str, cmd: str, reported: bool, why: str = "") -> str:
    """Why a run that lists its commands (hello `commands`) cannot take `cmd`, and what to do: what
    its writer said (`why`, hello `lacking`: an adapter's "pass eval_dataset="); for a script
    reporting through `import nexus`, the lines to add; for another writer, that it does not serve it."""
    if why:
        return f"{run} cannot {cmd}: {why}"
    lines = HANDLER_LINES.get(cmd)
    if reported and lines:
        return f"{run} cannot {cmd}: its script registers no {cmd} handler. Add (after nexus.init):\n{lines}"
    return f"{run} does not take {cmd} (its writer does not list it in its hello's commands)"


def as_args(command: Command) -> dict[str, Any]:
    """The command's fields as send_command's keyword arguments (None fields left out)."""
    return {k: v for k, v in msgspec.structs.asdict(command).items() if v is not None}


def command_error(command: Command) -> str:
    """'' when the command is within its limits (schema.COMMAND_ARGS, as the engine checks them), else
    one line that says what is wrong."""
    return check_command({"cmd": command.name, **as_args(command)})
