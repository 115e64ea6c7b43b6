"""A run's state must be true: a real dashboard (Pilot) on an empty runs folder, a real engine started
from outside it (as from a terminal), then stopped with SIGSTOP (stalled), continued (running again)
and SIGKILLed (crashed), with `nexus runs` asked the same questions on the way."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.preset import sets
from support.wait import pilot_wait_until

import nexus_core.state
from nexus_core.runfolder import engine_argv
from nexus_core.state import RunState
from nexus_tui.app import NexusApp
from nexus_tui.documents.runs_index import format_runs_table, summarize_run
from nexus_tui.widgets.run_table import RunTable

QUIET = ["train.eval_every=100000", "train.ckpt_every=100000", "train.save_best=false"]
"""Over the test preset: no side work at all, so nothing but steps decides what the run looks like."""


def _state(app: NexusApp, name: str) -> str:
    table = app.query_one(RunTable)
    try:
        return table.get_cell(name, "state").plain
    except Exception:  # noqa: BLE001 - not in the table yet
        return ""


@pytest.mark.timeout(300)
async def test_a_run_started_outside_is_stalled_then_running_then_crashed(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_env: dict[str, str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(nexus_core.state, "STALL_FLOOR_S", 1.0)  # the floor, low: no long sleep
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    run_dir = runs_root / "outside"
    args = [
        "train",
        "--preset",
        "tiny",
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--steps",
        "1000000",
        *sets(*QUIET),
    ]
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot_wait_until(pilot, lambda: app._replayed, 30, "the start-up scan")
        # From outside the dashboard: it finds the folder (config.toml) seconds before the status file.
        proc = subprocess.Popen(
            engine_argv(sys.executable, *args),
            env=engine_env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await pilot_wait_until(pilot, lambda: _state(app, "outside") == "running", 180, "running")
            run = app.store.get("outside")
            assert run is not None and run.pid == proc.pid

            os.kill(proc.pid, signal.SIGSTOP)  # alive, silent: stalled, with no ETA
            await pilot_wait_until(pilot, lambda: _state(app, "outside") == "stalled", 90, "stalled")
            assert run.eta_s is None and str(app.query_one(RunTable).get_cell("outside", "eta")) in (
                "",
                "-",
                "–",
                "—",
            )
            s = summarize_run(run_dir, stall_floor_s=1.0)
            assert s.state == "stalled" and f"pid {proc.pid} lives" in s.note
            assert "stalled" in format_runs_table([s])

            os.kill(proc.pid, signal.SIGCONT)  # records flow again: running, not stalled
            await pilot_wait_until(pilot, lambda: _state(app, "outside") == "running", 90, "running again")
            assert summarize_run(run_dir, stall_floor_s=1.0).state == "running"

            proc.kill()  # SIGKILL: nothing written, the pid is gone: crashed, not stalled
            proc.wait()
            await pilot_wait_until(pilot, lambda: _state(app, "outside").startswith("crashed"), 30, "crashed")
            assert summarize_run(run_dir, stall_floor_s=1.0).state == "crashed"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()


def test_stalled_follows_the_runs_own_pace() -> None:
    """Twenty times the usual gap between metric records, never less than the floor; only `running`
    can be stalled (paused, finished or crashed say more than silence does)."""
    from nexus_core.recordtypes import Metric, State

    run = RunState()
    for i in range(10):
        run.apply(Metric(seq=i, time=1000.0 + 10.0 * i, step=i, tokens=0, loss=1.0, lr=1e-3))
    assert run.state == "running" and run.stall_after_s(floor_s=1.0) == 200.0
    assert not run.stalled(now=1090.0 + 199.0, floor_s=1.0) and run.stalled(now=1090.0 + 201.0, floor_s=1.0)
    assert run.shown_state(now=1090.0 + 201.0, floor_s=1.0) == "stalled"
    run.apply(State(seq=11, time=1100.0, state="paused", step=9))
    assert not run.stalled(now=1e9)


def test_a_run_found_before_its_status_is_ready_once_the_status_appears(runs_root: Path) -> None:
    """The watcher keeps a folder found without a status file pending and looks again on later events
    (and polls), so the dashboard can follow its process once the status says which one it is."""
    import threading
    import time

    from nexus_core.runfolder import write_status
    from nexus_tui.live.watcher import RunsWatcher

    found: list[str] = []
    ready: list[str] = []
    changed = threading.Event()

    def note(into: list[str]):
        return lambda run_dir: (into.append(Path(run_dir).name), changed.set())

    w = RunsWatcher(
        runs_root,
        on_batch=lambda *a: None,
        on_new_run=note(found),
        on_warning=lambda *a: None,
        poll_s=0.5,
        on_run_ready=note(ready),
    )
    w.start()
    try:

        def wait(check, what: str) -> None:
            deadline = time.monotonic() + 30
            while not check():
                assert time.monotonic() < deadline, what
                changed.wait(0.2)
                changed.clear()

        (runs_root / "early").mkdir()
        (runs_root / "early" / "config.toml").write_text("[train]\nsteps = 5\n")
        wait(lambda: found == ["early"], "the folder is found from its config.toml")
        time.sleep(1.2)  # a few polls: still no status, so not ready (asserting an absence)
        assert ready == []
        write_status(runs_root / "early", {"state": "starting", "pid": 1})
        wait(lambda: ready == ["early"], "ready once the status file exists")
        write_status(runs_root / "early", {"state": "running", "pid": 1})
        time.sleep(1.2)
        assert ready == ["early"] and found == ["early"]  # once each
    finally:
        w.stop()
