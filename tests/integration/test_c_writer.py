"""A writer in C, written from docs/PROTOCOL.md alone (support/c_writer), passes `nexus check` live
(its socket answers every listed command as specified: pause/resume recorded, checkpoint and eval
bring their records, stop ends it `stopped`) and once finished; and its folder reads like any run's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.cwriter import build, start
from support.wait import wait_until

from nexus_core import protocol as P
from nexus_core.check import check


def test_the_c_writer_passes_nexus_check_live_and_after(tmp_path: Path, runs_root: Path) -> None:
    binary = build(tmp_path)
    run = runs_root / "cw"
    proc = start(binary, run, step_ms=10)
    try:
        wait_until(
            lambda: P.read_status(run) and (P.read_status(run) or {}).get("state") == P.RUNNING,
            60,
            "the C writer running",
        )
        report = check(run, steer=True)
        assert report.ok and report.lines == [], report.summary()
        assert "control socket" in report.checked
        done = subprocess.run(
            [sys.executable, "-m", "nexus_tui", "check", "--stop", str(run)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.wait(10)
    report = check(run)
    assert report.ok and report.lines == [], report.summary()
    records = P.read_records(run / P.METRICS_FILE).records
    kinds = {r.type for r in records}
    assert {"hello", "metric", "state", "ckpt", "eval"} <= kinds
    assert records[-1].type == P.STATE and records[-1].state == P.STOPPED
