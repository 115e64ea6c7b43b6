"""`nexus check RUN_DIR` (nexus_core/check.py): every folder Nexus writes passes (the engine, live with
every command and finished; the reporter, live and finished; the TensorBoard writer; a wandb-style
script), the live ones' control socket included (pause and resume are answered and recorded, checkpoint and eval bring their
records, stop ends it); a planted folder gets a few lines naming what is wrong, never a traceback.
(The HF and Lightning folders are checked in test_ramp_frameworks.py, the C writer's in
test_c_writer.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest
from support import ROOT
from support.engine import engine_env, run_engine_ok
from support.preset import TINY
from support.reporter import Script
from support.wait import wait_until

import nexus
from nexus_core import protocol as P
from nexus_core.check import check


def _nexus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nexus_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_an_engine_run_passes(runs_root: Path) -> None:
    run = runs_root / "eng"
    run_engine_ok("train", "--run-dir", str(run), "--steps", "6", *TINY, "--set", "train.ckpt_every=3")
    report = check(run)
    assert report.ok, report.summary()
    done = _nexus("check", str(run))
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1].startswith("ok: eng"), done.stdout


def test_a_live_engine_run_passes_with_every_command(runs_root: Path) -> None:
    run = runs_root / "live"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "train", "--run-dir", str(run), "--steps", "100000", *TINY],
        env=engine_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (P.read_status(run) or {}).get("state") == P.RUNNING, 120, "the engine training")
        report = check(run, steer=True, stop=True)
        assert report.ok and "control socket" in report.checked, report.summary()
        assert proc.wait(120) == 0
    finally:
        proc.kill()
        proc.wait(10)
    assert (report := check(run)).ok and report.lines == [], report.summary()


def test_the_tensorboard_writer_and_a_wandb_style_script_pass(runs_root: Path) -> None:
    import torch

    from nexus.integrations.tensorboard import SummaryWriter

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with SummaryWriter(str(runs_root / "tb")) as writer:
        writer.watch(opt)
        for step in range(1, 6):
            opt.step()
            writer.add_scalar("train/loss", 1.0 / step, step)
            writer.add_text("notes", f"at {step}", step)
    assert (report := check(runs_root / "tb")).ok and report.lines == [], report.summary()

    wandb = Script(runs_root / "wb", "wandb")
    assert wandb.wait() == 0, wandb.output()
    assert (report := check(runs_root / "wb")).ok and report.lines == [], report.summary()


def test_a_reporter_run_passes_live_and_finished(runs_root: Path) -> None:
    run = nexus.init(root=runs_root, name="rep", config={"lr": 0.1}, total_steps=100_000)
    run.on_checkpoint(lambda: str(run.dir / "ck.bin"))
    run.on_eval(lambda: 0.5)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set() and not run.should_stop:
            run.log({"loss": 1.0, "lr": 0.1, "tokens": 64})
            run.step_end()
            time.sleep(0.01)
        run.finish()  # a script ends its loop at should_stop, then finishes: `stopped`

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    wait_until(
        lambda: (run.dir / "metrics.msgpack").stat().st_size > 0 and P.read_status(run.dir),
        60,
        "the first records",
    )
    try:
        report = check(run.dir, steer=True, stop=True)
        assert report.ok, report.summary()
        assert "control socket" in report.checked
        worker.join(30)
        assert run.should_stop
    finally:
        stop.set()
        worker.join(30)
    report = check(run.dir)
    assert report.ok and report.lines == [], report.summary()


def _pack(*records: dict) -> bytes:
    return b"".join(msgpack.packb(r, use_bin_type=True) for r in records)


def test_a_planted_folder_gets_a_line_for_each_thing_wrong(runs_root: Path) -> None:
    bad = runs_root / "bad"
    bad.mkdir()
    now = time.time()
    data = (
        _pack(
            {"type": "metric", "seq": 0, "time": now, "step": 1},  # not a hello first
            {"seq": 1, "type": "hello", "time": now, "protocol": 1},  # type not first, no pid
            {"type": "metric", "seq": 5, "time": now, "step": 2, "loss": True},  # seq skips, a bool loss
            {"type": "state", "seq": 3, "time": "now", "state": "sleeping"},  # time a string, bad state
            {"type": "hello", "seq": 4, "time": now, "protocol": 1, "pid": 1, "commands": ["pause", "fly"]},
        )
        + b"\xc1\xc1garbage"
    )
    (bad / "metrics.msgpack").write_bytes(data)
    (bad / "status").write_text(json.dumps({"state": "running", "pid": "12"}))
    report = check(bad)
    text = "\n".join(report.summary())
    assert not report.ok
    for expected in (
        "record 0 (byte 0): the first record must be a hello, not 'metric'",
        "record 1 (byte",
        "its first key must be 'type'",
        "'pid' is required",
        "seq is 5, must be 2",
        "'loss' must be a number, not bool (booleans are never numbers)",
        "'time' must be a number",
        "state 'sleeping' is not one of",
        "hello lists commands the protocol does not have: fly",
        "not a msgpack record within the limits",
        "status: 'pid' must be int, not str",
        "a live run's status needs 'updated'",
    ):
        assert expected in text, (expected, text)
    assert len(report.summary()) < 20, text

    done = _nexus("check", str(bad), str(runs_root / "missing"))
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "FAILED: bad" in done.stdout and "FAILED: missing" in done.stdout and "No such file" in done.stdout


@pytest.mark.parametrize("plant", ["dir", "fifo", "empty", "huge-map"])
def test_hostile_files_are_named_not_followed(runs_root: Path, plant: str) -> None:
    run = runs_root / plant
    run.mkdir()
    target = run / "metrics.msgpack"
    if plant == "dir":
        target.mkdir()
    elif plant == "fifo":
        os.mkfifo(target)
    elif plant == "empty":
        target.write_bytes(b"")
    else:
        target.write_bytes(b"\xdf\xff\xff\xff\xff")  # a map header claiming 4 billion entries
    report = check(run)
    assert not report.ok and 1 <= len(report.lines) <= 3, report.summary()
    assert any("metrics.msgpack" in line for line in report.lines), report.summary()


def test_a_hostile_published_schedule_is_named_and_the_preview_says_unknown(runs_root: Path) -> None:
    from nexus_core.observed_preview import observed_preview

    run = runs_root / "sched"
    run.mkdir()
    now = time.time()
    schedule = {
        "source": "evil\x1b[31m",
        "step": [1, 2, "x", 4],
        "lr": [float("nan"), float("inf"), 1.0, True],
    }
    (run / "metrics.msgpack").write_bytes(
        _pack(
            {"type": "hello", "seq": 0, "time": now, "protocol": 1, "pid": 1, "lr_schedule": schedule},
            {"type": "metric", "seq": 1, "time": now, "step": 1, "lr": 0.01},
            {"type": "metric", "seq": 2, "time": now, "step": 2, "lr": 0.01},
        )
    )
    report = check(run)
    assert any("lr_schedule 'step' must be ints, increasing" in line for line in report.lines), (
        report.summary()
    )
    steps, lrs, note = observed_preview(run, 0.02, 4, 20)
    assert "assumes the LR stays at the target" in note and lrs[-1] == 0.02 and steps[-1] == 20


def test_the_wandb_surfaces_folders_pass(tmp_path: Path) -> None:
    """Every wandb call people use (text, tables, histograms, media, artifacts) leaves folders that
    keep the protocol."""
    env = {k: v for k, v in os.environ.items() if k != P.RUN_DIR_ENV}
    script = Path(__file__).parents[1] / "support" / "scripts" / "wandb_calls.py"
    done = subprocess.run(
        [sys.executable, str(script), "nexus", str(tmp_path)],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    folders = sorted(p.parent for p in tmp_path.rglob("metrics.msgpack"))
    assert folders, done.stderr[-2000:]
    for folder in folders:
        report = check(folder)
        assert report.ok and report.lines == [], report.summary()
