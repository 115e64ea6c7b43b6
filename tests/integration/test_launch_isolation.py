"""Only Nexus's own engine runs: a folder named `engine` planted in the working directory (beside the
runs folder, or in the user's project) is never imported by an engine the dashboard or `nexus` starts.

The planted package writes a marker file the moment it is imported; the tests launch real engines
from that directory and require the marker never to appear and the runs to train."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.preset import TINY, TINY_OVERRIDES

from nexus_core import protocol as P
from nexus_tui.live.supervisor import Supervisor

NEXUS = Path(sys.executable).parent / "nexus"


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """(project folder with a hostile engine/ and a runs/ folder, the marker its import would write)."""
    project = tmp_path / "project"
    marker = tmp_path / "PLANTED_ENGINE_RAN"
    evil = project / "engine"
    (evil / "protocol").mkdir(parents=True)
    code = f"open({str(marker)!r}, 'a').write('imported\\n')\n"
    for f in ("__init__.py", "__main__.py", "protocol/__init__.py", "cli.py"):
        (evil / f).write_text(code)
    (project / "torch").mkdir()
    (project / "torch" / "__init__.py").write_text(code)  # a planted torch must not load either
    (project / "runs").mkdir()
    return project, marker


def test_the_dashboard_launches_only_the_installed_engine(planted: tuple[Path, Path]) -> None:
    project, marker = planted
    exits: dict = {}
    sup = Supervisor(
        project / "runs", lambda *a: None, lambda n, c, t: exits.setdefault(n, c), lambda *a: None
    )
    sup.launch("tiny", name="safe", steps=3, overrides=TINY_OVERRIDES)  # its cwd is the project folder
    deadline = time.monotonic() + 120
    while "safe" not in exits and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exits.get("safe") == 0, (project / "runs" / "safe" / P.LOG_FILE).read_text()[-2000:]
    steps, lrs = sup.lr_preview(project / "runs" / "safe", 1e-3, 0, 10)
    assert steps[-1] == 10 and lrs
    sup.shutdown(stop_runs=True)
    assert not marker.exists(), "the planted engine ran"


@pytest.mark.skipif(not NEXUS.exists(), reason="the nexus console script is not installed in this venv")
@pytest.mark.parametrize("nproc", [1, 2])
def test_nexus_train_from_a_folder_with_a_planted_engine(planted: tuple[Path, Path], nproc: int) -> None:
    project, marker = planted
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(NEXUS), "train", "--run-dir", "runs/r", "--steps", "2", "--nproc", str(nproc), *TINY],
        cwd=project,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not marker.exists(), "the planted engine (or torch) ran"
    hellos = [
        r for r in P.read_records(project / "runs" / "r" / P.METRICS_FILE).records if r["type"] == P.HELLO
    ]
    assert hellos and hellos[0]["world_size"] == nproc
