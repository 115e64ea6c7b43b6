"""A full disk, for real: the engine runs under RLIMIT_FSIZE (a per-process file-size limit, which
binds root too, unlike chmod), so its checkpoint and then its metrics writes fail mid-run with EFBIG.
The run must alert and pause, lose nothing it wrote, and go on once a person makes room (here: the
test raises the live process's limit with prlimit) or be resumable with `resume` afterwards."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
from support.engine import Engine, file_records, metric_steps, run_engine
from support.preset import TINY
from support.runfolder import snapshot
from support.wait import wait_until

from engine import checkpoint as ckpt
from engine import report
from nexus_core import protocol as P

INF = resource.RLIM_INFINITY


def _limit_files_to(size: int):
    """preexec_fn: a soft file-size limit (the hard one stays unlimited so it can be raised later)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, INF))

    return apply


def test_full_disk_alerts_pauses_loses_nothing_and_the_run_goes_on(runs_root: Path) -> None:
    run = runs_root / "full"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        *TINY,
        "--set",
        "train.eval_every=6",
        "--set",
        "train.ckpt_every=1000",
        "--set",
        "train.save_best=false",
    )  # phase 2 fills metrics
    assert done.returncode == 0, done.stderr[-2000:]
    before = snapshot(run)
    size = (run / P.METRICS_FILE).stat().st_size
    weights = (ckpt.resolve_checkpoint(run) / ckpt.MODEL_FILE).stat().st_size
    room = size + weights // 2  # metrics have room for a while; a checkpoint does not fit

    eng = Engine(run, "resume", "--steps", "100000", "--threads", "1", preexec_fn=_limit_files_to(room))
    try:
        eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= 8)
        # 1. A checkpoint that cannot be written: the command fails, the run alerts and pauses.
        with pytest.raises(P.ControlError, match="checkpoint at step"):
            P.send_command(eng.run_dir, "checkpoint")
        paused = eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused")
        assert "free space" in paused["reason"]
        alerts = [a for a in eng.of("alert") if a["kind"] == "disk"]
        assert alerts and "File too large" in alerts[0]["text"]
        assert ckpt.resolve_checkpoint(run).name == "step_000006", "latest still the last whole checkpoint"
        assert [p.name for p in ckpt.list_checkpoints(run)] == ["step_000006"], "the temp folder never counts"
        wait_until(
            lambda: P.read_status(run)["state"] == "paused", 60, "the status file"
        )  # written after the pipe

        # 2. Room for a few records only: the metrics file fills, the run pauses again.
        resource.prlimit(eng.pid, resource.RLIMIT_FSIZE, ((run / P.METRICS_FILE).stat().st_size + 1500, INF))
        P.send_command(run, "resume")
        again = eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused" and r["seq"] == -1)
        assert "metrics.msgpack" in again["reason"]
        unfiled = [r for r in eng.records if r["seq"] == -1]
        assert any(r["type"] == "alert" and r["kind"] == "disk" for r in unfiled), "the pipe heard of it"
        on_file = file_records(run)
        assert on_file.torn_bytes == 0 and on_file.warnings == [], "a short write was taken back"
        wait_until(lambda: P.read_status(run)["state"] == "paused", 60, "the status file")
        assert P.read_status(run)["step"] == again["step"]

        # 3. Room again: resume, train on, stop with a checkpoint.
        resource.prlimit(eng.pid, resource.RLIMIT_FSIZE, (INF, INF))
        P.send_command(run, "resume")
        eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= again["step"] + 3)
        P.send_command(run, "stop")
        assert eng.finish() == 0, eng.tail()
    finally:
        eng.kill()
    after = snapshot(run)
    kept = {k: v for k, v in before.items() if k.startswith("checkpoints/step_000006/") or k == P.CONFIG_FILE}
    assert all(after[k] == v for k, v in kept.items()), "nothing written before was changed"
    assert after[P.METRICS_FILE].startswith(before[P.METRICS_FILE]), "the old records are all still there"
    result = file_records(run)
    assert result.torn_bytes == 0 and result.warnings == []
    steps = metric_steps(run)
    assert steps[:6] == list(range(1, 7)) and steps == sorted(steps)
    last = steps[-1]
    held = {r["step"] for r in eng.of("metric") if r["seq"] == -1}
    assert held, "some records met the full disk (the pipe heard of them at once, as seq -1)"
    assert set(range(1, last + 1)) == set(steps), "and every one was filed later, once there was room"
    old = len(P.RecordDecoder().feed(before[P.METRICS_FILE]))
    assert [r for r in eng.records if r["seq"] >= 0] == result.records[old:], (
        "the file holds all that was filed"
    )
    assert ckpt.read_meta(ckpt.resolve_checkpoint(run))["step"] == last
    done = run_engine("resume", "--run-dir", str(run), "--stop-at", str(last + 2), "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert metric_steps(run)[-2:] == [last + 1, last + 2]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the rlimit test covers root")
