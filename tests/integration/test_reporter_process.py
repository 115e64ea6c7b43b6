"""The reporter in a real script (a tiny torch model in a subprocess), steered through the real
control socket, and its end states as every reader shows them: the records, `nexus runs`, the
dashboard's store."""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path

import pytest
from support import ROOT
from support.reporter import Script, command, nexus_runs

from nexus_core import protocol as P
from nexus_core.state import Exited
from nexus_tui.history.store import MetricStore
from nexus_tui.live.engine_io import exit_code_of


def _metric_steps(script: Script) -> list[int]:
    return [r["step"] for r in script.records(P.METRIC)]


def test_controls_of_a_plain_loop(runs_root: Path) -> None:
    run_dir = runs_root / "steered"
    script = Script(run_dir, "steer")
    try:
        script.wait_for(lambda r: r["type"] == P.HELLO and "ramp" in r.get("commands", ()))
        hello = [r for r in script.records(P.HELLO)][-1]
        assert {"pause", "resume", "stop", "checkpoint", "eval", "generate", "ramp"} <= set(hello["commands"])
        assert hello["source"] == "reporter" and hello["config"]["batch"] == 16 and hello["params"] == 9
        first = script.wait_for(lambda r: r["type"] == P.METRIC and r["step"] >= 3)
        assert isinstance(first["loss"], float) and first["train/tokens_seen"] > 0 and first["step_s"] > 0
        assert math.isclose(first["lr"], 0.05) and math.isclose(first["used_lr"], 0.05, rel_tol=1e-4)

        # pause holds the loop: while paused it still answers (an eval arrives), but takes no step
        assert command(run_dir, "pause")["ok"]
        paused = script.wait_for(lambda r: r["type"] == P.STATE and r["state"] == P.PAUSED)
        held = len(_metric_steps(script))
        assert command(run_dir, "eval")["ok"]
        ev = script.wait_for(lambda r: r["type"] == P.EVAL and "val/acc" in r)
        assert ev["val_loss"] == 0.5 and ev["val/acc"] == 0.75 and ev["step"] == paused["step"]
        assert len(_metric_steps(script)) == held
        assert P.read_status(run_dir)["state"] == P.PAUSED
        assert command(run_dir, "resume")["ok"]
        script.wait_for(
            lambda r: r["type"] == P.STATE and r["state"] == P.RUNNING and r["seq"] > paused["seq"]
        )
        script.wait_for(lambda r: r["type"] == P.METRIC and r["step"] > paused["step"])

        # checkpoint and generate call the script's handlers; their results come back as records
        assert command(run_dir, "checkpoint")["ok"]
        ck = script.wait_for(lambda r: r["type"] == P.CKPT)
        assert ck["path"].startswith("ckpt-") and (run_dir / ck["path"]).is_file()
        assert command(run_dir, "generate", prompt="hi", tokens=7, temperature=0.5, top_k=3)["ok"]
        sample = script.wait_for(lambda r: r["type"] == P.SAMPLE)
        assert sample["text"] == "hi|7|0.5|3" and sample["requested"] is True

        # a ramp: 0.05 -> 0.25 over 4 optimizer steps, then the scheduler's (constant) shape at 0.25;
        # used_lr is what SGD really applied, measured from the weights by the script itself
        reply = command(run_dir, "ramp", target_lr=0.25, ramp_steps=4)
        assert "0.25" in reply["text"]
        script.wait_for(
            lambda r: (
                r["type"] == P.METRIC
                and math.isclose(r["lr"], 0.25)
                and r["step"] > 0
                and len([m for m in script.records(P.METRIC) if math.isclose(m["lr"], 0.25)]) >= 3
            )
        )
        lrs = [(m["lr"], m["used_lr"]) for m in script.records(P.METRIC)]
        start = next(i for i, (lr, _) in enumerate(lrs) if not math.isclose(lr, 0.05))
        ramp = [lr for lr, _ in lrs[start : start + 5]]
        assert ramp == pytest.approx([0.1, 0.15, 0.2, 0.25, 0.25])
        for lr, used in lrs:
            if math.isfinite(used):
                assert used == pytest.approx(lr, rel=1e-3)

        # stop: should_stop ends the loop, and the run says stopped
        assert command(run_dir, "stop")["ok"]
        end = script.wait_for(lambda r: r["type"] == P.STATE and r["state"] in P.FINAL_STATES)
        assert end["state"] == P.STOPPED and end["exit_code"] == 0
        assert script.wait() == 0
        assert (run_dir / "loop-ended").is_file()
        assert nexus_runs(runs_root)["steered"][1] == "stopped"
        with pytest.raises(P.ControlError):
            command(run_dir, "pause")  # nobody listens once it ended
    finally:
        script.kill()


def _final(script: Script) -> dict | None:
    ends = [r for r in script.records(P.STATE) if r["state"] in P.FINAL_STATES]
    return ends[-1] if ends else None


