"""The queue for real: engines started by the runner (`nexus queue run`), parked and unparked through
the CLI, a priority job pushing a lower one out, a sweep ranked, a notification through Apprise to a
real HTTP server on 127.0.0.1, and a job whose program vanished failing in one line."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import ROOT
from support.engine import assert_one_line_error, engine_env, run_engine_ok, run_nexus
from support.preset import TINY
from support.wait import wait_until

from nexus_core import protocol as P
from nexus_core.commands import Pause, Stop
from nexus_tui.documents.runs_index import summarize_run
from nexus_tui.jobs import notify, ops, queuefile
from nexus_tui.live import run_control

QUIET = ["--set", "train.eval_every=0", "--set", "train.ckpt_every=0"]
LONG = "100000"
"""Steps for a run that must still be training when the test steers it (it is paused, then stopped)."""


def nexus_ok(*args: str) -> str:
    done = run_nexus(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def start_runner(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--root", str(root)],
        env=engine_env(),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_runner(proc: subprocess.Popen) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=60)
    return out


def job(root: Path, name: str, kind: str | None = None):
    jobs = [j for j in queuefile.read(root).jobs if j.name == name and (kind is None or j.kind == kind)]
    return jobs[-1] if jobs else None


def status_step(run: Path) -> int:
    return (P.read_status(run) or {}).get("step", 0) or 0


def losses(run: Path) -> dict[int, tuple[float, float]]:
    """step -> (loss, lr), a resume's records replacing the stretch it re-trained."""
    return {
        r["step"]: (r["loss"], r["lr"]) for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.METRIC}))
    }


def pause_then(run: Path, command, what: str) -> None:
    run_control.send(run, Pause(), timeout=120)
    wait_until(lambda: (P.read_status(run) or {}).get("state") == P.PAUSED, 120, f"{what} paused")
    run_control.send(run, command, timeout=120)


def test_a_parked_run_continues_bit_exact(runs_root: Path) -> None:
    run = runs_root / "p"
    nexus_ok(
        "queue",
        "add",
        "--root",
        str(runs_root),
        "--name",
        "p",
        "--no-start",
        "--",
        "train",
        "--steps",
        LONG,
        *TINY,
        *QUIET,
    )
    runner = start_runner(runs_root)
    try:
        wait_until(lambda: status_step(run) >= 3, 180, "the queued run to train", proc=runner)
        run_control.send(run, Pause(), timeout=120)  # so the park lands at a step we then know
        wait_until(lambda: (P.read_status(run) or {}).get("state") == P.PAUSED, 120, "the run paused")
        said = nexus_ok("park", "p", "--root", str(runs_root))
        assert "parking p" in said
        wait_until(
            lambda: (j := job(runs_root, "p")) is not None and j.state == "parked",
            180,
            "the runner to see the run parked",
            proc=runner,
        )
        assert summarize_run(run).state == P.PARKED
        assert "parked" in nexus_ok("runs", "--root", str(runs_root))
        k = status_step(run)
        assert (run / "checkpoints" / f"step_{k:06d}").is_dir(), "park checkpoints the step it stops at"

        nexus_ok("unpark", "p", "--root", str(runs_root), "--no-start")  # the runner here resumes it
        target = k + 20
        wait_until(
            lambda: status_step(run) >= target and summarize_run(run).state == P.RUNNING,
            240,
            "the unparked run to train on",
            proc=runner,
        )
        pause_then(run, Stop(), "the resumed run")
        wait_until(
            lambda: (j := job(runs_root, "p", "resume")) is not None and j.state == "done",
            180,
            "the resumed run to end",
            proc=runner,
        )
    finally:
        stop_runner(runner)
    hellos = list(P.iter_records(run / P.METRICS_FILE, frozenset({P.HELLO})))
    assert hellos[-1]["start_step"] == k, "unpark resumed from the parked step"

    straight = runs_root / "straight"
    run_engine_ok(
        "train", "--run-dir", str(straight), "--steps", LONG, "--stop-at", str(target), *TINY, *QUIET
    )
    a, b = losses(straight), losses(run)
    for step in range(1, target + 1):
        assert b[step][0] == pytest.approx(a[step][0], abs=1e-6), step
        assert b[step][1] == a[step][1], step


