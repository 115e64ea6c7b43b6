"""`python -m engine` as a user meets it: one `error: ...` line (exit 2, no traceback) for anything a
user can get wrong, and the generate / eval / lr-preview commands on a real trained run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.engine import assert_one_line_error, engine_env, run_engine
from support.preset import TINY

from nexus_core import protocol as P


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run with an eval and a checkpoint at its last step, shared by the tests below."""
    run = tmp_path_factory.mktemp("runs") / "cli-run"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        *TINY,
        "--set",
        "train.eval_every=6",
        "--set",
        "train.ckpt_every=3",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["train", "--preset", "nope"], r"unknown preset 'nope'; choose one of: .*tiny"),
        (["train", "--set", "optim.lrr=1"], r"unknown key optim\.lrr"),
        (["train", "--set", "nonsense"], r"must look like section\.key=value"),
        (["train", "--set", "train.steps=many"], r"train\.steps must be int"),
        (
            ["train", "--set", "model.n_heads=4", "--set", "model.n_kv_heads=3"],
            r"n_heads \(4\) must be divisible by model\.n_kv_heads \(3\)",
        ),
        (["train", "--set", "data.source=/no/such/corpus"], r"data\.source '/no/such/corpus' does not exist"),
        (["train", "--config", "/no/such.toml"], r"config file /no/such\.toml does not exist"),
        (["train", "--device", "gpu"], r"train\.device must be auto, cpu, cuda"),
        (["train", "--steps"], r"expected one argument"),
        (["train", "--bogus"], r"unrecognized arguments: --bogus"),
        (["resume", "--run-dir", "/no/such/run"], r"not a run folder"),
        (["fly"], r"invalid choice: 'fly'"),
        (["train", "--metrics-fd", "97"], r"--metrics-fd 97 is not an open file descriptor"),
        (["train", "--steps", "10", "--stop-at", "11"], r"--stop-at 11 is past the schedule's 10 steps"),
        (
            ["train", "--set", "model.hybrid.ssm_state=8"],
            r"model\.hybrid\.ssm_state = 8 is read only by the hybrid family, and model\.family is transformer: remove it",
        ),
        (
            ["train", "--preset", "hybrid-tiny", "--set", "model.mtp_heads=2"],
            r"model\.transformer\.mtp_heads = 2 is read only by the transformer family, and model\.family is hybrid",
        ),
        (
            ["train", "--set", "model.hybrid.nope=1"],
            r"unknown key model\.hybrid\.nope; known keys: attn_every",
        ),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: list[str], pattern: str) -> None:
    if args[0] == "train":
        args = ["train", "--run-dir", str(tmp_path / "r"), *args[1:]]
    done = run_engine(*args)
    assert_one_line_error(done, pattern)  # run_engine's own timeout is the guard against a hang
    assert not (tmp_path / "r" / P.METRICS_FILE).exists(), "a refused run leaves no metrics behind"


def test_missing_data_file_in_a_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[data]\nsource = "/nowhere/text.txt"\n')
    assert_one_line_error(
        run_engine("train", "--config", str(cfg), "--run-dir", str(tmp_path / "r")),
        r"data\.source '/nowhere/text\.txt' does not exist",
    )


