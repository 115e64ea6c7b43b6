"""Values that used to be accepted and fail later (an LR of nan crashing step 1, a negative top-k
crashing the first sample ~100 steps in, a seed torch cannot take) given to the real CLI: it exits 2
with one `error:` line and creates no run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import assert_one_line_error, run_nexus


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("optim.lr=nan", "optim.lr must be a finite number"),
        ("optim.lr=inf", "optim.lr must be a finite number"),
        ("optim.lr=-inf", "optim.lr"),
        ("optim.lr=1e39", r"optim.lr must be in \(0, 1e\+30\]"),
        ("model.rope_base=0", "model.rope_base must be"),
        ("model.dropout=5", r"model.dropout must be in \[0, 1\)"),
        (f"train.seed={2**70}", "train.seed must be between 0 and"),
        ("train.seed=2**70", "train.seed must be int"),
        ("train.sample_temperature=-1", "train.sample_temperature must be between 0 and 5"),
        ("train.sample_top_k=-1", "train.sample_top_k must be between 0"),
        ("train.sample_tokens=-1", "train.sample_tokens must be between 0"),
        ("optim.beta1=2", r"optim.beta1 must be in \[0, 1\)"),
        ("optim.eps=-1", r"optim.eps must be in \(0, 1\]"),
        ("optim.grad_clip=nan", "optim.grad_clip must be a finite number"),
        ("schedule.warmup_steps=-5", "schedule.warmup_steps"),
        (f"model.d_model={2**64}", "model.d_model must be between 1 and"),
        ("schedule.decay_shape=cubic", "schedule.decay_shape must be one of linear, sqrt, exp"),
    ],
)
def test_the_cli_refuses_in_one_line_before_any_folder(tmp_path: Path, override: str, says: str) -> None:
    run_dir = tmp_path / "runs" / "r"
    done = run_nexus(
        "train",
        "--preset",
        "tiny",
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--set",
        override,
        cwd=tmp_path,
    )
    assert_one_line_error(done, says)
    assert not run_dir.exists() and not (tmp_path / "runs").exists()


def test_a_config_file_with_nan_is_refused_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[optim]\nbeta2 = nan\n[train]\nsample_top_k = -1\n")
    done = run_nexus(
        "train", "--config", str(tmp_path / "c.toml"), "--run-dir", str(tmp_path / "r"), cwd=tmp_path
    )
    assert done.returncode == 2 and done.stderr.startswith("error: optim.beta2 must be a finite number")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