def test_a_priority_job_parks_a_lower_one(runs_root: Path) -> None:
    low, high = runs_root / "low", runs_root / "high"
    nexus_ok(
        "queue",
        "add",
        "--root",
        str(runs_root),
        "--name",
        "low",
        "--no-start",
        "--",
        "train",
        "--steps",
        LONG,
        *TINY,
        *QUIET,
    )
    runner = start_runner(runs_root)
    try:
        wait_until(lambda: status_step(low) >= 2, 180, "the low-priority run to train", proc=runner)
        nexus_ok(
            "queue",
            "add",
            "--root",
            str(runs_root),
            "--name",
            "high",
            "--priority",
            "5",
            "--no-start",
            "--",
            "train",
            "--steps",
            "4",
            *TINY,
            *QUIET,
        )
        wait_until(
            lambda: summarize_run(high).state == P.FINISHED if high.is_dir() else False,
            240,
            "the priority job to run and finish",
            proc=runner,
        )
        assert job(runs_root, "low", "train").state == "parked"
        wait_until(
            lambda: (
                (j := job(runs_root, "low", "resume")) is not None
                and j.state == "running"
                and summarize_run(low).state == P.RUNNING
            ),
            240,
            "the parked run to resume after it",
            proc=runner,
        )
        pause_then(low, Stop(), "the resumed run")
        wait_until(lambda: job(runs_root, "low", "resume").state == "done", 180, "the resumed run to end")
    finally:
        log = stop_runner(runner)
    parked_at = job(runs_root, "low", "train").ended
    assert job(runs_root, "high").started >= parked_at, "the priority job started only once the slot was free"
    hellos = list(P.iter_records(low / P.METRICS_FILE, frozenset({P.HELLO})))
    assert len(hellos) == 2 and hellos[1]["start_step"] >= 2, log


def test_a_sweep_of_six_runs_is_ranked(runs_root: Path) -> None:
    out = nexus_ok(
        "sweep",
        "--root",
        str(runs_root),
        "--name",
        "lrs",
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--grid",
        "optim.lr=1e-4,3e-4,1e-3",
        "--grid",
        "train.batch_size=2,4",
        *TINY,
        "--set",
        "train.eval_every=3",
        "--set",
        "train.ckpt_every=0",
        "--no-start",
    )
    assert "queued 6 runs" in out
    names = [j.name for j in queuefile.read(runs_root).jobs]
    assert names[0] == "lrs-lr1e-4-bs2" and len(names) == 6
    nexus_ok("queue", "slots", "2", "--root", str(runs_root))
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
        env=engine_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    shown = nexus_ok("sweep", "show", "lrs", "--root", str(runs_root)).splitlines()
    assert shown[0].split()[:4] == ["#", "run", "optim.lr", "train.batch_size"]
    rows = [line.split() for line in shown[1:]]
    assert len(rows) == 6 and {r[1] for r in rows} == set(names)
    vals = [float(r[4]) for r in rows]
    assert vals == sorted(vals), "ranked by best val loss"
    assert all(r[5] == "finished" for r in rows)


def test_a_bad_sweep_value_is_one_line(runs_root: Path) -> None:
    done = run_nexus("sweep", "--root", str(runs_root), "--grid", "optim.lr=1e-3,-5", "--no-start")
    assert_one_line_error(done, r"optim.lr=-5 would be refused")
    assert (
        not (runs_root / queuefile.QUEUE_DIR / queuefile.QUEUE_FILE).exists()
        or not queuefile.read(runs_root).jobs
    )


class _Hook(http.server.BaseHTTPRequestHandler):
    got: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.got.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook():
    _Hook.got = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/nexus", _Hook.got
    server.shutdown()


