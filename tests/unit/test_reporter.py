"""The reporter in this process (LR ramps: test_lr_ramp.py): what log() accepts and
where keys go, the run folder it picks, config changes, resume, a full queue, refused commands, and
tensors read off the training thread."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nexus
from nexus.values import route
from nexus_core import protocol as P


def _records(run_dir: Path, kind: str | None = None) -> list[dict]:
    return [
        r.to_dict()
        for r in P.read_records(run_dir / P.METRICS_FILE).records
        if kind is None or r.type == kind
    ]


def test_keys_go_to_standard_names_or_keep_their_own() -> None:
    metric, evals = route(
        {
            "train/loss": 1.0,
            "learning_rate": 0.1,
            "train/acc": 0.5,
            "val/loss": 2.0,
            "val/acc": 0.4,
            "eval_bleu": 9.0,
            "step": 3,
            "loss": 7.0,
        }
    )
    assert metric == {"train/loss": 1.0, "lr": 0.1, "train/acc": 0.5, "user/step": 3, "loss": 7.0}
    assert evals == {"val_loss": 2.0, "val/acc": 0.4, "eval_bleu": 9.0}


def test_log_takes_numbers_numpy_tensors_and_nested_dicts(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="values", config={"hidden": 64}, total_steps=3)
    run.log(
        {
            "loss": torch.tensor(2.5),
            "np": np.float32(1.5),
            "n": np.int64(7),
            "flag": True,
            "text": "x",
            "vec": torch.ones(3),
            "train": {"acc": 0.25},
        }
    )
    run.log({"loss": 2.0}, step=5)
    run.log({"val/loss": 3.0}, step=5)
    run.finish()
    metrics = _records(run.dir, P.METRIC)
    assert (
        metrics[0]["step"] == 1
        and metrics[0]["loss"] == 2.5
        and metrics[0]["np"] == 1.5
        and metrics[0]["n"] == 7
    )
    assert (
        metrics[0]["train/acc"] == 0.25 and metrics[0]["flag"] == 1 and not {"text", "vec"} & set(metrics[0])
    )
    assert [m["step"] for m in metrics] == [1, 5] and _records(run.dir, P.EVAL)[0]["val_loss"] == 3.0
    # wandb keeps text and a many-element tensor too: as a text record and a histogram at their step
    assert [(t["key"], t["text"], t["step"]) for t in _records(run.dir, P.TEXT)] == [("text", "x", 1)]
    hist = _records(run.dir, P.HISTOGRAM)[0]
    assert hist["key"] == "vec" and hist["step"] == 1 and sum(hist["counts"]) == 3
    assert _records(run.dir, P.STATE)[-1]["state"] == P.FINISHED
    assert nexus.run is None


def test_tensors_are_never_read_on_the_training_thread(tmp_path: Path) -> None:
    calls: list[tuple[str, bool]] = []

    class Spy(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            calls.append(
                (getattr(func, "__name__", str(func)), threading.current_thread() is threading.main_thread())
            )
            return super().__torch_function__(func, types, args, kwargs or {})

    run = nexus.init(root=tmp_path, name="lazy")
    for i in range(5):
        run.log({"loss": torch.tensor(float(i)).as_subclass(Spy)})
    on_main = {name for name, main in calls if main}
    run.finish()
    assert on_main <= {"detach", "numel", "__get__", "device"}, on_main
    assert [m["loss"] for m in _records(run.dir, P.METRIC)] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_config_changes_file_a_fresh_hello_and_config_toml(tmp_path: Path) -> None:
    with nexus.init(root=tmp_path, name="cfg", config={"lr": 0.1}) as run:
        assert nexus.run is run and nexus.config is run.config and nexus.summary is run.summary
        run.config.update({"batch": 32})
        run.config.dropout = 0.1
        assert run.config["batch"] == 32 and run.config.lr == 0.1
        run.log({"loss": 1.0})
    hellos = _records(run.dir, P.HELLO)
    assert hellos[-1]["config"] == {"lr": 0.1, "batch": 32, "dropout": 0.1}
    assert "dropout = 0.1" in (run.dir / P.CONFIG_FILE).read_text()
    states = [r["state"] for r in _records(run.dir, P.STATE)]
    assert states[-1] == P.FINISHED and P.STARTING not in states


def test_the_run_folder_a_script_gets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = nexus.init(total_steps=2)
    first.finish()
    assert first.dir.parent == Path("runs") and first.dir.name.endswith("-1")
    monkeypatch.setenv(P.RUN_DIR_ENV, str(tmp_path / "launched" / "by-dashboard"))
    launched = nexus.init()
    launched.log({"loss": 1.0})
    launched.finish()
    assert launched.dir == tmp_path / "launched" / "by-dashboard" and _records(launched.dir, P.METRIC)
    with pytest.raises(nexus.NexusError, match="resume=True"):
        nexus.init()  # the folder holds a run: never appended to by accident
    again = nexus.init(resume=True)
    again.log({"loss": 0.5})
    again.finish()
    assert [m["step"] for m in _records(again.dir, P.METRIC)] == [1, 2]
    monkeypatch.delenv(P.RUN_DIR_ENV)
    with pytest.raises(nexus.NexusError, match="run name"):
        nexus.init(root=tmp_path, name="../escape")
    with pytest.raises(TypeError, match="colour"):
        nexus.init(root=tmp_path, name="typo", colour="red")


def test_a_tight_loop_keeps_every_record(tmp_path: Path) -> None:
    """200k log() calls of 8 numbers as fast as Python makes them: the writer used to take 20,000
    steps per 0.1 s wake and drop the rest (a 1e6-call loop kept 259,999). Now every step is filed,
    in order, however the machine's load shares the GIL between the loop and the writer."""
    run = nexus.init(root=tmp_path, name="tight")
    n = 200_000
    for i in range(n):
        run.log({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0, "f": 6.0, "g": 7.0, "tokens": i})
    run.finish()
    metrics = _records(run.dir, P.METRIC)
    assert len(metrics) == n and run._writer.dropped == 0
    assert [m["step"] for m in metrics[:3]] == [1, 2, 3] and metrics[-1]["step"] == n
    assert metrics[-1]["tokens"] == n - 1 and not [
        a for a in _records(run.dir, P.ALERT) if a["kind"] == "dropped"
    ]


