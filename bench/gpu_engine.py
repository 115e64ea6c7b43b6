"""A real engine, launched and steered the way the dashboard does it, for bench/gpu_check.py.

`python -m engine train ...` in its own session, stdout/stderr to the run folder's engine.log,
records followed from metrics.msgpack with the one RecordDecoder, commands over the control socket
with `nexus_core.protocol.send_command`. Every wait has a deadline: a check that hangs is a failed row,
never a hung script.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nexus_core import protocol as P  # noqa: E402


class CheckFailed(Exception):
    """A check did not hold; the message is the table's detail column."""


def engine_env() -> dict[str, str]:
    """The environment a spawned engine gets: this checkout first on PYTHONPATH (as the supervisor
    does), so `python -m engine` is this tree's engine whatever the working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class EngineRun:
    """One engine process and its run folder."""

    def __init__(self, runs: Path, name: str, args: list[str], command: str = "train") -> None:
        self.name, self.run_dir = name, runs / name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []
        self._offset = 0
        self._decoder = P.RecordDecoder()
        self.start(args, command)

    def start(self, args: list[str], command: str = "train") -> None:
        """Launch (again, for `resume`): a new process on the same run folder."""
        extra = ["--name", self.name] if command == "train" else []
        cmd = [sys.executable, "-m", "engine", command, "--run-dir", str(self.run_dir), *extra, *args]
        self.log_path = self.run_dir / P.LOG_FILE
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=engine_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    # -- records ---------------------------------------------------------------------------------

    def poll(self) -> list[dict[str, Any]]:
        """New records from the metrics file since the last poll."""
        path = self.run_dir / P.METRICS_FILE
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        new = self._decoder.feed(data)
        self.records.extend(new)
        return new

    def of(self, kind: str) -> list[dict[str, Any]]:
        self.poll()
        return [r for r in self.records if r.get("type") == kind]

    def metrics(self) -> list[dict[str, Any]]:
        return self.of(P.METRIC)

    def last_step(self) -> int:
        m = self.metrics()
        return int(m[-1]["step"]) if m else 0

    def wait_for(self, what: str, pred: Callable[[], Any], timeout: float) -> Any:
        """Poll until `pred()` is truthy (returns it); fail with `what` on timeout or engine exit."""
        end = time.monotonic() + timeout
        while True:
            self.poll()
            got = pred()
            if got:
                return got
            if self.proc.poll() is not None:
                self.poll()
                got = pred()
                if got:
                    return got
                raise CheckFailed(
                    f"{what}: engine exited with code {self.proc.returncode} ({self.last_line()})"
                )
            if time.monotonic() > end:
                raise CheckFailed(f"{what}: not seen within {timeout:.0f}s")
            time.sleep(0.05)

    def wait_steps(self, n: int, timeout: float) -> int:
        return self.wait_for(f"step {n}", lambda: self.last_step() >= n and self.last_step(), timeout)

    def wait_exit(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"engine still running after {timeout:.0f}s") from None
        self.poll()
        return code

    # -- control ---------------------------------------------------------------------------------

    def command(self, cmd: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """One command over the control socket, exactly as the dashboard sends it."""
        try:
            return P.send_command(self.run_dir, cmd, timeout=timeout, **args)
        except P.ControlError as e:
            raise CheckFailed(f"{cmd}: {e}") from None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def last_line(self) -> str:
        lines = [ln for ln in self.log_text().splitlines() if ln.strip()]
        return lines[-1][:200] if lines else "no output"

    def kill(self) -> None:
        """End this engine (its own process group, which only it and its children are in)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