def test_read_only_checkpoints_folder_is_an_alert_not_a_crash(runs_root: Path) -> None:
    run = runs_root / "ro"
    done = run_engine("train", "--run-dir", str(run), "--steps", "4", *TINY, "--set", "train.ckpt_every=1000")
    assert done.returncode == 0, done.stderr[-2000:]
    root = ckpt.checkpoints_root(run)
    root.chmod(0o500)
    try:
        done = run_engine("resume", "--run-dir", str(run), "--steps", "8", "--threads", "1")
    finally:
        root.chmod(0o700)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    records = file_records(run).records
    assert any(r["type"] == "alert" and r["kind"] == "disk" for r in records)
    assert metric_steps(run) == list(range(1, 9))
    assert ckpt.read_meta(ckpt.resolve_checkpoint(run))["step"] == 4


def test_a_disk_that_stays_full_never_ends_the_run_and_room_resumes_it(runs_root: Path) -> None:
    """engine.log, the records and the status all meet the limit (the log is full from the first
    line): the run pauses, stays paused as long as the disk stays full, says why in its status, and
    goes on by itself, with no command, once there is room."""
    run = runs_root / "stays-full"
    done = run_engine("train", "--run-dir", str(run), "--steps", "4", *TINY, "--set", "train.ckpt_every=1000")
    assert done.returncode == 0, done.stderr[-2000:]
    room = (run / P.METRICS_FILE).stat().st_size + 4000  # records fill after a few dozen steps
    log = run.parent / f"{run.name}.resume.log"
    log.write_bytes(b"." * (room + 1))  # every print to engine.log fails with EFBIG from the start
    eng = Engine(run, "resume", "--steps", "100000", preexec_fn=_limit_files_to(room))
    try:
        paused = eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused", 120)
        assert "metrics.msgpack" in paused["reason"] and "resumes by itself" in paused["reason"]
        status = wait_until(lambda: (s := P.read_status(run)) and s["state"] == "paused" and s, 30, "status")
        assert status["step"] == paused["step"]
        # Paused for good while the disk stays full: it outlives many probes and keeps its status fresh.
        first = status["updated"]
        wait_until(
            lambda: P.read_status(run)["updated"] > first + 3 * report.ROOM_PROBE_S, 60, "a fresh status"
        )
        assert eng.proc.poll() is None and P.read_status(run)["state"] == "paused"
        assert not [r for r in eng.records if r["type"] == "state" and r["state"] == "crashed"]

        resource.prlimit(eng.pid, resource.RLIMIT_FSIZE, (INF, INF))  # room again, and no command sent
        eng.wait_for(
            lambda r: r["type"] == "metric" and r["step"] >= paused["step"] + 3 and r["seq"] >= 0, 60
        )
        # The status follows the pipe by a flush or a probe (and a checkpoint held for room may be
        # written first): wait for it to say running, not for one moment to.
        wait_until(lambda: P.read_status(run)["state"] == "running", 120, "the status to say running")
        P.send_command(run, "stop")
        assert eng.finish() == 0, eng.tail()
    finally:
        eng.kill()
    assert file_records(run).torn_bytes == 0
