"""The control channel's engine side: commands from the socket become calls on the trainer.

Commands are read only between steps (a step is never torn), each gets one reply, and a command
that cannot be carried out gets `ok: False` with the reason instead of hurting the run.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Protocol

from nexus_core import protocol as P
from nexus_core.errors import ConfigError, NexusError


class Steerable(Protocol):
    """What the controller needs from the trainer."""

    paused: bool
    step: int

    def pause(self, reason: str) -> None: ...
    def unpause(self, reason: str) -> None: ...
    def save(self, reason: str) -> Path: ...
    def evaluate(self) -> float: ...
    def request_stop(self, reason: str) -> None: ...
    def requested_sample(self, prompt: str, tokens: int, temperature: float, top_k: int) -> None: ...
    def ramp(self, target_lr: float, ramp_steps: int, total_steps: int | None) -> str: ...
    def log(self, text: str, level: str = "info") -> None: ...


class Controller:
    """Owns the run's CommandServer; `poll` handles whatever commands are waiting."""

    def __init__(self, run_dir: str | Path) -> None:
        try:
            self.server = P.CommandServer(run_dir)
        except P.ControlError as e:  # a hostile socket folder: refuse to start, in one line
            raise ConfigError(str(e)) from None

    @property
    def socket_path(self) -> str:
        return str(self.server.path)

    def poll(self, trainer: Steerable, timeout: float = 0.0) -> int:
        """Answer every waiting command; returns how many there were."""
        waiting = self.server.poll(timeout)
        for cmd, conn in waiting:
            if cmd["cmd"] == P.GENERATE:
                self._generate(trainer, cmd, conn)
                continue
            try:
                extra = dispatch(trainer, cmd)
            except NexusError as e:
                P.reply(conn, ok=False, error=str(e))
            except Exception as e:  # noqa: BLE001 - a failed command must not kill the run
                traceback.print_exc(file=sys.stderr)
                P.reply(conn, ok=False, error=f"{cmd['cmd']} failed: {type(e).__name__}: {e}")
            else:
                P.reply(conn, ok=True, **extra)
        return len(waiting)

    def _generate(self, trainer: Steerable, cmd: dict[str, Any], conn: Any) -> None:
        """Answer at once, then sample: a long sample must not outlast the client's timeout. The text
        (or why there is none) arrives as a record."""
        # Types and ranges were checked against protocol.COMMAND_ARGS before this was called.
        prompt, tokens = cmd.get("prompt", ""), cmd.get("tokens", 100)
        temperature, top_k = cmd.get("temperature", 0.8), cmd.get("top_k", 40)
        P.reply(conn, ok=True, step=trainer.step)
        try:
            trainer.requested_sample(prompt, tokens, float(temperature), top_k)
        except Exception as e:  # noqa: BLE001 - a failed sample must not kill the run
            traceback.print_exc(file=sys.stderr)
            trainer.log(f"generate failed: {type(e).__name__}: {e}", "error")

    def close(self) -> None:
        self.server.close()


def dispatch(trainer: Steerable, cmd: dict[str, Any]) -> dict[str, Any]:
    """Carry out one well-formed command (protocol.check_command already ran); return reply extras.
    `generate` is not here: the Controller answers it before the work (see `_generate`)."""
    name = cmd["cmd"]
    if name == P.PAUSE:
        trainer.pause("pause command")
    elif name in (P.RESUME, P.UNPAUSE):  # UNPAUSE: the name older dashboards send
        trainer.unpause("resume command")
    elif name == P.CHECKPOINT:
        return {"path": str(trainer.save("checkpoint command"))}
    elif name == P.EVAL_NOW:
        return {"val_loss": trainer.evaluate()}
    elif name == P.STOP:
        trainer.request_stop("stop command")
    elif name == P.RAMP:
        total = cmd.get("total_steps")
        text = trainer.ramp(float(cmd["target_lr"]), int(cmd["ramp_steps"]), total)
        return {"text": text, "step": trainer.step}
    return {}
