"""What to start, decided before anything starts: the engine's arguments, its environment, and the
checks that refuse a bad launch while no folder exists yet.

Pure functions over the run's settings (plus `check_train`, which asks the engine itself through an
isolated `python -I ... --check`): the supervisor (`supervisor.py`) only spawns and follows what these
return, so the rules for "is this launch valid, and how is it spelled" live in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nexus_core import children
from nexus_core.checkpoints import resolve_checkpoint
from nexus_core.errors import CheckpointError
from nexus_core.protocol import clean_text, engine_argv
from nexus_core.runfolder import status_live
from nexus_core.schema import RUN_DIR_ENV
from nexus_tui.live.engine_io import command_program, visible_devices

MAX_RANKS = 64
"""The most processes the form may ask torchrun for on one machine."""


class LaunchError(Exception):
    """A run could not be started or resumed; the message is one line that says what to fix."""


def base_env(threads: int | None) -> dict[str, str]:
    """The dashboard's environment for a child: unbuffered output, and the CPU threads it may use."""
    return children.child_env(
        {"PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    )


def train_args(
    preset: str,
    run_dir: Path,
    device: str,
    steps: int | None,
    overrides: list[str] | None,
    nproc: int,
) -> list[str]:
    """`engine train` arguments for a new run; LaunchError for counts out of range."""
    if not 1 <= nproc <= MAX_RANKS:
        raise LaunchError(f"processes must be 1 to {MAX_RANKS}, got {nproc}")
    if steps is not None and steps < 1:
        raise LaunchError(f"steps must be at least 1, got {steps}")
    args = ["train", "--preset", preset, "--run-dir", str(run_dir), "--device", device]
    if steps is not None:
        args += ["--steps", str(steps)]
    for text in overrides or []:
        args += ["--set", text]
    return args


def resume_args(
    run_dir: Path,
    status: dict[str, Any],
    live: bool,
    lr: float | None,
    ramp_steps: int | None,
    steps: int | None,
    from_ckpt: str | None,
    device: str | None,
) -> tuple[list[str], str]:
    """`engine resume` arguments and the device the run will use. LaunchError while the run is
    still running (this dashboard follows it, or its status says so and its pid lives), for half
    a ramp, or when the checkpoint asked for (the newest when None) does not exist: nothing starts,
    so the run keeps the state it had (a crashed run stays crashed in every view)."""
    if live or status_live(status):
        raise LaunchError(f"run {run_dir.name!r} is still running: stop it before resuming it")
    if (lr is None) != (ramp_steps is None):
        raise LaunchError("an LR ramp needs both a target LR and the number of ramp steps")
    try:  # before anything starts: a resume that can only fail must not turn the run into a new failure
        resolve_checkpoint(run_dir, from_ckpt)
    except CheckpointError as e:
        raise LaunchError(f"cannot resume {run_dir.name}: {e}; n starts a new run") from None
    args = ["resume", "--run-dir", str(run_dir)]
    if from_ckpt:
        args += ["--from", str(from_ckpt)]
    if steps is not None:
        args += ["--steps", str(steps)]
    if lr is not None:
        args += ["--lr", repr(float(lr)), "--ramp-steps", str(int(ramp_steps or 0))]
    if device:
        args += ["--device", device]
    run_device = device or (status["device"] if isinstance(status.get("device"), str) else "cpu")
    return args, run_device


def check_train(python: str, args: list[str], cwd: Path) -> None:
    """`python -m engine train ARGS --check` (isolated, like a real start): the engine validates the
    preset, every override and the run folder with the same code a real start runs, without torch
    and without creating anything (about half a second). LaunchError with the engine's one line if
    it refuses."""
    try:
        out = children.run(engine_argv(python, *args, "--check"), cwd=cwd, env=base_env(None), timeout=60)
    except (OSError, children.TimeoutExpired) as e:
        raise LaunchError(f"could not check the run's config: {e}") from None
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        said = next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "")
        raise LaunchError(
            clean_text(said.removeprefix("error: ") or f"the engine refused (exit {out.returncode})")
        )


CHECKPOINT_VERBS = ("generate", "eval")
"""The engine's commands that use a stopped run's checkpoint without training (`nexus generate|eval`)."""


def use_checkpoint(
    python: str, verb: str, run_dir: Path, args: list[str], cwd: Path, timeout: float = 600
) -> str:
    """`engine generate|eval --run-dir D --from latest ARGS` to the end, isolated like every engine:
    what it printed, cleaned, or LaunchError with its one error line. The dashboard's `g` and `e` on
    a run that is not live, so they do what `nexus generate`/`nexus eval` do headless."""
    if verb not in CHECKPOINT_VERBS:
        raise LaunchError(f"not a checkpoint command: {verb!r}")
    argv = engine_argv(python, verb, "--run-dir", str(run_dir), "--from", "latest", *args)
    try:
        out = children.run(argv, cwd=cwd, env=base_env(None), timeout=timeout)
    except (OSError, children.TimeoutExpired) as e:
        raise LaunchError(f"{verb} on {run_dir.name}'s checkpoint: {e}") from None
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        said = next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "")
        raise LaunchError(
            clean_text(said.removeprefix("error: ") or f"the engine refused (exit {out.returncode})")
        )
    return clean_text(out.stdout.strip(), multiline=True)


def command_launch(argv: list[str], run_dir: Path, device: str) -> tuple[str, dict[str, str]]:
    """The program to run for a user's command (no shell) and its environment: NEXUS_RUN_DIR naming
    the new folder for the script's `nexus.init()`, CUDA_VISIBLE_DEVICES from `device` (cpu: none
    visible). The metrics pipe's fd is added by the supervisor once it exists."""
    try:
        program = command_program(argv)
    except ValueError as e:
        raise LaunchError(str(e)) from None
    env = base_env(None)
    env[RUN_DIR_ENV] = str(run_dir)
    if (visible := visible_devices(device)) is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return program, env
