"""The reporter tests' side: a real script that reports with `import nexus` (scripts/reported_loop.py)
in a subprocess, waiting on what it files in its run folder, and the socket and `nexus runs` it meets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_core import protocol as P
from support import ROOT

SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT = SCRIPTS / "reported_loop.py"


class Script:
    """`python reported_loop.py MODE` (or another script) writing run_dir (given as NEXUS_RUN_DIR, as a launcher would)."""

    def __init__(self, run_dir: Path, mode: str, script: Path = SCRIPT) -> None:
        self.run_dir = run_dir
        self.log_path = run_dir.parent / f"{run_dir.name}.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", P.RUN_DIR_ENV: str(run_dir)}
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), mode],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=run_dir.parent,
        )

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        path = self.run_dir / P.METRICS_FILE
        if not path.exists():
            return []
        return [r.to_dict() for r in P.read_records(path).records if kind is None or r.type == kind]

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 180.0) -> dict[str, Any]:
        """The first record satisfying pred, waiting for it to be filed."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.records():
                if pred(r):
                    return r
            if time.monotonic() > deadline or (
                self.proc.poll() is not None and not any(pred(r) for r in self.records())
            ):
                raise AssertionError(
                    f"no such record within {timeout:g}s (exit {self.proc.poll()}); log:\n" + self.output()
                )
            time.sleep(0.05)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def command(run_dir: Path, cmd: str, **args: Any) -> dict[str, Any]:
    """A command through the real control socket, with a deadline generous for a loaded box."""
    return P.send_command(run_dir, cmd, timeout=30.0, **args)


def nexus_runs(root: Path) -> dict[str, list[str]]:
    """`nexus runs` as a subprocess: name -> the row's cells."""
    out = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "--root", str(root), "runs"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:] if line.strip() and not line.startswith(" ")]
    return {r[0]: r for r in rows if r and r[0] != "notes:"}
