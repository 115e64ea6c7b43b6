"""Code that cannot be edited: HF's own `report_to="wandb"` callback and Lightning's `WandbLogger` import
wandb themselves. `nexus run -- python script.py` (the one switch, outside the code) makes that
import Nexus: the real libraries train and their runs land in the runs folder, not in W&B's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.reporter import SCRIPTS

from nexus_core import protocol as P

NEXUS = Path(sys.executable).parent / "nexus"


def _nexus_run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "NEXUS_"))}
    env.update(WANDB_MODE="offline", OMP_NUM_THREADS="1")  # were the real wandb imported, it stays offline
    return subprocess.run(
        [
            str(NEXUS),
            "run",
            "--root",
            str(tmp_path / "runs"),
            "--",
            sys.executable,
            str(SCRIPTS / "wandb_loggers.py"),
            mode,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        stdin=subprocess.DEVNULL,
    )


def _records(run_dir: Path) -> list:
    return list(P.read_records(run_dir / P.METRICS_FILE).records)


@pytest.mark.parametrize(
    "mode,name,project,step_key",
    [
        ("hf", "hf-wandb", "huggingface", "train/global_step"),
        ("lightning", "pl-wandb", "drop-in", "trainer/global_step"),
    ],
)
def test_wandb_loggers_run_unchanged_through_nexus_run(
    tmp_path: Path, mode: str, name: str, project: str, step_key: str
) -> None:
    pytest.importorskip("transformers" if mode == "hf" else "lightning")
    done = _nexus_run(tmp_path, mode)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "wandb").exists()  # the real wandb never ran (offline it writes ./wandb)
    records = _records(tmp_path / "runs" / name)
    hello = [r for r in records if r.type == P.HELLO][-1]
    assert hello.meta["project"] == project and hello.meta["metrics"]["*"]["step_metric"] == step_key
    losses = [r.loss for r in records if r.type == P.METRIC and r.loss is not None]
    assert len(losses) == 6 and all(0 < v < 10 for v in losses)
    assert [r.extra[step_key] for r in records if r.type == P.METRIC and r.loss is not None][-1] >= 5
    assert records[-1].type == P.STATE and records[-1].state == P.FINISHED
    if mode == "hf":
        assert hello.config["run_name"] == "hf-wandb" and hello.config["learning_rate"] == 1e-3


def test_nexus_run_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(NEXUS), "run"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (
        done.returncode == 2 and done.stderr.strip() == "error: nothing to run: nexus run -- python train.py"
    )
    done = subprocess.run(
        [str(NEXUS), "run", "--", "no-such-program-here"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 127 and done.stderr.startswith("error: cannot run 'no-such-program-here'")
    assert "Traceback" not in done.stderr
