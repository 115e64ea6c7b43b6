"""scan_runs / format_runs_table on real run folders: one trained by the real engine, others written
with the engine's own writers (status claiming "running" with a dead pid, metrics without status,
a damaged status file), and `nexus runs` itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.preset import sets
from support.runfolder import dead_pid

from nexus_core.protocol import METRICS_FILE, STATUS_FILE, RecordWriter, write_status
from nexus_tui.documents.runs_index import format_runs_table, scan_runs


def _metrics(run_dir: Path, steps: int, state: str | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    w = RecordWriter(run_dir / METRICS_FILE)
    w.write(
        {
            "type": "hello",
            "run": run_dir.name,
            "pid": dead_pid(),
            "device": "cuda:1",
            "total_steps": 50,
            "model": "hybrid",
        }
    )
    for s in range(1, steps + 1):
        w.write({"type": "metric", "step": s, "loss": 2.0})
        if s % 5 == 0:
            w.write({"type": "eval", "step": s, "val_loss": 3.0 - s / 10})
    if state:
        w.write({"type": "state", "state": state, "step": steps})
    w.close()


def test_runs_of_every_kind(runs_root: Path, engine_env: dict[str, str]) -> None:
    real = runs_root / "real"
    args = [
        sys.executable,
        "-m",
        "engine",
        "train",
        "--preset",
        "tiny",
        "--run-dir",
        str(real),
        "--device",
        "cpu",
        "--steps",
        "4",
        *sets("train.eval_every=2", "train.eval_batches=1"),
    ]
    done = subprocess.run(args, env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr

    (runs_root / "killed").mkdir()
    write_status(
        runs_root / "killed",
        {
            "pid": dead_pid(),
            "state": "running",
            "step": 7,
            "total_steps": 10,
            "device": "cpu",
            "model": "transformer",
            "best_val_loss": 2.5,
        },
    )
    (runs_root / "alive").mkdir()
    write_status(
        runs_root / "alive",
        {
            "pid": os.getpid(),
            "state": "paused",
            "step": 3,
            "total_steps": 10,
            "device": "cpu",
            "model": "lstm",
            "best_val_loss": 4.0,
        },
    )
    _metrics(runs_root / "nostatus", 12, state="finished")
    _metrics(runs_root / "damaged", 10)
    (runs_root / "damaged" / STATUS_FILE).write_text("{not json")
    (runs_root / "just-a-folder").mkdir()

    by_name = {s.name: s for s in scan_runs(runs_root)}
    assert set(by_name) == {"real", "killed", "alive", "nostatus", "damaged"}
    r = by_name["real"]
    assert (r.state, r.step, r.total_steps, r.device, r.model) == ("finished", 4, 4, "cpu", "transformer")
    assert r.best_val_loss is not None and r.best_val_loss > 0 and r.updated is not None
    k = by_name["killed"]
    assert k.state == "crashed" and "is gone" in k.note and k.step == 7
    a = by_name["alive"]
    assert a.state == "paused" and a.pid == os.getpid() and a.best_val_loss == 4.0
    n = by_name["nostatus"]
    assert (n.state, n.step, n.total_steps, n.device, n.model) == ("finished", 12, 50, "cuda:1", "hybrid")
    assert abs(n.best_val_loss - 2.0) < 1e-9  # evals at 5 and 10: 2.5, 2.0
    d = by_name["damaged"]
    assert d.state == "crashed" and d.step == 10  # running per its records, but its pid is dead

    table = format_runs_table(list(by_name.values()))
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "STEP", "BEST", "VAL", "DEVICE", "PID", "MODEL", "UPDATED"]
    header_state = lines[0].index("STATE")
    for line in lines[1:6]:
        assert line[header_state - 2 : header_state] == "  "  # columns line up
    assert "12/50" in table and "2.0000" in table and "notes:" in table


def test_nexus_runs_command(runs_root: Path, engine_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "--root", str(runs_root), "runs"],
        env=engine_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("no runs yet")
    _metrics(runs_root / "x", 5, state="stopped")
    out = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "--root", str(runs_root), "runs"],
        env=engine_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "x" in out.stdout and "stopped" in out.stdout and "5/50" in out.stdout
    assert scan_runs(runs_root / "missing") == []


def test_nexus_runs_takes_root_after_the_command_and_a_closed_reader_is_no_error(
    runs_root: Path, engine_env: dict[str, str]
) -> None:
    for i in range(3):
        _metrics(runs_root / f"r{i}", 5, state="stopped")
    out = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "runs", "--root", str(runs_root)],
        env=engine_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and all(f"r{i}" in out.stdout for i in range(3)), out.stderr
    # `nexus runs | head -1`: the reader is gone before the listing is written (EPIPE for certain).
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_tui", "runs", "--root", str(runs_root)],
        env=engine_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_toml_is_read_in_one_place_that_works_on_python_3_10() -> None:
    """cli.py once imported tomllib unconditionally (a traceback on 3.10): only nexus_core/config.py
    may import a TOML reader, and it falls back to tomli there."""
    importers = [
        p.relative_to(ROOT).as_posix()
        for pkg in ("engine", "nexus_tui", "nexus_core", "nexus")
        for p in (ROOT / pkg).rglob("*.py")
        if "import tomllib" in p.read_text() or "from tomllib" in p.read_text()
    ]
    assert importers == ["nexus_core/config.py"]
    text = (ROOT / "nexus_core" / "config.py").read_text()
    assert "import tomli as tomllib" in text and "sys.version_info >= (3, 11)" in text