def test_a_full_queue_makes_log_wait_for_the_writer_instead_of_dropping(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="full")
    run._writer.capacity = 16  # full after 16 steps: log() waits for the writer again and again
    for i in range(5000):
        run.log({"loss": float(i)})
    run.finish()
    assert [m["loss"] for m in _records(run.dir, P.METRIC)] == [float(i) for i in range(5000)]
    assert run._writer.dropped == 0
    assert _records(run.dir, P.STATE)[-1]["state"] == P.FINISHED


def test_a_writer_that_is_not_running_drops_counts_and_alerts_without_waiting(tmp_path: Path) -> None:
    """The one case a record is lost: no writer thread to wait for. log() must not hang on it."""
    from nexus.writer import STEP, Writer

    writer = Writer(tmp_path, {"run": "w"}, capacity=5)
    writer.describe = None
    kept = [
        writer.put({"type": STEP, "step": i, "time": 1.0, "values": {"loss": 1.0}, "lr": None})
        for i in range(1, 11)
    ]
    assert kept == [True] * 5 + [False] * 5 and writer.dropped == 5
    writer.close()  # never started: the caller files what was queued, and the alert
    assert [m["step"] for m in _records(tmp_path, P.METRIC)] == [1, 2, 3, 4, 5]
    alert = [a for a in _records(tmp_path, P.ALERT) if a["kind"] == "dropped"]
    assert alert and "5 logged steps dropped" in alert[0]["text"]


def test_commands_without_a_handler_are_refused_with_the_fix(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="bare")
    try:
        with pytest.raises(P.ControlError, match=r"run\.on_checkpoint"):
            P.send_command(run.dir, "checkpoint", timeout=30)
        with pytest.raises(P.ControlError, match=r"run\.watch\(optimizer\)"):
            P.send_command(run.dir, "ramp", timeout=30, target_lr=0.1, ramp_steps=3)
        assert P.send_command(run.dir, "stop", timeout=30)["queued"] is True
        assert [cmd["cmd"] for cmd in run.commands()] == ["stop"]
        assert run.should_stop
    finally:
        run.finish()
    assert _records(run.dir, P.STATE)[-1]["state"] == P.STOPPED


def test_an_exception_in_a_with_block_is_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), nexus.init(root=tmp_path, name="boom") as run:
        run.log({"loss": 1.0})
        raise RuntimeError("CUDA error: device-side assert triggered")
    end = _records(run.dir, P.STATE)[-1]
    assert (end["state"], end["reason"], end["exit_code"]) == (
        P.FAILED,
        "RuntimeError: CUDA error: device-side assert triggered",
        1,
    )
    assert math.isfinite(_records(run.dir, P.METRIC)[0]["loss"])


