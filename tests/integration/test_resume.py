"""Exact resume on the CPU (2N straight steps == N + resume + N, loss for loss) for every optimizer,
and a resume with an LR ramp that follows exactly what `lr-preview` promised."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.engine import run_engine_ok
from support.preset import TINY

from nexus_core import protocol as P


def metrics(run: Path) -> dict[int, dict]:
    """step -> metric record (a resumed run's records overwrite the first run's for the same step)."""
    return {r["step"]: r for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.METRIC}))}


@pytest.mark.parametrize("optim", ["adamw", "muon", "lion"])
def test_n_plus_n_equals_2n(runs_root: Path, optim: str) -> None:
    n = 5
    opts = [*TINY, "--set", f"optim.name={optim}", "--set", "train.grad_accum=2"]
    # Evals, samples and checkpoints only in the straight run: side work must not change training.
    busy = [
        "--set",
        "train.eval_every=3",
        "--set",
        "train.sample_every=4",
        "--set",
        "train.sample_tokens=4",
        "--set",
        "train.ckpt_every=3",
    ]
    quiet = ["--set", "train.eval_every=1000", "--set", "train.sample_every=0", "--set", "train.ckpt_every=0"]
    straight, split = runs_root / "straight", runs_root / "split"
    run_engine_ok("train", "--run-dir", str(straight), "--steps", str(2 * n), *opts, *busy)
    run_engine_ok("train", "--run-dir", str(split), "--steps", str(2 * n), "--stop-at", str(n), *opts, *quiet)
    run_engine_ok("resume", "--run-dir", str(split))

    a, b = metrics(straight), metrics(split)
    assert sorted(a) == sorted(b) == list(range(1, 2 * n + 1))
    for step in a:
        assert b[step]["loss"] == pytest.approx(a[step]["loss"], abs=1e-6), step
        assert b[step]["gnorm"] == pytest.approx(a[step]["gnorm"], rel=1e-5), step
        assert b[step]["lr"] == a[step]["lr"], step
    hellos = [r for r in P.iter_records(split / P.METRICS_FILE, frozenset({P.HELLO}))]
    assert hellos[-1]["start_step"] == n and hellos[-1]["resumed_from"] == f"checkpoints/step_{n:06d}"


def test_resume_with_ramp_follows_the_preview(runs_root: Path) -> None:
    run = runs_root / "ramped"
    run_engine_ok(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "8",
        *TINY,
        "--set",
        "schedule.warmup_steps=2",
        "--set",
        "train.ckpt_every=4",
    )
    meta = json.loads((run / "checkpoints" / "latest" / "meta.json").read_text())
    assert meta["step"] == 8
    ckpt_lr = meta["lr"]
    target, k, total = 4e-3, 6, 20

    preview = json.loads(
        run_engine_ok(
            "lr-preview",
            "--run-dir",
            str(run),
            "--lr",
            str(target),
            "--ramp-steps",
            str(k),
            "--steps",
            str(total),
        ).stdout
    )
    assert preview["start_step"] == 8 and preview["step"][0] == 8 and preview["step"][-1] == total
    assert preview["lr"][0] == pytest.approx(ckpt_lr, rel=1e-12), "the ramp starts at the checkpoint's LR"

    run_engine_ok(
        "resume", "--run-dir", str(run), "--lr", str(target), "--ramp-steps", str(k), "--steps", str(total)
    )
    lrs = {s: r["lr"] for s, r in metrics(run).items()}
    assert sorted(lrs) == list(range(1, total + 1))
    for i in range(k + 1):  # metric step 9 + i trained with the LR i steps into the ramp
        assert lrs[9 + i] == pytest.approx(ckpt_lr + (target - ckpt_lr) * i / k, rel=1e-9), i
    planned = dict(zip(preview["step"], preview["lr"], strict=True))
    for step, lr in planned.items():
        if step < total:
            assert lrs[step + 1] == pytest.approx(lr, rel=1e-9), step
    hello = [r for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.HELLO}))][-1]
    assert hello["total_steps"] == total and hello["start_step"] == 8


def test_resume_from_a_named_checkpoint_and_past_the_end(
    runs_root: Path, python: str, engine_env: dict
) -> None:
    run = runs_root / "named"
    run_engine_ok("train", "--run-dir", str(run), "--steps", "6", *TINY, "--set", "train.ckpt_every=3")
    done = subprocess.run(
        [python, "-m", "engine", "resume", "--run-dir", str(run)],
        env=engine_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "already reached its total of 6 steps" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1

    run_engine_ok("resume", "--run-dir", str(run), "--from", "step_000003", "--stop-at", "5")
    steps = [r["step"] for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.METRIC}))]
    assert steps == [1, 2, 3, 4, 5, 6, 4, 5], "the resumed part restarts after step 3"


# -- a run folder written before the family tables -----------------------------------------------

FLAT = Path(__file__).parent / "fixtures" / "flat_config"


def to_flat(config: dict) -> dict:
    """A new-shape config dict in the shape the engine wrote before [model.<family>] tables: every
    family's options flat in [model], the chosen family's values and every other family's defaults.
    test_flat_shape_is_the_old_engines_own holds this to real old files."""
    from nexus_core.families import FAMILY_SECTIONS, FLAT_KEYS

    model = {k: v for k, v in config["model"].items() if not isinstance(v, dict)}
    chosen = config["model"][model["family"]]
    for flat_key, (family, key) in FLAT_KEYS.items():
        model[flat_key] = (
            chosen[key] if family == model["family"] else getattr(FAMILY_SECTIONS[family](), key)
        )
    return {**config, "model": model}


@pytest.mark.parametrize("path", sorted(FLAT.glob("*.toml")), ids=lambda p: p.stem)
def test_flat_shape_is_the_old_engines_own(path: Path) -> None:
    from nexus_core.config import load_toml, read_toml

    old = read_toml(path)
    new = to_flat(load_toml(path).to_dict())
    for section, key in ADDED_SINCE:  # options added after these files were written: their defaults
        assert key not in old[section]
        del new[section][key]
    assert new == old


ADDED_SINCE = [("train", "signals_every")]


def test_an_old_flat_run_folder_resumes_previews_and_checks(
    runs_root: Path, python: str, engine_env: dict
) -> None:
    """config.toml and every checkpoint's meta.json in the old flat shape (as a run trained before the
    family tables has them): resume, lr-preview and a checkpoint check all read it, migrated."""
    import tomli_w

    run = runs_root / "old-hybrid"
    small = [
        *TINY,
        "--set",
        "model.n_layers=2",
        "--set",
        "model.hybrid.ssm_state=4",
        "--set",
        "train.ckpt_every=3",
    ]
    run_engine_ok(
        "train", "--run-dir", str(run), "--preset", "hybrid-tiny", "--steps", "6", "--stop-at", "3", *small
    )
    from nexus_core.config import read_toml

    flat = to_flat(read_toml(run / P.CONFIG_FILE))
    assert flat["model"]["ssm_state"] == 4 and "hybrid" not in flat["model"]
    (run / P.CONFIG_FILE).write_text(tomli_w.dumps(flat))
    for meta_path in (run / "checkpoints").glob("step_*/meta.json"):
        meta = json.loads(meta_path.read_text())
        meta["config"] = to_flat(meta["config"])
        meta_path.write_text(json.dumps(meta))

    preview = json.loads(
        run_engine_ok("lr-preview", "--run-dir", str(run), "--lr", "1e-3", "--ramp-steps", "2").stdout
    )
    assert preview["start_step"] == 3
    run_engine_ok("resume", "--run-dir", str(run))
    assert sorted(metrics(run)) == list(range(1, 7))
    hello = [r for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.HELLO}))][-1]
    assert hello["start_step"] == 3 and hello["config"]["model"]["hybrid"]["ssm_state"] == 4

    (run / P.CONFIG_FILE).write_text(tomli_w.dumps({**flat, "model": {**flat["model"], "ssm_state": 8}}))
    done = subprocess.run(
        [python, "-m", "engine", "resume", "--run-dir", str(run), "--steps", "9"],
        env=engine_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "model.hybrid.ssm_state: checkpoint 4, config 8" in done.stderr, done.stderr
