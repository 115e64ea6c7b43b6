"""Real engines and `nexus` commands as the tests start them: `python -m engine` on a real pipe
(`Engine`) or run to the end (`run_engine`), `nexus ...` (`run_nexus`), and the one-line-error check
every CLI test makes. Children get one torch thread each, so tests share the 2-core CI box.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_core import protocol as P
from support import ROOT


def engine_env() -> dict[str, str]:
    """The environment of an engine child: the repo importable, one torch thread, unbuffered output."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_engine(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m engine ARGS` to the end, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def run_engine_ok(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """run_engine that must succeed: AssertionError with the end of stderr otherwise."""
    done = run_engine(*args, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def run_nexus(
    *args: str, timeout: float = 120, cwd: Path = ROOT, text: bool = True
) -> subprocess.CompletedProcess:
    """`nexus ARGS` (as `python -m nexus_tui`) to the end, output captured, stdin closed."""
    return subprocess.run(
        [sys.executable, "-m", "nexus_tui", *args],
        env=engine_env(),
        capture_output=True,
        text=text,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(done: subprocess.CompletedProcess, pattern: str) -> None:
    """A refused command: exit status 2, no traceback, one `error: ...` line on stderr matching pattern."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert re.search(pattern, lines[0]), lines[0]


class Engine:
    """A child engine (`train` or `resume`) whose metrics pipe the test reads with RecordDecoder."""

    def __init__(
        self, run_dir: Path, command: str, *args: str, preexec_fn: Callable[[], None] | None = None
    ) -> None:
        self.run_dir = run_dir
        self.log_path = run_dir.parent / f"{run_dir.name}.{command}.log"
        read_fd, write_fd = os.pipe()
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                command,
                "--run-dir",
                str(run_dir),
                "--metrics-fd",
                str(write_fd),
                *args,
            ],
            env=engine_env(),
            pass_fds=(write_fd,),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
            cwd=ROOT,
        )
        os.close(write_fd)
        self.fd = read_fd
        self.decoder = P.RecordDecoder()
        self.records: list[dict[str, Any]] = []
        self.eof = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pump(self, timeout: float) -> None:
        if self.eof:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            data = os.read(self.fd, 1 << 16)
            if not data:
                self.eof = True
            self.records.extend(self.decoder.feed(data))

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> dict[str, Any]:
        """The first record (read already or arriving) that satisfies pred."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for r in self.records[seen:]:
                if pred(r):
                    return r
            seen = len(self.records)
            if self.eof or time.monotonic() > deadline:
                raise AssertionError(f"no matching record; last: {self.records[-3:]}; log: {self.tail()}")
            self.pump(0.1)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]

    def finish(self, timeout: float = 60.0) -> int:
        """Read to EOF and reap; returns the exit status."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline and self.proc.poll() is None:
            self.pump(0.1)
        rc = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        while not self.eof:
            self.pump(0.0)
            if not select.select([self.fd], [], [], 0)[0]:
                break
        self.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.log.close()

    def tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]


def file_records(run_dir: Path) -> P.ReadResult:
    return P.read_records(run_dir / P.METRICS_FILE)


def metric_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in file_records(run_dir).records if r["type"] == "metric"]