def _until(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_loop_that_only_logs_is_paused_and_stopped_inside_log(tmp_path: Path) -> None:
    """wandb-style: no step_end() anywhere, yet p holds the loop (inside log()) and s reaches it."""
    run = nexus.init(root=tmp_path, name="log-only")
    run.on_checkpoint(lambda: "weights.pt")

    def loop() -> None:
        while not run.should_stop:
            run.log({"loss": 1.0})
            time.sleep(0.001)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        _until(lambda: run.step > 3)
        P.send_command(run.dir, "pause", timeout=30)
        _until(lambda: (P.read_status(run.dir) or {}).get("state") == P.PAUSED)
        held = run.step
        P.send_command(run.dir, "checkpoint", timeout=30)  # done by the held loop, which takes no step
        _until(lambda: any(r["type"] == P.CKPT for r in _records(run.dir)))
        assert run.step == held and run.paused
        P.send_command(run.dir, "resume", timeout=30)
        _until(lambda: run.step > held + 2)
        P.send_command(run.dir, "stop", timeout=30)
        worker.join(60)
        assert not worker.is_alive()
    finally:
        run.should_stop = True
        worker.join(60)
        run.finish()
    assert _records(run.dir, P.STATE)[-1]["state"] == P.STOPPED


def test_sync_returns_once_everything_queued_is_on_file(tmp_path: Path) -> None:
    """The engine syncs before each checkpoint: a SIGKILL right after a checkpoint must not leave the
    steps it covers missing from the metrics file (they were still in the writer's queue)."""
    from nexus.writer import Writer

    writer = Writer(tmp_path, {"run": "s"}, flush_s=3600.0)  # no timed flush: only sync can file them
    writer.describe = None
    writer.start()
    try:
        for step in range(1, 501):
            writer.queue.append({"type": P.METRIC, "step": step, "loss": 1.0 / step, "time": 1.0})
        assert writer.sync(timeout=60)
        on_file = [r.step for r in P.read_records(tmp_path / P.METRICS_FILE).records if r.type == P.METRIC]
        assert on_file == list(range(1, 501))
    finally:
        writer.close()


def test_a_checkpoint_path_is_stored_run_folder_relative_or_absolute_never_cwd_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run under a relative root whose handler returns a path relative to the working directory
    (Lightning's did: `runs/x/checkpoints/step-5.ckpt`): the record names it from the run folder; a
    path outside the folder is stored absolute, so a reader started elsewhere still finds it."""
    monkeypatch.chdir(tmp_path)
    run = nexus.init(root="runs", name="rel")
    paths = iter([Path("runs/rel/checkpoints/a.ckpt"), "elsewhere/b.ckpt"])
    run.on_checkpoint(lambda: next(paths))
    try:
        for _ in range(2):
            run.log({"loss": 1.0})
            P.send_command(run.dir, "checkpoint", timeout=30)
            run.step_end()
    finally:
        run.finish()
    assert [c["path"] for c in _records(tmp_path / "runs" / "rel", P.CKPT)] == [
        "checkpoints/a.ckpt",
        str(tmp_path / "elsewhere" / "b.ckpt"),
    ]


@pytest.mark.parametrize("key", ["tokens", "train/tokens", "num_input_tokens_seen"])
def test_a_loop_that_logs_tokens_gets_tok_s(tmp_path: Path, key: str) -> None:
    """The dashboard's Tok/s column and chart: derived from the records' times when the loop logs
    its token count under any of the names it is known by (HF's num_input_tokens_seen included)."""
    run = nexus.init(root=tmp_path, name="tok")
    for step in range(1, 6):
        run.log({"loss": 1.0, key: step * 1000})
        time.sleep(0.01)  # records a few ms apart: a rate to derive (its value is not asserted)
    run.finish()
    metrics = _records(run.dir, P.METRIC)
    assert [m["tokens"] for m in metrics] == [1000, 2000, 3000, 4000, 5000]
    assert metrics[0].get("tok_s") is None and all(m["tok_s"] > 0 for m in metrics[1:])


def test_an_adapter_says_what_would_make_a_key_work(tmp_path: Path) -> None:
    """HF without an eval set: `e` is refused with what to pass the Trainer, not "add a handler"."""
    run = nexus.init(root=tmp_path, name="lacking")
    run.lacks("eval", "the Trainer has no eval set: pass eval_dataset= to Trainer(...)")
    try:
        with pytest.raises(P.ControlError, match="pass eval_dataset="):
            P.send_command(run.dir, "eval", timeout=30)
        run.log({"loss": 1.0})
    finally:
        run.finish()
    hello = _records(run.dir, P.HELLO)[-1]
    assert "eval" not in hello["commands"] and "eval_dataset" in hello["lacking"]["eval"]
