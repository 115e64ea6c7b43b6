"""One run over two real torchrun processes on the CPU (gloo): records and checkpoints from rank 0
alone, the same losses as one process with the same global batch, resume, and pause / ramp / stop /
SIGTERM reaching both ranks at the same step."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.engine import engine_env
from support.preset import TINY
from support.wait import wait_until

from nexus_core import protocol as P

DIST = [*TINY, "--set", "schedule.warmup_steps=2", "--device", "cpu"]
"""The test preset on the CPU with a short warmup (the ranks' LRs then differ from step 3)."""


def torchrun(python: str, *args: str) -> list[str]:
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "engine",
        *args,
    ]


def run(cmd: list[str], env: dict[str, str], log: Path, timeout: float = 120.0) -> int:
    with open(log, "wb") as out:
        return subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode


def records(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in P.read_records(run_dir / P.METRICS_FILE).records if r["type"] == kind]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 16 steps twice: one process with batch 8, and two torchrun ranks with batch 4 each
    (stopped at step 8 with --stop-at, then resumed under torchrun to 16). Shared by two tests."""
    python = sys.executable
    env = engine_env()
    root = tmp_path_factory.mktemp("dist")
    one, two = root / "one", root / "two"
    common = ["--steps", "16", *DIST, "--set", "train.eval_every=8", "--set", "train.ckpt_every=4"]
    assert (
        run(
            [python, "-m", "engine", "train", "--run-dir", str(one), *common, "--set", "train.batch_size=8"],
            env,
            root / "one.log",
        )
        == 0
    ), (root / "one.log").read_text()[-2000:]
    assert (
        run(
            torchrun(
                python,
                "train",
                "--run-dir",
                str(two),
                *common,
                "--set",
                "train.batch_size=4",
                "--stop-at",
                "8",
            ),
            env,
            root / "two.log",
        )
        == 0
    ), (root / "two.log").read_text()[-2000:]
    assert (
        run(
            torchrun(python, "resume", "--run-dir", str(two), "--threads", "1", "--device", "cpu"),
            env,
            root / "two-resume.log",
        )
        == 0
    ), (root / "two-resume.log").read_text()[-2000:]
    return one, two


def test_torchrun_run_reports_once_from_rank_0(pair: tuple[Path, Path]) -> None:
    one, two = pair
    hellos = records(two, P.HELLO)
    assert [(h["world_size"], h["start_step"]) for h in hellos] == [(2, 0), (2, 8)]  # train, then resume
    assert hellos[0]["tokens_per_step"] == 2 * 4 * 32  # global: world x batch x seq_len
    metrics = records(two, P.METRIC)
    assert [m["step"] for m in metrics] == list(range(1, 17))  # one record per step, not one per rank
    assert metrics[-1]["tokens"] == 16 * 2 * 4 * 32
    assert sum(m["loss"] for m in metrics[-4:]) / 4 < metrics[0]["loss"] - 0.3
    assert [c["step"] for c in records(two, P.CKPT)] == [4, 8, 12, 16]  # once per interval, by rank 0
    assert sorted(p.name for p in (two / "checkpoints").iterdir() if not p.is_symlink()) == [
        "step_000008",
        "step_000012",
        "step_000016",
    ]  # keep_last 3
    assert [
        (s["state"], s["step"]) for s in records(two, P.STATE) if s["state"] in ("stopped", "finished")
    ] == [("stopped", 8), ("finished", 16)]
    status = P.read_status(two)
    assert status is not None and status["state"] == "finished" and status["step"] == 16


def test_two_ranks_train_like_one_process_with_the_whole_batch(pair: tuple[Path, Path]) -> None:
    """Each rank takes its half of the global batch and the gradients are averaged, so the losses are
    those of one process with twice the batch, across the stop and the resume."""
    one, two = pair
    single, multi = records(one, P.METRIC), records(two, P.METRIC)
    assert [m["tokens"] for m in single] == [m["tokens"] for m in multi]
    for a, b in zip(single, multi, strict=True):
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5), (a["step"], a["loss"], b["loss"])
        assert math.isclose(a["gnorm"], b["gnorm"], rel_tol=1e-5), (a["step"], a["gnorm"], b["gnorm"])
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)


def _launch(
    python: str, env: dict[str, str], run_dir: Path, *args: str, nproc_flag: bool = False
) -> tuple[subprocess.Popen, Path]:
    """torchrun directly, or `python -m engine train --nproc 2` (which becomes torchrun in place)."""
    log = run_dir.parent / f"{run_dir.name}.log"
    engine_args = ["train", "--run-dir", str(run_dir), *DIST, *args]
    cmd = (
        [python, "-m", "engine", *engine_args, "--nproc", "2"]
        if nproc_flag
        else torchrun(python, *engine_args)
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def _last_step(run_dir: Path) -> int:
    metrics = records(run_dir, P.METRIC) if (run_dir / P.METRICS_FILE).exists() else []
    return metrics[-1]["step"] if metrics else 0


def test_pause_and_ramp_over_the_socket_reach_both_ranks(
    runs_root: Path, python: str, engine_env: dict
) -> None:
    run_dir = runs_root / "steered"
    proc, log = _launch(
        python,
        engine_env,
        run_dir,
        "--steps",
        "400",
        "--set",
        "train.eval_every=1000",
        "--set",
        "train.ckpt_every=0",
    )
    try:
        wait_until(lambda: _last_step(run_dir) >= 3, what="three steps", proc=proc, log=log)
        assert P.send_command(run_dir, P.PAUSE, timeout=30)["ok"]
        wait_until(
            lambda: (P.read_status(run_dir) or {}).get("state") == "paused", what="paused", proc=proc, log=log
        )
        held = _last_step(run_dir)
        time.sleep(1.5)
        assert _last_step(run_dir) == held  # no step while paused (rank 1 alone cannot step: it needs rank 0)
        # The ramp shortens the run: a rank that missed the new total would train on alone and the
        # run would hang or fail instead of finishing with exit 0 at the new total.
        reply = P.send_command(
            run_dir, P.RAMP, timeout=30, target_lr=1e-3, ramp_steps=2, total_steps=held + 4
        )
        assert reply["ok"], reply
        assert P.send_command(run_dir, P.RESUME, timeout=30)["ok"]
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]  # torchrun: 0 only if both ranks exit 0
    finally:
        if proc.poll() is None:
            proc.kill()
    last = records(run_dir, P.STATE)[-1]
    assert (last["state"], last["step"]) == ("finished", held + 4)
    assert [m["step"] for m in records(run_dir, P.METRIC)] == list(range(1, held + 5))
    lr = {m["step"]: m["lr"] for m in records(run_dir, P.METRIC)}
    assert lr[held + 3] == pytest.approx(1e-3)  # the ramp's target, reached after its 2 steps


@pytest.mark.parametrize("how", ["stop command", "SIGTERM to rank 1"])
def test_a_stop_reaches_both_ranks_at_the_same_step(
    runs_root: Path, python: str, engine_env: dict, how: str
) -> None:
    run_dir = runs_root / "stopped"
    proc, log = _launch(
        python,
        engine_env,
        run_dir,
        "--steps",
        "400",
        "--set",
        "train.eval_every=1000",
        "--set",
        "train.ckpt_every=0",
        nproc_flag=how == "stop command",
    )
    try:
        wait_until(lambda: _last_step(run_dir) >= 2, what="two steps", proc=proc, log=log)
        if how == "stop command":
            assert P.send_command(run_dir, P.STOP, timeout=30)["ok"]
        else:
            rank0 = P.read_status(run_dir)["pid"]
            workers = [c for c in psutil.Process(proc.pid).children() if c.pid != rank0]
            assert len(workers) == 1
            workers[0].send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    last = records(run_dir, P.STATE)[-1]
    assert last["state"] == ("stopped" if how == "stop command" else "killed"), (
        last
    )  # a signal's stop: killed
    assert ("SIGTERM on rank 1" if how != "stop command" else "stop command") in last["reason"]
    assert [c["step"] for c in records(run_dir, P.CKPT)] == [last["step"]]  # one final checkpoint, rank 0's
    assert [m["step"] for m in records(run_dir, P.METRIC)] == list(range(1, last["step"] + 1))
    assert [h["world_size"] for h in records(run_dir, P.HELLO)] == [2]


def test_nproc_refuses_what_torchrun_cannot_carry(runs_root: Path, capsys: pytest.CaptureFixture) -> None:
    """One line each, before torchrun starts: a pipe fd (torchrun closes it for its workers), --nproc 0."""
    from engine import cli

    read_fd, write_fd = os.pipe()
    try:
        args = ["train", "--run-dir", str(runs_root / "x"), "--steps", "3", "--nproc", "2"]
        assert cli.main([*args, "--metrics-fd", str(write_fd)]) == cli.EXIT_USER_ERROR
        assert "--metrics-fd cannot reach torchrun's worker processes" in capsys.readouterr().err
        assert cli.main([*args[:-1], "0"]) == cli.EXIT_USER_ERROR
        assert "--nproc must be 1 or more" in capsys.readouterr().err
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert not (runs_root / "x").exists()


def test_rank_slices_make_up_the_global_batch() -> None:
    """Rank r's rows of batch `position` are rows r*B.. of the one-process batch of world*B rows, for
    random windows and for contiguous streams; world 1 is the plain batch."""
    import torch

    from engine.data import contiguous_streams, get_batch

    tokens = torch.arange(5000, dtype=torch.int32) % 251
    for position in (0, 7):
        whole = get_batch(tokens, 6, 16, 1337, position)
        parts = [get_batch(tokens, 3, 16, 1337, position, rank=r, world=2) for r in range(2)]
        assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
        assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])
        assert torch.equal(get_batch(tokens, 6, 16, 1337, position, rank=0, world=1)[0], whole[0])
        streams = contiguous_streams(tokens, 6, 16, position)
        split = [contiguous_streams(tokens, 2, 16, position, rank=r, world=3) for r in range(3)]
        assert torch.equal(torch.cat([s[0] for s in split]), streams[0])
    assert not torch.equal(
        get_batch(tokens, 3, 16, 1337, 0, rank=0, world=2)[0],
        get_batch(tokens, 3, 16, 1337, 0, rank=1, world=2)[0],
    )
