"""One live engine per run folder, enforced by the OS: real engine processes racing for one folder."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.engine import Engine, engine_env, run_engine
from support.preset import TINY
from support.wait import wait_until

from engine.runlock import folder_is_locked
from nexus_core import protocol as P


def _train(run: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "train", "--run-dir", str(run), "--steps", "100000", *TINY],
        env=engine_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_trains_at_once_one_wins_the_other_is_one_line_naming_it(runs_root: Path) -> None:
    run = runs_root / "race"
    a, b = _train(run), _train(run)  # started together: both pass every check made before the lock
    try:
        loser = wait_until(
            lambda: next((p for p in (a, b) if p.poll() is not None), None), 120, "one to be refused"
        )
        winner = b if loser is a else a
        err = loser.stderr.read().strip()
        assert loser.returncode == 2
        assert err.count("\n") == 0 and err.startswith("error: "), err
        assert f"is in use by engine pid {winner.pid} (one engine per folder)" in err, err
        assert winner.poll() is None, "the first engine trains on"
        wait_until(lambda: (P.read_status(run) or {}).get("state") == P.RUNNING, 120, "the winner training")
        assert folder_is_locked(run)
        hellos = [r for r in P.read_records(run / P.METRICS_FILE).records if r["type"] == P.HELLO]
        assert [h["pid"] for h in hellos] == [winner.pid], "one engine ever wrote the folder"

        # resume on the still-training run is refused the same way, and nothing is written.
        before = (run / P.METRICS_FILE).stat().st_size
        said = run_engine("resume", "--run-dir", str(run))
        assert said.returncode == 2 and f"in use by engine pid {winner.pid}" in said.stderr
        assert said.stderr.strip().count("\n") == 0, said.stderr
        assert winner.poll() is None
        assert all(
            r["pid"] == winner.pid
            for r in P.read_records(run / P.METRICS_FILE).records
            if r["type"] == P.HELLO
        )
        assert (run / P.METRICS_FILE).stat().st_size >= before
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
            p.communicate()


def test_the_lock_dies_with_its_engine_even_on_sigkill(runs_root: Path) -> None:
    run = runs_root / "killed"
    first = Engine(run, "train", "--steps", "100000", "--set", "train.ckpt_every=3", *TINY)
    first.wait_for(lambda r: r["type"] == P.CKPT)
    first.proc.send_signal(signal.SIGKILL)
    first.kill()
    assert not folder_is_locked(run), "the kernel dropped the dead engine's lock"
    again = Engine(run, "resume", "--stop-at", "8")
    assert again.finish() == 0, again.tail()
