"""The parts of wandb's surface that have no meaning offline: accepted, and said once what was skipped.

A script written for wandb calls `wandb.login()`, `wandb.Settings(...)`, `wandb.sweep(...)`: each of
these runs here without error, so the script reaches its training loop, and prints one line (once per
call name, on stderr) saying what Nexus did not do. Nothing here raises.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

_said: set[str] = set()


def skipped(what: str, why: str) -> None:
    """One stderr line per `what` per process: the call was accepted and did nothing (and why)."""
    if what in _said:
        return
    _said.add(what)
    print(f"nexus: {what} skipped: {why}", file=sys.stderr, flush=True)


class Settings:
    """wandb.Settings(...): every keyword kept as an attribute; Nexus reads only `mode` and `run_name`."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def update(self, settings: Any = None, **kwargs: Any) -> None:
        self.__dict__.update(dict(settings or {}), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def login(*args: Any, **kwargs: Any) -> bool:
    skipped("wandb.login()", "Nexus keeps runs on this machine; there is no account to log in to")
    return True


def logout(*args: Any, **kwargs: Any) -> None:
    skipped("wandb.logout()", "there is no account to log out of")


def setup(*args: Any, **kwargs: Any) -> None:
    """wandb.setup(): nothing to start (Nexus has no service process)."""


def teardown(exit_code: int | None = None) -> None:
    """wandb.teardown(): finishes the current run, as wandb does."""
    import nexus

    nexus.finish(exit_code=exit_code)


def require(*args: Any, **kwargs: Any) -> None:
    """wandb.require("core") and friends: nothing to switch on."""


def sweep(
    sweep: Any = None, entity: str | None = None, project: str | None = None, prior_runs: Any = None
) -> str:
    skipped("wandb.sweep()", "sweeps need W&B's server; the run trains with the config it is given")
    return "nexus-local-sweep"


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    entity: str | None = None,
    project: str | None = None,
    count: int | None = None,
) -> None:
    """wandb.agent: with no sweep server, run the function once (count times, if given) as is."""
    skipped("wandb.agent()", "no sweep server: the function runs with the config it sets itself")
    if function is not None:
        for _ in range(count or 1):
            function()


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    print(f"nexus: {string}" if prefix else string, file=sys.stderr, end="\n" if newline else "", flush=True)


def termwarn(string: str, **kwargs: Any) -> None:
    termlog(f"WARNING {string}")


def termerror(string: str, **kwargs: Any) -> None:
    termlog(f"ERROR {string}")


def mode_of(mode: Any, settings: Any) -> str:
    """The mode wandb would run in: the argument, the settings, then $WANDB_MODE."""
    for value in (
        mode,
        getattr(settings, "mode", None) if settings is not None else None,
        os.environ.get("WANDB_MODE"),
        "disabled" if os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes") else None,
    ):
        if value:
            return str(value)
    return "online"