def test_the_queue_tells_a_real_endpoint_through_apprise(runs_root: Path, hook) -> None:
    url, got = hook
    nexus_ok(
        "queue",
        "add",
        "--root",
        str(runs_root),
        "--name",
        "told",
        "--no-start",
        "--",
        "train",
        "--steps",
        "2",
        *TINY,
        *QUIET,
    )
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
        env={**engine_env(), notify.NOTIFY_ENV: url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    bodies = [m.get("message", "") for m in got]
    assert any("told: finished" in b for b in bodies), got
    assert any("queue is empty" in b for b in bodies), got
    assert notify.send("t", "\x1b[31mred\x1b]0;title\x07", [url]) == ""
    assert "\x1b" not in got[-1]["message"], "run text is cleaned before it leaves"


def test_a_job_whose_program_vanished_fails_in_one_line(runs_root: Path, tmp_path: Path) -> None:
    program = tmp_path / "train.sh"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    ops.add(runs_root, "command", [str(program)], name="gone")
    program.unlink()
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
        env=engine_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stdout, done.stdout
    j = job(runs_root, "gone")
    assert j.state == "failed" and "command not found" in j.outcome and "\n" not in j.outcome
    assert_one_line_error(
        run_nexus("queue", "add", "--root", str(runs_root), "--", str(program)), "command not found"
    )


def test_a_script_that_resumes_is_parked_and_continues(runs_root: Path) -> None:
    script = ROOT / "tests" / "support" / "scripts" / "parkable_loop.py"
    run = runs_root / "script"
    nexus_ok(
        "queue",
        "add",
        "--root",
        str(runs_root),
        "--name",
        "script",
        "--no-start",
        "--",
        sys.executable,
        str(script),
    )
    runner = start_runner(runs_root)
    try:
        wait_until(lambda: status_step(run) >= 3, 180, "the script reporting", proc=runner)
        nexus_ok("park", "script", "--root", str(runs_root))
        wait_until(
            lambda: (j := job(runs_root, "script")) is not None and j.state == "parked",
            180,
            "the script parked",
            proc=runner,
        )
        saved = json.loads((run / "state.json").read_text())
        nexus_ok("unpark", "script", "--root", str(runs_root), "--no-start")
        wait_until(
            lambda: status_step(run) > saved["step"] + 3 and summarize_run(run).state == P.RUNNING,
            180,
            "the script continued",
            proc=runner,
        )
        run_control.send(run, Stop(), timeout=120)
        wait_until(
            lambda: len([j for j in queuefile.read(runs_root).jobs if j.state == "done"]) == 1,
            120,
            "the continued script to end",
            proc=runner,
        )
    finally:
        stop_runner(runner)
    hellos = list(P.iter_records(run / P.METRICS_FILE, frozenset({P.HELLO})))
    assert len(hellos) == 2 and hellos[1]["resumed_from"], "the second start continued the run"
    # Its state went on from the park's checkpoint, not from the start: step s's loss is 0.999**s throughout.
    by_step = {r["step"]: r["loss"] for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.METRIC}))}
    assert max(by_step) > saved["step"] + 3
    for step, loss in by_step.items():
        assert loss == pytest.approx(0.999**step, rel=1e-9), step


def test_a_script_without_resume_cannot_be_parked(runs_root: Path) -> None:
    script = ROOT / "tests" / "support" / "scripts" / "reported_loop.py"
    run = runs_root / "plain"
    nexus_ok(
        "queue",
        "add",
        "--root",
        str(runs_root),
        "--name",
        "plain",
        "--no-start",
        "--",
        sys.executable,
        str(script),
        "steer",
    )
    runner = start_runner(runs_root)
    try:
        wait_until(lambda: status_step(run) >= 3, 180, "the script reporting", proc=runner)
        assert_one_line_error(run_nexus("park", "plain", "--root", str(runs_root)), "cannot be parked")
        assert summarize_run(run).state == P.RUNNING
        run_control.send(run, Stop(), timeout=120)
        wait_until(lambda: job(runs_root, "plain").state == "done", 120, "the script to end", proc=runner)
    finally:
        stop_runner(runner)


def test_the_cli_on_a_planted_queue_is_one_line(runs_root: Path, tmp_path: Path) -> None:
    folder = runs_root / queuefile.QUEUE_DIR
    folder.mkdir(mode=0o700)
    planted = folder / queuefile.QUEUE_FILE
    planted.write_text(json.dumps({"version": 1, "owner": os.getuid() + 1, "jobs": []}))
    planted.chmod(0o600)
    for args in (("queue", "ls"), ("queue", "run", "--exit-when-idle"), ("queue", "hold", "1")):
        assert_one_line_error(run_nexus(*args, "--root", str(runs_root)), "belongs to uid .*move it aside")


def test_a_command_sweep_fills_its_arguments_and_is_ranked(runs_root: Path) -> None:
    script = ROOT / "tests" / "support" / "scripts" / "sweep_loop.py"
    out = nexus_ok(
        "sweep",
        "--root",
        str(runs_root),
        "--name",
        "cmd",
        "--grid",
        "lr=0.1,0.01,0.03",
        "--no-start",
        "--",
        sys.executable,
        str(script),
        "{lr}",
    )
    assert "queued 3 runs" in out
    jobs = queuefile.read(runs_root).jobs
    assert [j.args[-1] for j in jobs] == ["0.1", "0.01", "0.03"] and jobs[0].name == "cmd-lr0.1"
    nexus_ok("queue", "slots", "2", "--root", str(runs_root))
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
        env=engine_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    shown = nexus_ok("sweep", "show", "cmd", "--root", str(runs_root)).splitlines()
    assert shown[0].split()[:3] == ["#", "run", "lr"]
    assert [line.split()[1] for line in shown[1:]] == ["cmd-lr0.01", "cmd-lr0.03", "cmd-lr0.1"]
    assert_one_line_error(
        run_nexus(
            "sweep",
            "--root",
            str(runs_root),
            "--grid",
            "lr=1,2",
            "--no-start",
            "--",
            sys.executable,
            str(script),
            "1",
        ),
        r"never uses \{lr\}",
    )
