"""A job becomes a process: the argv, environment and device it runs with on the slots it was given.

Engine jobs run isolated like every engine launch (`engine_argv`); a command runs with no shell,
NEXUS_RUN_DIR naming its run folder, and CUDA_VISIBLE_DEVICES naming its GPUs. The process is made
by `live/spawn.py` (through `nexus_core.children`, the process door): own session, output in the run's log, unpiped (the
dashboard follows queued runs from their folders, as it follows runs started in a terminal)."""

from __future__ import annotations

import os
from pathlib import Path

from nexus_core import children
from nexus_core.protocol import engine_argv
from nexus_tui.jobs.model import Job
from nexus_tui.live.launch_args import base_env, command_launch
from nexus_tui.live.spawn import start_in_session


def device_text(kind: str, devices: list[int]) -> str:
    """The engine's --device for these slots: cuda:N for one GPU, cuda for several, else cpu."""
    if kind != "gpu":
        return "cpu"
    return f"cuda:{devices[0]}" if len(devices) == 1 else "cuda"


def threads_for(kind: str, job: Job, cpu_slots: int) -> int | None:
    """CPU jobs share the cores by slot; an engine job that sets train.threads itself keeps it, and a
    resume keeps the run's own (a resumed run continues bit-exact only on the same thread count)."""
    if kind == "gpu" or job.kind == "resume" or any(a.startswith("train.threads=") for a in job.args):
        return None
    return max(1, (os.cpu_count() or 1) * len(job.devices or [0]) // max(1, cpu_slots))


def build(job: Job, root: Path, python: str, kind: str, cpu_slots: int) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of `job` on its `devices`. LaunchError when a command is not found."""
    run_dir = root / job.name
    device = device_text(kind, job.devices)
    threads = threads_for(kind, job, cpu_slots)
    env = base_env(threads)
    if kind == "gpu" and len(job.devices) > 1:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in job.devices)
    if job.kind == "command":
        argv = list(job.args)
        if "/" in argv[0] and not os.path.isabs(argv[0]):
            argv[0] = os.path.join(job.cwd, argv[0])  # relative to where it was queued, as typed there
        program, cenv = command_launch(argv, run_dir, device if len(job.devices) == 1 else "cuda")
        env = {**cenv, **{k: v for k, v in env.items() if k == "CUDA_VISIBLE_DEVICES"}}
        return [program, *argv[1:]], env
    tail = ["--threads", str(threads)] if threads else []
    if len(job.devices) > 1:
        tail += ["--nproc", str(len(job.devices))]
    if job.kind == "train":
        args = ["train", *job.args, "--run-dir", str(run_dir), "--device", device, *tail]
    else:
        args = ["resume", "--run-dir", str(run_dir), "--device", device, *job.args, *tail]
    return engine_argv(python, *args), env


def start(job: Job, root: Path, python: str, kind: str, cpu_slots: int) -> children.Popen[bytes]:
    """Start `job` in its own session; LaunchError (one line) when it cannot."""
    argv, env = build(job, root, python, kind, cpu_slots)
    cwd = Path(job.cwd) if job.kind == "command" and os.path.isdir(job.cwd) else root.parent
    proc, _ = start_in_session(
        root / job.name,
        lambda _fd: (argv, env),
        cwd,
        argv[0] if job.kind == "command" else "the engine",
        piped=False,
    )
    return proc
