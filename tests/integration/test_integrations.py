"""The adapters in nexus/integrations with the real libraries (tiny models built from a config, no
downloads), each in a subprocess steered through the real control socket: records stream, pause holds
the loop, checkpoint and eval act, a ramp changes the optimizer's LR, stop ends it as `stopped`."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT
from support.reporter import SCRIPTS, Script, command

from nexus_core import protocol as P

LOOPS = SCRIPTS / "adapter_loops.py"


def _metrics(script: Script) -> list[dict]:
    return script.records(P.METRIC)


def _wait_path(path: Path, script: Script, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline and script.proc.poll() is None, (
            f"{path} never appeared:\n{script.output()}"
        )
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
    """The optimizer's LR goes to `target` (the records' lr is what its steps used), and the LR the
    framework logs itself (HF's learning_rate, kept as lr_schedule) is the same ramped LR."""
    reply = command(run_dir, "ramp", target_lr=target, ramp_steps=3)
    assert f"{target:.4g}" in reply["text"]
    got = script.wait_for(lambda r: r["type"] == P.METRIC and math.isclose(r["lr"], target, rel_tol=1e-6))
    lrs = [m["lr"] for m in _metrics(script) if m["step"] <= got["step"]][-4:]
    assert lrs[0] == pytest.approx(start) and start < lrs[1] < lrs[2] < target, lrs  # linear, over 3 steps
    if scheduled:
        assert math.isclose(got["lr_schedule"], target, rel_tol=1e-6)


def _stop(script: Script, run_dir: Path) -> None:
    assert command(run_dir, "stop")["ok"]
    end = script.wait_for(lambda r: r["type"] == P.STATE and r["state"] in P.FINAL_STATES)
    assert end["state"] == P.STOPPED and end["exit_code"] == 0, script.output()
    assert script.wait() == 0, script.output()
    assert (run_dir / "loop-ended").is_file()


def test_importing_nexus_imports_no_framework() -> None:
    code = (
        "import sys, nexus, nexus.integrations, nexus.integrations.tensorboard; "
        "print(sorted(m for m in ('torch', 'transformers', 'lightning', 'tensorboard') if m in sys.modules))"
    )
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
        assert (
            first["loss"] > 0 and first["gnorm"] > 0 and math.isclose(first["lr"], 1e-3) and "epoch" in first
        )

        sample = _pause_holds(script, run_dir, "generate", prompt="the ", tokens=5, temperature=0.0, top_k=0)
        assert sample["text"].startswith("the ") and sample["requested"] is True

        assert command(run_dir, "checkpoint")["ok"]
        ck = script.wait_for(lambda r: r["type"] == P.CKPT)
        assert (
            ck["path"] == f"hf/checkpoint-{ck['step']}"
        )  # the Trainer's folder is named by the record's step
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
        assert ck["path"] == f"checkpoints/step-{ck['step']}.ckpt" and (run_dir / ck["path"]).is_file()
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


def test_tensorboard_summary_writer(runs_root: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = runs_root / "tb"
    script = Script(run_dir, "tb", LOOPS)
    try:
        hello = script.wait_for(
            lambda r: r["type"] == P.HELLO and "ramp" in r.get("commands", ()) and r["config"]
        )
        assert hello["config"] == {"lr": 0.05, "batch": 16}
        first = script.wait_for(lambda r: r["type"] == P.METRIC and r["step"] >= 3)
        # add_scalar's tag and add_scalars' main/sub keys, one record per global_step
        assert first["loss"] > 0 and first["opt/lr"] == 0.05 and first["opt/batch"] == 16
        assert [m["step"] for m in _metrics(script)][:3] == [1, 2, 3]
        sample = script.wait_for(lambda r: r["type"] == P.SAMPLE)
        # add_text lands on its own global_step (the step whose scalars are still pending), not one early
        assert sample["prompt"] == "samples/greedy" and sample["text"] == f"text at {sample['step']}"
        note = script.wait_for(lambda r: r["type"] == P.TEXT)
        assert note["key"] == "notes" and note["text"] == f"note at {note['step']}"
        hist = script.wait_for(lambda r: r["type"] == P.HISTOGRAM)
        assert hist["key"] == "weights" and sum(hist["counts"]) == 8 and hist["step"] >= 1

        ev = _pause_holds(script, run_dir, "eval")  # held inside the add_scalar that starts a new step
        assert ev["val_loss"] == 0.5
        assert command(run_dir, "checkpoint")["ok"]
        assert script.wait_for(lambda r: r["type"] == P.CKPT)["path"] == "model.pt"
        assert (run_dir / "model.pt").is_file()

        _ramp(script, run_dir, 0.05, 0.2, scheduled=False)
        _stop(script, run_dir)
    finally:
        script.kill()
    # tensorboard=True: the same scalars in real TensorBoard event files, read by TensorBoard's reader
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"] and len(events.Scalars("train/loss")) >= 3
    assert "weights" in events.Tags()["histograms"]


def _hello(run_dir: Path) -> dict:
    return [r.to_dict() for r in P.read_records(run_dir / P.METRICS_FILE).records if r.type == P.HELLO][-1]


def _end(run_dir: Path) -> dict:
    return [r.to_dict() for r in P.read_records(run_dir / P.METRICS_FILE).records if r.type == P.STATE][-1]


def test_trainer_without_tokenizer_or_eval_set_refuses_those_keys(
    runs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tokenizer: `g` is refused with the reason (the dashboard greys it); no eval set: `e` too,
    since the Trainer would raise mid-run. A run that reaches max_steps ends finished."""
    pytest.importorskip("transformers")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    from hf_trainer import TEXT, Chunks, char_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from nexus.integrations.huggingface import NexusCallback

    ids = char_tokenizer(TEXT)(TEXT)["input_ids"]
    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=2, n_positions=64))
    run_dir = runs_root / "hf-plain"
    args = TrainingArguments(
        output_dir=str(runs_root / "out"),
        max_steps=3,
        per_device_train_batch_size=2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(
        model=model, args=args, train_dataset=Chunks(ids[:200]), callbacks=[NexusCallback(run_dir=run_dir)]
    ).train()
    hello = _hello(run_dir)
    assert "generate" not in hello["commands"] and "eval" not in hello["commands"]
    assert {"checkpoint", "ramp", "stop"} <= set(hello["commands"]) and hello["model"] == "gpt2"
    assert _end(run_dir)["state"] == P.FINISHED
    assert [
        r["step"]
        for r in (x.to_dict() for x in P.read_records(run_dir / P.METRICS_FILE).records)
        if r["type"] == P.METRIC
    ] == [1, 2, 3]  # the end-of-training summary is not a step
    assert "train_runtime" in (run_dir / "summary.json").read_text()


def test_summary_writer_alone(runs_root: Path) -> None:
    """Without tensorboard=True: no event files, a value add_image cannot keep said once in the log;
    steps without global_step join the last step; an exception ends the run failed with its line."""
    from nexus.integrations.tensorboard import SummaryWriter

    with pytest.raises(RuntimeError), SummaryWriter(str(runs_root / "tb-alone")) as writer:
        writer.add_scalar("a", 1.0, 5)
        writer.add_scalar("b", 2.0)  # TensorBoard would put it at step 0; here: the last global_step
        writer.add_image("img", object(), 5)
        writer.add_image("img", object(), 6)
        writer.add_scalars("x", {"y": 3, "z": 4}, 6)
        writer.flush()
        raise RuntimeError("bad batch")
    run_dir = runs_root / "tb-alone"
    records = [r.to_dict() for r in P.read_records(run_dir / P.METRICS_FILE).records]
    metrics = [r for r in records if r["type"] == P.METRIC]
    assert [(m["step"], m.get("a"), m.get("b"), m.get("x/y")) for m in metrics] == [
        (5, 1.0, 2.0, None),
        (6, None, None, 3),
    ]
    assert len([r for r in records if r["type"] == P.LOG and "add_image" in r["text"]]) == 1
    assert _end(run_dir)["state"] == P.FAILED and "bad batch" in _end(run_dir)["reason"]
    assert not list(run_dir.glob("events.out.tfevents*"))


@pytest.mark.parametrize("example", ["hf_trainer.py", "lightning_module.py"])
def test_examples_run_to_the_end(runs_root: Path, example: str) -> None:
    pytest.importorskip("transformers" if example.startswith("hf") else "lightning")
    run_dir = runs_root / example.removesuffix(".py")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example), "--steps", "5"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=runs_root,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", P.RUN_DIR_ENV: str(run_dir)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    end = _end(run_dir)
    assert end["state"] == P.FINISHED and end["step"] == 5
    assert len([r for r in P.read_records(run_dir / P.METRICS_FILE).records if r.type == P.METRIC]) == 5


def test_lightning_failure_ends_the_run_failed_with_its_reason(
    runs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lightning")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import lightning.pytorch as pl
    from lightning_module import CHARS, CharLSTM, loader

    from nexus.integrations.lightning import NexusCallback, NexusLogger

    class Breaks(CharLSTM):
        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                raise ValueError("bad batch at 2")
            return super().training_step(batch, batch_idx)

    run_dir = runs_root / "pl-fails"
    trainer = pl.Trainer(
        max_steps=10,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=NexusLogger(run_dir=run_dir),
        callbacks=[NexusCallback()],
    )
    with pytest.raises(ValueError):
        trainer.fit(Breaks(len(CHARS)), loader())
    end = _end(run_dir)
    assert end["state"] == P.FAILED and "bad batch at 2" in end["reason"] and end["step"] == 2
    assert "eval" not in _hello(run_dir)["commands"]  # no val_dataloader: no val loop for `e` to run