def test_family_options_through_the_cli_land_in_their_table(tmp_path: Path) -> None:
    """`--set model.hybrid.KEY` and the old flat `--set model.KEY` both set the hybrid's table; the run
    folder's config.toml and the hello record hold it there, and --check agrees before anything exists."""
    run = tmp_path / "h"
    args = [
        "--preset",
        "hybrid-tiny",
        "--run-dir",
        str(run),
        "--steps",
        "2",
        *TINY,
        "--set",
        "model.n_layers=2",
        "--set",
        "model.hybrid.ssm_state=4",
        "--set",
        "model.ssm_chunk=2",
        "--set",
        "train.eval_every=0",
    ]
    check = run_engine("train", "--check", *args)
    assert check.returncode == 0 and check.stdout.startswith("ok: "), check.stderr
    assert not run.exists()
    done = run_engine("train", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    from nexus_core.config import read_toml

    model = read_toml(run / P.CONFIG_FILE)["model"]
    assert model["hybrid"]["ssm_state"] == 4 and model["hybrid"]["ssm_chunk"] == 2
    assert {k for k, v in model.items() if isinstance(v, dict)} == {"hybrid"} and "ssm_state" not in model
    hello = next(P.iter_records(run / P.METRICS_FILE, frozenset({P.HELLO})))
    assert hello["config"]["model"]["hybrid"] == model["hybrid"]


def test_every_field_the_engine_writes_is_typed(trained: Path) -> None:
    """The record types ignore fields they do not declare, so a field the engine writes but a Struct
    lacks would silently vanish for every reader: compare the raw maps of a real run to the types."""
    import msgpack

    kinds_seen, extras_seen = set(), set()
    typed = P.read_records(trained / P.METRICS_FILE).records
    with open(trained / P.METRICS_FILE, "rb") as f:
        raws = list(msgpack.Unpacker(f, raw=False))
    assert len(raws) == len(typed)
    for raw, rec in zip(raws, typed, strict=True):
        cls = P.RECORD_CLASSES[raw["type"]]
        kinds_seen.add(raw["type"])
        undeclared = set(raw) - {"type"} - set(cls.__struct_fields__)
        # The engine's own series (gnorm/<group>, mtp/...) are a metric's extra keys: kept, as numbers,
        # in record.extra; anything else undeclared would be lost.
        extra = set(getattr(rec, "extra", None) or {})
        assert undeclared == extra and all("/" in k for k in extra), (raw["type"], undeclared, extra)
        extras_seen |= extra
    assert {"hello", "metric", "eval", "ckpt", "state", "log"} <= kinds_seen
    assert any(k.startswith("gnorm/") for k in extras_seen), "the param groups' grad norms are series"


def test_training_into_a_used_run_folder_is_refused(trained: Path) -> None:
    size = (trained / P.METRICS_FILE).stat().st_size
    done = run_engine("train", "--run-dir", str(trained), *TINY)
    assert_one_line_error(done, r"already has metrics: use `python -m engine resume --run-dir")
    assert (trained / P.METRICS_FILE).stat().st_size == size, "nothing was appended"


@pytest.mark.parametrize("damage", ["truncate", "meta"])
def test_corrupt_checkpoint_is_one_line(trained: Path, tmp_path: Path, damage: str) -> None:
    run = tmp_path / "copy"
    shutil.copytree(trained, run, symlinks=True)
    latest = run / "checkpoints" / "latest"
    if damage == "truncate":
        weights = latest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        pattern = r"corrupt: model\.safetensors unreadable"
    else:
        (latest / "meta.json").write_text("{not json")
        pattern = r"corrupt: meta\.json unreadable"
    assert_one_line_error(run_engine("resume", "--run-dir", str(run), "--steps", "9"), pattern)
    assert_one_line_error(run_engine("generate", "--run-dir", str(run), "--prompt", "x"), pattern)


def test_checkpoint_of_another_config_lists_the_keys(trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "edited"
    shutil.copytree(trained, run, symlinks=True)
    config = run / P.CONFIG_FILE
    config.write_text(config.read_text().replace("d_model = 32", "d_model = 64"))
    assert_one_line_error(
        run_engine("resume", "--run-dir", str(run), "--steps", "9"),
        r"does not match this run's config: model\.d_model: checkpoint 32, config 64",
    )


def test_generate_prints_a_sample(trained: Path) -> None:
    args = ["generate", "--run-dir", str(trained), "--prompt", "import ", "--tokens", "20", "--seed", "3"]
    first, again = run_engine(*args), run_engine(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("import ") and len(first.stdout) > len("import ")
    assert first.stdout == again.stdout, "--seed makes a sample repeatable"


def test_eval_matches_the_runs_own_eval(trained: Path) -> None:
    done = run_engine("eval", "--run-dir", str(trained))
    assert done.returncode == 0, done.stderr
    m = re.search(r"step_000006: val_loss (\d+\.\d+)\s+val_ppl (\d+\.\d+)", done.stdout)
    assert m, done.stdout
    recorded = [r for r in P.iter_records(trained / P.METRICS_FILE, frozenset({P.EVAL}))][-1]
    assert recorded["step"] == 6
    assert float(m.group(1)) == pytest.approx(recorded["val_loss"], abs=1e-4)
    assert float(m.group(2)) == pytest.approx(recorded["val_ppl"], rel=1e-3)


def test_lr_preview_is_json_and_torch_free(trained: Path) -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from engine.cli import main\n"
        f"rc = main(['lr-preview', '--run-dir', {str(trained)!r}, '--lr', '0.01', '--ramp-steps', '4',"
        " '--steps', '20', '--points', '15'])\n"
        "print(rc, 'torch' in sys.modules, round(time.perf_counter() - t, 3), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=engine_env(), capture_output=True, text=True, timeout=60
    )
    rc, torch_loaded, seconds = done.stderr.split()
    assert rc == "0" and torch_loaded == "False", done.stderr
    out = json.loads(done.stdout)
    meta = json.loads((trained / "checkpoints" / "latest" / "meta.json").read_text())
    assert out["start_step"] == meta["step"] == 6
    assert out["step"][0] == 6 and out["step"][-1] == 20 and len(out["step"]) == 15
    assert out["lr"][0] == pytest.approx(meta["lr"]), "starts at the checkpoint's LR"
    assert out["step"][out["lr"].index(max(out["lr"]))] == 10 and max(out["lr"]) == pytest.approx(0.01)
    print(f"lr-preview answered in {seconds} s (in-process, imports included)")


def test_lr_preview_needs_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    (run / P.CONFIG_FILE).write_text('name = "empty"\n')
    assert_one_line_error(
        run_engine("lr-preview", "--run-dir", str(run), "--lr", "1e-3", "--ramp-steps", "5"),
        r"has no checkpoints",
    )


def test_resume_flags_are_checked(trained: Path) -> None:
    assert_one_line_error(
        run_engine("resume", "--run-dir", str(trained), "--lr", "1e-3"), r"--lr needs --ramp-steps"
    )
    assert_one_line_error(
        run_engine("resume", "--run-dir", str(trained), "--from", "step_000999"),
        r"checkpoint 'step_000999' not found .* available: step_000003, step_000006",
    )


def test_a_refused_start_is_told_on_the_pipe(tmp_path: Path) -> None:
    """A launcher reading only the pipe learns why the run never started."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "train",
            "--preset",
            "nope",
            "--run-dir",
            str(tmp_path / "r"),
            "--metrics-fd",
            str(write_fd),
        ],
        env=engine_env(),
        pass_fds=(write_fd,),
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_fd)
    _, err = proc.communicate(timeout=60)
    with os.fdopen(read_fd, "rb") as pipe:
        records = P.RecordDecoder().feed(pipe.read())
    assert proc.returncode == 2 and err.startswith("error: unknown preset")
    assert [(r["type"], r.get("kind") or r.get("state")) for r in records] == [
        ("alert", "crash"),
        ("state", "failed"),
    ]
    assert "unknown preset 'nope'" in records[0]["text"] and "unknown preset 'nope'" in records[1]["reason"]


def test_lr_preview_of_a_live_run_without_checkpoints_matches_the_ramp_it_gets(tmp_path: Path) -> None:
    """A live run with no checkpoint yet: the preview starts at its current step and LR, and the LR
    the engine then follows after the same `ramp` command is the previewed curve."""
    run = tmp_path / "live"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "train",
            "--run-dir",
            str(run),
            "--steps",
            "5000",
            *TINY,
            "--set",
            "train.ckpt_every=100000",
            "--set",
            "train.eval_every=100000",
            "--set",
            "schedule.warmup_steps=4",
        ],
        env=engine_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while ((P.read_status(run) or {}).get("step") or 0) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the engine did not start training"
            time.sleep(0.1)
        P.send_command(run, P.PAUSE)
        while (P.read_status(run) or {}).get("state") != P.PAUSED:
            assert time.monotonic() < deadline, "the engine did not pause"
            time.sleep(0.05)
        assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
        last = [r for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.METRIC}))][-1]
        total = last["step"] + 40  # a new, short total: the run finishes soon after the ramp
        done = run_engine(
            "lr-preview",
            "--run-dir",
            str(run),
            "--lr",
            "0.02",
            "--ramp-steps",
            "6",
            "--steps",
            str(total),
            "--points",
            "100",
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["start_step"] == out["step"][0] == last["step"], "starts where the run is, not at step 0"
        # A metric record carries the LR its step used; the next step (where the ramp starts) may differ.
        assert out["lr"][0] == pytest.approx(last["lr"], rel=0.05), "starts at the LR the run is at now"
        assert out["step"][-1] == total and max(out["lr"]) == pytest.approx(0.02)

        P.send_command(run, P.RAMP, target_lr=0.02, ramp_steps=6, total_steps=total)
        P.send_command(run, P.UNPAUSE)  # resume by the name older dashboards sent: engines still take it
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    followed = {r["step"]: r["lr"] for r in P.iter_records(run / P.METRICS_FILE, frozenset({P.METRIC}))}
    previewed = dict(zip(out["step"], out["lr"], strict=True))
    # The record of step s carries the LR that step used: the schedule's value after s - 1 steps.
    common = [s for s in previewed if s + 1 in followed and s >= out["start_step"]]
    assert len(common) > 30
    for s in common:
        assert followed[s + 1] == pytest.approx(previewed[s], rel=1e-6), f"step {s}"


def test_through_the_nexus_script_advice_names_nexus(trained: Path) -> None:
    """`nexus train` execs the engine: its advice must say `nexus resume`, a command the user can paste."""
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "train", "--run-dir", str(trained), *TINY],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line_error(done, r"already has metrics: use `nexus resume --run-dir")
    bad = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "train", "--steps", "many"],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line_error(bad, r"\(see: nexus train --help\)")
