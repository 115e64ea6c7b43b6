"""The adapters in nexus/integrations with the real libraries (tiny models built from a config, no
downloads), each in a subprocess steered through the real control socket: records stream, pause holds
the loop, checkpoint and eval act, a ramp changes the optimizer's LR, stop ends it as `stopped`."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reporter_helpers import ROOT, Script, command

from nexus_core import protocol as P

LOOPS = ROOT / "tests" / "scripts" / "adapter_loops.py"


def _metrics(script: Script) -> list[dict]:
    return script.records(P.METRIC)


def _wait_path(path: Path, script: Script, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline and script.proc.poll() is None, f"{path} never appeared:\n{script.output()}"
        time.sleep(0.05)


def _pause_holds(script: Script, run_dir: Path, act: str, **args) -> dict:
    """Pause; while paused the run still answers `act` (its record arrives) but files no step; resume
    and a later step comes. Returns the record `act` produced."""
    assert command(run_dir, "pause")["ok"]
    paused = script.wait_for(lambda r: r["type"] == P.STATE and r["state"] == P.PAUSED)
    held = len(_metrics(script))
    assert command(run_dir, act, **args)["ok"]
    kind = {"generate": P.SAMPLE, "checkpoint": P.CKPT, "eval": P.EVAL}[act]
    done = script.wait_for(lambda r: r["type"] == kind)
    assert len(_metrics(script)) == held and P.read_status(run_dir)["state"] == P.PAUSED
    assert command(run_dir, "resume")["ok"]
    script.wait_for(lambda r: r["type"] == P.STATE and r["state"] == P.RUNNING and r["seq"] > paused["seq"])
    script.wait_for(lambda r: r["type"] == P.METRIC and r["step"] > paused["step"] + 1)
    return done


def _ramp(script: Script, run_dir: Path, start: float, target: float, scheduled: bool = True) -> None:
    """The optimizer's LR goes to `target` (the records' lr is what its steps used) while the
    framework's scheduler keeps its own value (lr_schedule; not in Lightning, whose training_step
    reads the group's LR inside optimizer.step(), where the ramp's value is)."""
    reply = command(run_dir, "ramp", target_lr=target, ramp_steps=3)
    assert f"{target:.4g}" in reply["text"]
    got = script.wait_for(lambda r: r["type"] == P.METRIC and math.isclose(r["lr"], target, rel_tol=1e-6))
    lrs = [m["lr"] for m in _metrics(script) if m["step"] <= got["step"]][-4:]
    assert lrs[0] == pytest.approx(start) and start < lrs[1] < lrs[2] < target, lrs  # linear, over 3 steps
    if scheduled:
        assert math.isclose(got["lr_schedule"], start, rel_tol=1e-6)


def _stop(script: Script, run_dir: Path) -> None:
    assert command(run_dir, "stop")["ok"]
    end = script.wait_for(lambda r: r["type"] == P.STATE and r["state"] in P.FINAL_STATES)
    assert end["state"] == P.STOPPED and end["exit_code"] == 0, script.output()
    assert script.wait() == 0, script.output()
    assert (run_dir / "loop-ended").is_file()


def test_importing_nexus_imports_no_framework() -> None:
    code = ("import sys, nexus, nexus.integrations; "
            "print(sorted(m for m in ('torch', 'transformers', 'lightning', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_hugging_face_trainer(runs_root: Path) -> None:
    pytest.importorskip("transformers")
    run_dir = runs_root / "hf"
    script = Script(run_dir, "hf", LOOPS)
    try:
        hello = script.wait_for(lambda r: r["type"] == P.HELLO and "ramp" in r.get("commands", ()))
        assert {"checkpoint", "eval", "generate", "stop", "pause"} <= set(hello["commands"])
        assert hello["total_steps"] == 100_000 and hello["config"]["model"]["hidden_size"] == 32
        first = script.wait_for(lambda r: r["type"] == P.METRIC and r["step"] >= 3)
        assert first["loss"] > 0 and first["gnorm"] > 0 and math.isclose(first["lr"], 1e-3) and "epoch" in first

        sample = _pause_holds(script, run_dir, "generate", prompt="the ", tokens=5, temperature=0.0, top_k=0)
        assert sample["text"].startswith("the ") and sample["requested"] is True

        assert command(run_dir, "checkpoint")["ok"]
        ck = script.wait_for(lambda r: r["type"] == P.CKPT)
        assert ck["path"].startswith("hf/checkpoint-")
        _wait_path(run_dir / ck["path"] / "trainer_state.json", script)

        assert command(run_dir, "eval")["ok"]
        ev = script.wait_for(lambda r: r["type"] == P.EVAL)
        assert ev["val_loss"] > 0 and ev["step"] > 0

        _ramp(script, run_dir, 1e-3, 0.02)
        _stop(script, run_dir)
    finally:
        script.kill()


def test_lightning_fit(runs_root: Path) -> None:
    pytest.importorskip("lightning")
    run_dir = runs_root / "pl"
    script = Script(run_dir, "lightning", LOOPS)
    try:
        hello = script.wait_for(lambda r: r["type"] == P.HELLO and "ramp" in r.get("commands", ()))
        assert {"checkpoint", "eval", "generate", "stop", "pause"} <= set(hello["commands"])
        assert hello["config"]["hidden"] == 32 and hello["params"] > 0
        first = script.wait_for(lambda r: r["type"] == P.METRIC and r["step"] >= 3)
        assert first["loss"] > 0 and math.isclose(first["lr"], 3e-3, rel_tol=1e-6)
        assert [m["step"] for m in _metrics(script)][:3] == [1, 2, 3]

        # a checkpoint taken while paused: the loop is held, save_checkpoint still runs
        ck = _pause_holds(script, run_dir, "checkpoint")
        assert ck["path"].startswith("checkpoints/step-") and (run_dir / ck["path"]).is_file()
        assert command(run_dir, "generate", prompt="the ", tokens=6, temperature=0.0, top_k=0)["ok"]
        sample = script.wait_for(lambda r: r["type"] == P.SAMPLE)
        assert sample["text"].startswith("the ") and len(sample["text"]) == 10

        assert command(run_dir, "eval")["ok"]  # validation is otherwise never due (every 10,000 epochs)
        ev = script.wait_for(lambda r: r["type"] == P.EVAL)
        assert ev["val_loss"] > 0 and ev["step"] > ck["step"]

        _ramp(script, run_dir, 3e-3, 0.02, scheduled=False)
        _stop(script, run_dir)
    finally:
        script.kill()
