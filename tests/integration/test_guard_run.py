"""The causality guard is wired into every run start: a real `train` whose model peeks at the future
is refused in one line before it writes anything."""

from __future__ import annotations

import subprocess
import sys
import time

from support import ROOT
from support.engine import engine_env
from support.preset import TINY


def test_a_run_whose_model_sees_the_future_fails_at_start_in_one_line(tmp_path) -> None:
    """The guard is wired into every run start: a real `train` whose transformer is swapped for a
    leaky one exits 2 with one line, in seconds, before any record is written."""
    boot = (
        "import sys; sys.path.insert(0, 'tests'); from engine.models import base; base._import_families(); "
        "from support.leaky import Leaky; base._REGISTRY['transformer'] = lambda cfg: Leaky(cfg, 1); "
        "from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    run = tmp_path / "peeks"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", boot, "train", "--run-dir", str(run), "--steps", "5", *TINY],
        env=engine_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees the future" in lines[0] and lines[0].startswith("error: "), lines
    assert not (run / "metrics.msgpack").exists()
    print(f"refused in {took:.1f}s")