def test_end_states_failed_killed_crashed_finished(runs_root: Path) -> None:
    scripts = {
        name: Script(runs_root / name, mode)
        for name, mode in (
            ("failed", "fail"),
            ("termed", "forever"),
            ("interrupted", "forever"),
            ("sigkilled", "forever"),
            ("wandb", "wandb"),
        )
    }
    try:
        for name, sig in (
            ("termed", signal.SIGTERM),
            ("interrupted", signal.SIGINT),
            ("sigkilled", signal.SIGKILL),
        ):
            scripts[name].wait_for(lambda r: r["type"] == P.METRIC and r["step"] >= 3)
            scripts[name].proc.send_signal(sig)
        codes = {name: s.wait() for name, s in scripts.items()}
    finally:
        for s in scripts.values():
            s.kill()
    assert codes == {
        "failed": 1,
        "termed": -signal.SIGTERM,
        "interrupted": -signal.SIGINT,
        "sigkilled": -signal.SIGKILL,
        "wandb": 0,
    }

    failed = _final(scripts["failed"])
    assert failed["state"] == P.FAILED and failed["exit_code"] == 1
    assert failed["reason"] == "ValueError: bad batch shape at step 5" and failed["step"] == 5
    assert any(a["kind"] == "crash" for a in scripts["failed"].records(P.ALERT))
    assert _final(scripts["termed"])["state"] == P.KILLED and _final(scripts["termed"])["reason"] == "SIGTERM"
    assert _final(scripts["interrupted"])["state"] == P.KILLED
    assert _final(scripts["sigkilled"]) is None  # nothing could be written: readers call it crashed
    wandb = _final(scripts["wandb"])
    assert wandb["state"] == P.FINISHED and wandb["step"] == 30
    metric = scripts["wandb"].records(P.METRIC)[-1]
    assert metric["loss"] == pytest.approx(1 / 30) and "train/loss" not in metric
    assert scripts["wandb"].records(P.EVAL)[-1]["val/acc"] == pytest.approx(1.0)

    rows = nexus_runs(runs_root)
    assert {n: r[1] for n, r in rows.items()} == {
        "failed": "failed",
        "termed": "killed",
        "interrupted": "killed",
        "sigkilled": "crashed",
        "wandb": "finished",
    }

    # the dashboard's store, fed the files and then told each process ended, agrees
    store = MetricStore()
    for name, s in scripts.items():
        store.ingest(name, s.run_dir, s.records())
        store.apply_event(name, Exited(exit_code_of(s.run_dir)))
    states = {r.name: r.state for r in store.runs()}
    assert states == {
        "failed": "failed",
        "termed": "killed",
        "interrupted": "killed",
        "sigkilled": "crashed",
        "wandb": "finished",
    }
    assert store.get("failed").reason == "ValueError: bad batch shape at step 5"


FULL_DISK_SCRIPT = """
import pathlib, sys, time
import nexus
go, waiting = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
run = nexus.init(total_steps=300)
for step in range(1, 301):
    run.log({"loss": 1.0 / step, "custom/x": float(step)}, step=step)
    run.step_end()
    if step == 200:
        waiting.touch()
        while not go.exists():
            time.sleep(0.05)
run.finish()
"""


def test_a_full_disk_holds_a_scripts_records_until_there_is_room(tmp_path: Path) -> None:
    """The writer every run folder is written by (the engine's too) loses nothing on a full disk: a
    script under a real file-size limit (RLIMIT_FSIZE) fills metrics.msgpack, its later records wait
    in memory in order, and once the limit is raised they are all filed, before anything newer."""
    import os
    import resource
    import subprocess
    import sys

    run_dir, go, waiting = tmp_path / "full", tmp_path / "go", tmp_path / "waiting"
    room = 6000  # the hello and a few dozen metric records
    env = {**os.environ, "PYTHONPATH": str(ROOT), P.RUN_DIR_ENV: str(run_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(go), str(waiting)],
        env=env,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY)),
    )
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(line.decode() for line in proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not waiting.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting.exists(), "the script did not reach step 200"
        # The writer thread files behind the loop: wait until it has met the limit and said so.
        while (
            "records wait in memory until there is room" not in "".join(said) and time.monotonic() < deadline
        ):
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert "records wait in memory until there is room" in "".join(said), said
        held = P.read_records(run_dir / P.METRICS_FILE)
        filed = [r.step for r in held.records if r.type == P.METRIC]
        assert held.torn_bytes == 0 and (run_dir / P.METRICS_FILE).stat().st_size <= room
        assert filed and filed[-1] < 200, "the limit holds the file below step 200's records"
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        go.touch()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
    result = P.read_records(run_dir / P.METRICS_FILE)
    assert result.torn_bytes == 0 and result.warnings == []
    metrics = [r for r in result.records if r.type == P.METRIC]
    assert [m.step for m in metrics] == list(range(1, 301)), "every step filed once, in order"
    assert [m.extra["custom/x"] for m in metrics] == [float(s) for s in range(1, 301)]
    assert [r.seq for r in result.records] == list(range(len(result.records)))
    assert result.records[-1].type == P.STATE and result.records[-1].state == P.FINISHED
