"""A real `python -m engine train` process on a real pipe: records, commands over the control socket,
SIGTERM, --stop-at, and learning on the built-in corpus."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT
from support.engine import Engine
from support.preset import TINY, config

from nexus_core import protocol as P
from nexus_core.config import Config


def test_records_stream_over_the_pipe_and_match_the_file(runs_root: Path) -> None:
    run = runs_root / "piped"
    eng = Engine(
        run,
        "train",
        "--steps",
        "12",
        *TINY,
        "--set",
        "train.eval_every=6",
        "--set",
        "train.sample_every=6",
        "--set",
        "train.ckpt_every=6",
        "--set",
        "train.sample_tokens=8",
    )
    assert eng.finish() == 0, eng.tail()

    kinds = [r["type"] for r in eng.records]
    for kind in ("hello", "metric", "eval", "sample", "ckpt", "state"):
        assert kind in kinds, kind
    hello = eng.records[0]
    assert hello["type"] == "hello" and hello["total_steps"] == 12 and hello["start_step"] == 0
    assert hello["params"] > 0 and hello["config"]["model"]["d_model"] == 32 and hello["pid"] == eng.proc.pid
    assert [r["step"] for r in eng.of("metric")] == list(range(1, 13))
    assert all(math.isfinite(r["loss"]) and r["tok_s"] > 0 and r["mem"] > 0 for r in eng.of("metric"))
    assert [r["step"] for r in eng.of("eval")] == [6, 12]
    assert all(abs(r["val_ppl"] - math.exp(r["val_loss"])) < 1e-6 * r["val_ppl"] for r in eng.of("eval"))
    assert [r["step"] for r in eng.of("sample")] == [6, 12] and not any(
        r["requested"] for r in eng.of("sample")
    )
    assert [r["path"] for r in eng.of("ckpt")] == ["checkpoints/step_000006", "checkpoints/step_000012"]
    states = [r["state"] for r in eng.of("state")]
    assert states[0] == "running" and states[-1] == "finished" and "checkpointing" in states

    on_disk = P.read_records(run / P.METRICS_FILE)
    assert on_disk.torn_bytes == 0
    assert on_disk.records == eng.records, "the pipe and metrics.msgpack carry the same records"
    status = P.read_status(run)
    assert status["state"] == "finished" and status["step"] == 12 and status["total_steps"] == 12
    config = (run / P.CONFIG_FILE).read_text()
    assert "vocab_size = 256" in config and "nan_policy" in config, "every default written out"


def test_commands_pause_resume_generate_ramp_stop(runs_root: Path) -> None:
    run = runs_root / "steered"
    eng = Engine(
        run,
        "train",
        "--steps",
        "100000",
        *TINY,
        "--set",
        "train.eval_every=100000",
        "--set",
        "train.sample_every=0",
        "--set",
        "train.ckpt_every=0",
        "--set",
        "schedule.name=constant",
        "--set",
        "schedule.warmup_steps=0",
    )
    try:
        eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= 3)

        P.send_command(run, "pause")
        paused = eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused")
        time.sleep(1.0)
        eng.pump(0.1)
        assert max(r["step"] for r in eng.of("metric")) == paused["step"], "no steps while paused"
        assert P.read_status(run)["state"] == "paused"

        before = [r["step"] for r in eng.of("metric")]
        P.send_command(run, "generate", prompt="def ", tokens=12, temperature=0.0, top_k=0)
        sample = eng.wait_for(lambda r: r["type"] == "sample" and r["requested"])
        assert sample["prompt"] == "def " and sample["step"] == paused["step"] and len(sample["text"]) > 0
        assert [r["step"] for r in eng.of("metric")] == before, "generating took no training step"

        answer = P.send_command(run, "eval")
        ev = eng.wait_for(lambda r: r["type"] == "eval")
        assert ev["step"] == paused["step"] and ev["val_loss"] == answer["val_loss"]

        P.send_command(run, "resume")
        eng.wait_for(
            lambda r: r["type"] == "state" and r["state"] == "running" and r["step"] == paused["step"]
        )
        eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= paused["step"] + 3)

        lr0 = eng.of("metric")[-1]["lr"]
        answer = P.send_command(run, "ramp", target_lr=lr0 * 10, ramp_steps=10)
        start = answer["step"]
        eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= start + 14)
        lrs = {r["step"]: r["lr"] for r in eng.of("metric")}
        for k in range(11):  # metric step start+1+k used the LR k steps into the ramp
            want = lr0 + (lr0 * 10 - lr0) * k / 10
            assert lrs[start + 1 + k] == pytest.approx(want, rel=1e-9), k
        assert lrs[start + 14] == pytest.approx(lr0 * 10, rel=1e-9), "constant schedule holds the target"

        with pytest.raises(P.ControlError, match="ramp target_lr must be between"):
            P.send_command(run, "ramp", target_lr=-1, ramp_steps=10)

        P.send_command(run, "stop")
        assert eng.finish() == 0, eng.tail()
    finally:
        if eng.proc.poll() is None:
            eng.proc.kill()
    ckpts = eng.of("ckpt")
    last_step = eng.of("metric")[-1]["step"]
    assert ckpts and ckpts[-1]["step"] == last_step
    assert (run / ckpts[-1]["path"] / "meta.json").exists()
    final = eng.of("state")[-1]
    assert final["state"] == "stopped" and final["exit_code"] == 0
    assert not P.control_socket_path(run).exists(), "socket closed on exit"


def test_sigterm_checkpoints_exits_zero_and_is_killed(runs_root: Path) -> None:
    """SIGTERM ends the run `killed` (the reporter's end state for a signal), after the step it was in
    is finished and checkpointed; the process exits 0 (nothing was lost)."""
    run = runs_root / "terminated"
    eng = Engine(run, "train", "--steps", "100000", *TINY, "--set", "train.ckpt_every=0")
    eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= 2)
    eng.proc.send_signal(signal.SIGTERM)
    assert eng.finish(timeout=30) == 0, eng.tail()
    final = eng.of("state")[-1]
    assert final["state"] == "killed" and final["reason"] == "SIGTERM" and final["exit_code"] == 0
    assert P.read_status(run)["state"] == "killed"
    step = eng.of("metric")[-1]["step"]
    assert eng.of("ckpt")[-1]["step"] == step
    assert (run / "checkpoints" / f"step_{step:06d}" / "model.safetensors").exists()


def test_stop_at_trains_part_of_a_longer_schedule(runs_root: Path) -> None:
    run = runs_root / "partial"
    eng = Engine(run, "train", "--steps", "20", "--stop-at", "5", *TINY)
    assert eng.finish() == 0, eng.tail()
    assert eng.records[0]["total_steps"] == 20
    assert [r["step"] for r in eng.of("metric")] == [1, 2, 3, 4, 5]
    assert eng.of("state")[-1]["state"] == "stopped"
    assert (run / "checkpoints" / "step_000005" / "meta.json").exists()


def test_dead_reader_does_not_stop_training(runs_root: Path, python: str, engine_env: dict) -> None:
    run = runs_root / "orphan"
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "engine",
            "train",
            "--run-dir",
            str(run),
            "--metrics-fd",
            str(write_fd),
            "--steps",
            "30",
            *TINY,
        ],
        env=engine_env,
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    os.close(read_fd)  # the dashboard died before the first record
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    steps = [r["step"] for r in P.iter_records(run / P.METRICS_FILE, frozenset({"metric"}))]
    assert steps == list(range(1, 31))


@pytest.mark.slow
def test_tiny_preset_learns_context(runs_root: Path, python: str, engine_env: dict) -> None:
    """Held-out CE well below the unigram entropy means the model uses context, not just byte counts."""
    run = runs_root / "learner"
    t0 = time.monotonic()
    done = subprocess.run(
        [
            python,
            "-m",
            "engine",
            "train",
            "--preset",
            "tiny",
            "--run-dir",
            str(run),
            "--steps",
            "150",
            "--set",
            "train.eval_every=150",
            "--set",
            "train.sample_every=0",
            "--set",
            "train.ckpt_every=0",
            "--set",
            "train.batch_size=8",
        ],
        env=engine_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-2000:]
    records = P.read_records(run / P.METRICS_FILE).records
    entropy = next(r for r in records if r["type"] == "hello")["unigram_entropy"]
    val = [r for r in records if r["type"] == "eval"][-1]["val_loss"]
    print(
        f"tiny preset, 150 steps in {seconds:.0f} s: held-out CE {val:.3f} vs unigram entropy {entropy:.3f}"
    )
    assert val < entropy - 0.5


BLOW_UP = ["--set", "optim.lr=1e30", "--set", "schedule.warmup_steps=0", "--set", "schedule.name=constant"]


def test_nan_pauses_the_run_by_default(runs_root: Path) -> None:
    run = runs_root / "nan-pause"
    eng = Engine(run, "train", "--steps", "50", *TINY, *BLOW_UP, "--set", "train.ckpt_every=0")
    try:
        paused = eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused")
        alert = eng.of("alert")[-1]
        assert alert["kind"] == "nan" and alert["step"] == paused["step"] + 1, "the failed step was not taken"
        assert [r["step"] for r in eng.of("metric")] == list(range(1, paused["step"] + 1))
        P.send_command(run, "stop")
        assert eng.finish() == 0, eng.tail()
    finally:
        if eng.proc.poll() is None:
            eng.proc.kill()
    assert eng.of("state")[-1]["state"] == "stopped"


def test_nan_rollback_reloads_and_halves_the_lr(runs_root: Path) -> None:
    run = runs_root / "nan-rollback"
    eng = Engine(
        run,
        "train",
        "--steps",
        "50",
        *TINY,
        *BLOW_UP,
        "--set",
        "train.ckpt_every=1",
        "--set",
        "train.nan_policy=rollback",
    )
    try:
        eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused", timeout=120)
        P.send_command(run, "stop")
        assert eng.finish() == 0, eng.tail()
    finally:
        if eng.proc.poll() is None:
            eng.proc.kill()
    rollbacks = [r["text"] for r in eng.of("log") if r["text"].startswith("rolled back")]
    assert rollbacks[:2] == [
        "rolled back to step_000001; LR scale now 0.5",
        "rolled back to step_000001; LR scale now 0.25",
    ]
    assert len(rollbacks) == 5, "after 5 rollbacks it pauses for a person"
    assert [r["step"] for r in eng.of("alert") if r["kind"] == "nan"] == [2] * 6, (
        "each retry of step 2 failed"
    )


def _tiny_config(**train: object) -> Config:
    """The test preset on the CPU, with these train.* settings, for a Trainer built in process."""
    return config("train.device=cpu", *(f"train.{k}={v}" for k, v in train.items()), name="inproc")


def test_an_exception_in_the_loop_is_a_failed_state_with_its_message(tmp_path: Path) -> None:
    from engine.trainer import Trainer

    trainer = Trainer(_tiny_config(steps=10), tmp_path / "crash")
    real = trainer.forward

    def fails_on_step_4(x, y, smoothing):  # a fault injected into a real run
        if trainer.step == 3:
            raise RuntimeError("boom in forward")
        return real(x, y, smoothing)

    trainer.forward = fails_on_step_4
    assert trainer.run() == 1
    records = P.read_records(tmp_path / "crash" / P.METRICS_FILE).records
    assert [r["step"] for r in records if r["type"] == "metric"] == [1, 2, 3]
    final = [r for r in records if r["type"] == "state"][-1]
    assert (
        final["state"] == "failed"
        and final["exit_code"] == 1
        and final["reason"] == "RuntimeError: boom in forward"
    )
    assert any(r["type"] == "log" and r["level"] == "error" and "boom" in r["text"] for r in records)
    assert any(r["type"] == "alert" and r["kind"] == "crash" and "boom" in r["text"] for r in records)
    status = P.read_status(tmp_path / "crash")
    assert (
        status["state"] == "failed"
        and status["step"] == 3
        and status["reason"] == "RuntimeError: boom in forward"
    )
    assert not P.control_socket_path(tmp_path / "crash").exists()


def test_failed_checkpoint_is_an_alert_and_training_goes_on(tmp_path: Path) -> None:
    from engine.trainer import Trainer

    run = tmp_path / "nodisk"
    run.mkdir()
    (run / "checkpoints").write_text("a file where the folder should be")
    assert Trainer(_tiny_config(steps=6, ckpt_every=2), run).run() == 0
    records = P.read_records(run / P.METRICS_FILE).records
    assert [r["step"] for r in records if r["type"] == "metric"] == list(range(1, 7))
    assert [r["step"] for r in records if r["type"] == "alert" and r["kind"] == "disk"] == [2, 4, 6, 6], (
        "each periodic checkpoint failed, and the end of the run tried once more"
    )
    assert [r for r in records if r["type"] == "state"][-1]["state"] == "finished"


def test_nan_skip_alerts_the_first_bad_batch_then_at_most_once_per_interval(tmp_path: Path) -> None:
    """A run gone bad for good under nan_policy=skip must not send one alert per step."""
    from engine.trainer import Trainer

    cfg = _tiny_config(steps=25, nan_policy="skip", ckpt_every=0, eval_every=0)
    cfg.optim.lr, cfg.schedule.warmup_steps, cfg.schedule.name = 1e30, 0, "constant"
    trainer = Trainer(cfg, tmp_path / "skip")
    trainer.skips.every = 10
    assert trainer.run() == 0
    records = P.read_records(tmp_path / "skip" / P.METRICS_FILE).records
    metric_steps = {r["step"] for r in records if r["type"] == "metric"}
    skipped = [s for s in range(1, 26) if s not in metric_steps]
    assert len(skipped) >= 15, "the blown-up weights make nearly every step non-finite"
    alerts = [r for r in records if r["type"] == "alert" and r["kind"] == "nan"]
    assert alerts[0]["step"] == skipped[0] and "skipped" not in alerts[0]["text"]
    gaps = [b["step"] - a["step"] for a, b in zip(alerts, alerts[1:], strict=False)]
    assert alerts[1:] and all(g >= 10 for g in gaps), gaps
    assert len(alerts) <= 3 < len(skipped)
    later = [s for s in skipped if alerts[0]["step"] < s <= alerts[1]["step"]]
    assert (
        f"({len(later)} bad batches skipped since the alert at step {alerts[0]['step']}" in alerts[1]["text"]
    )
    assert trainer.skips.total == len(skipped)
    assert [r["step"] for r in records if r["type"] == "eval"] == [25], "eval_every=0: only the final eval"


def test_health_watch_flags_spikes_and_gnorm_escalation() -> None:
    from engine.health import HealthWatch

    watch = HealthWatch(window=30, k=4.0, gnorm_factor=10.0, min_samples=20, cooldown=5)
    for step in range(1, 31):
        assert watch.check(step, 2.0 + 0.01 * (step % 3), 1.0 + 0.1 * (step % 2)) == []
    kinds = [k for k, _ in watch.check(31, 3.0, 50.0)]
    assert kinds == ["spike", "gnorm"]
    assert watch.check(32, 3.0, 50.0) == [], "cooldown: one alert per rough patch"
    assert watch.check(40, 2.0, 1.0) == []


def test_every_new_best_eval_is_checkpointed_as_best(runs_root: Path) -> None:
    """`best` must be the best val loss seen, not the best that happened to fall on a checkpoint step."""
    run = runs_root / "best"
    eng = Engine(
        run,
        "train",
        "--steps",
        "16",
        *TINY,
        "--set",
        "train.eval_every=4",
        "--set",
        "train.sample_every=0",
        "--set",
        "train.ckpt_every=100",
    )
    assert eng.finish() == 0, eng.tail()
    evals = eng.of("eval")
    bests = [r["step"] for r in evals if r["best"]]
    assert bests and bests[0] == 4
    ckpts = {r["step"]: r for r in eng.of("ckpt")}
    assert all(s in ckpts and ckpts[s]["best"] for s in bests), (bests, ckpts)
    best_step = min(evals, key=lambda r: r["val_loss"])["step"]
    assert (run / "checkpoints" / "best").resolve().name == f"step_{best_step:06d}"


def test_save_best_off_checkpoints_only_on_schedule(runs_root: Path) -> None:
    run = runs_root / "nobest"
    eng = Engine(
        run,
        "train",
        "--steps",
        "8",
        *TINY,
        "--set",
        "train.eval_every=4",
        "--set",
        "train.sample_every=0",
        "--set",
        "train.ckpt_every=100",
        "--set",
        "train.save_best=false",
    )
    assert eng.finish() == 0, eng.tail()
    assert [r["step"] for r in eng.of("ckpt")] == [8]  # only the end of the run


def test_deterministic_kernels_switch_on() -> None:
    code = (
        "import os, torch; from engine.device import use_deterministic_kernels; use_deterministic_kernels(); "
        "print(torch.are_deterministic_algorithms_enabled(), os.environ['CUBLAS_WORKSPACE_CONFIG'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", ":4096:8"], out.stderr


def test_a_signal_before_the_first_step_is_a_stop_not_a_kill(tmp_path: Path) -> None:
    """The dashboard stops an engine that is not listening yet (still building) with SIGTERM: the run
    had not trained, so it ends `stopped`, as a reader says of one that died of the signal then."""
    from engine.trainer import Trainer

    trainer = Trainer(_tiny_config(steps=10), tmp_path / "early")
    os.kill(os.getpid(), signal.SIGTERM)  # the trainer's own handler is in (installed before setup)
    assert trainer.run() == 0
    records = P.read_records(tmp_path / "early" / P.METRICS_FILE).records
    assert not [r for r in records if r["type"] == "metric"]
    final = [r for r in records if r["type"] == "state"][-1]
    assert final["state"] == "stopped" and final["reason"] == "SIGTERM before training started"
