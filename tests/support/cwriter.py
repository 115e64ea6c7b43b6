"""The C writer (support/c_writer/nexus_writer.c, written from docs/PROTOCOL.md alone): compiled into a
test's tmp folder with the machine's C compiler, and run as a live run beside the dashboard."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent / "c_writer" / "nexus_writer.c"


def build(into: Path) -> Path:
    """The writer's binary, compiled into `into` (the test is skipped, with the reason, without cc)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc or gcc) on this machine")
    binary = into / "nexus_writer"
    done = subprocess.run(
        [cc, "-O1", "-Wall", "-Werror", "-o", str(binary), str(SOURCE), "-lm"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return binary


def start(binary: Path, run_dir: Path, steps: int = 1_000_000, step_ms: int = 20) -> subprocess.Popen:
    """The writer training into `run_dir` until its steps are done or a stop command."""
    return subprocess.Popen(
        [str(binary), str(run_dir), str(steps), str(step_ms)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
