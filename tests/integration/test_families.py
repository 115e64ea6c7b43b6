"""Per-family acceptance through the real CLI: every family's tiny preset trains, resumes exactly
(N + resume + N == 2N, loss for loss), and its held-out CE falls; the transformer's option variants
(MTP heads, hyper-connection streams, looped blocks, wavelet mixers) train and resume exactly too.

Each case runs three real engine processes on small overrides. The straight run and the first half
of the split run start together (they are independent), which halves the wall time on 2 cores.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open

from nexus_core import protocol as P

SMALL = [
    "--set",
    "model.d_model=32",
    "--set",
    "model.n_layers=2",
    "--set",
    "model.seq_len=32",
    "--set",
    "train.batch_size=4",
    "--set",
    "data.max_bytes=200000",
    "--threads",
    "1",
    "--set",
    "schedule.warmup_steps=2",
    "--set",
    "train.eval_every=4",
    "--set",
    "train.eval_batches=4",
    "--set",
    "train.sample_every=0",
    "--set",
    "train.ckpt_every=0",
]
STEPS = 16
HALF = STEPS // 2


def _start(python: str, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [python, "-m", "engine", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]


def _records(run: Path, kind: str) -> dict[int, dict]:
    """step -> record of `kind` (a resumed run's records replace the first run's for the same step)."""
    return {r["step"]: r for r in P.iter_records(run / P.METRICS_FILE, frozenset({kind}))}


def _straight_and_split(root: Path, python: str, env: dict, args: list[str]) -> tuple[Path, Path]:
    """Train STEPS straight, and HALF + resume + HALF in a second folder, with the same options."""
    straight, split = root / "straight", root / "split"
    common = ["train", "--steps", str(STEPS), *SMALL, *args]
    procs = [
        _start(python, env, *common, "--run-dir", str(straight)),
        _start(python, env, *common, "--run-dir", str(split), "--stop-at", str(HALF)),
    ]
    for proc in procs:
        _wait(proc)
    assert max(_records(split, P.METRIC)) == HALF, "--stop-at must stop the first half at step N"
    _wait(_start(python, env, "resume", "--run-dir", str(split)))
    return straight, split


def _assert_same_training(straight: Path, split: Path) -> None:
    a, b = _records(straight, P.METRIC), _records(split, P.METRIC)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in a:
        assert b[step]["loss"] == pytest.approx(a[step]["loss"], abs=1e-6), step
        assert b[step]["ce"] == pytest.approx(a[step]["ce"], abs=1e-6), step
        assert b[step]["lr"] == a[step]["lr"], step
    hello = list(P.iter_records(split / P.METRICS_FILE, frozenset({P.HELLO})))[-1]
    assert hello["start_step"] == HALF


@pytest.mark.parametrize("preset", ["tiny", "hybrid-tiny", "engram-tiny", "lstm-tiny"])
def test_family_preset_trains_resumes_exactly_and_learns(
    preset: str, runs_root: Path, python: str, engine_env: dict
) -> None:
    straight, split = _straight_and_split(runs_root, python, engine_env, ["--preset", preset])
    _assert_same_training(straight, split)
    hello = list(P.iter_records(straight / P.METRICS_FILE, frozenset({P.HELLO})))[0]
    assert hello["config"]["preset"] == preset
    evals = _records(straight, P.EVAL)
    assert sorted(evals) == [4, 8, 12, 16]
    first, last = evals[4]["val_loss"], evals[16]["val_loss"]
    assert last < first - 0.1, f"{preset}: held-out CE went {first:.3f} -> {last:.3f}"
    split_evals = _records(split, P.EVAL)
    assert split_evals[16]["val_loss"] == pytest.approx(last, abs=1e-5), "same weights, same held-out CE"


def _tensor_names(run: Path) -> set[str]:
    with safe_open(str(run / "checkpoints" / "latest" / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


def test_transformer_option_variants_train_and_resume_exactly(
    runs_root: Path, python: str, engine_env: dict
) -> None:
    """All four variants in one model (each is cheap; three processes instead of twelve)."""
    variants = [
        "--set",
        "model.transformer.mtp_heads=2",
        "--set",
        "model.transformer.hc_streams=2",
        "--set",
        "model.transformer.loop_count=2",
        "--set",
        "model.transformer.wavelet_layers=[1]",
    ]
    straight, split = _straight_and_split(runs_root, python, engine_env, ["--preset", "tiny", *variants])
    _assert_same_training(straight, split)
    metrics = _records(straight, P.METRIC)
    assert any(r["loss"] != r["ce"] for r in metrics.values()), "MTP adds its heads' CE to the loss"
    names = _tensor_names(split)
    assert any("mtp" in n for n in names), sorted(names)
    assert any(n.startswith("hc.") for n in names), sorted(names)
    assert "blocks.1.mixer.w_id" in names and "blocks.0.mixer.w_id" not in names, sorted(names)
