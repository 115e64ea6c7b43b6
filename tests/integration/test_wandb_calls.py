"""The 49 wandb calls people use, run with the real wandb (offline) and with `import nexus as wandb`,
side by side in two processes: any call that raises under Nexus fails the test; what each call left
in the run folder (records and files) is checked too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_core import protocol as P

SCRIPT = Path(__file__).parents[1] / "support" / "scripts" / "wandb_calls.py"


def _run(which: str, folder: Path) -> dict[str, dict]:
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(folder),
        "WANDB_CONFIG_DIR": str(folder / ".config"),
        "WANDB_CACHE_DIR": str(folder / ".cache"),
    }
    env.pop(P.RUN_DIR_ENV, None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), which, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert rows, f"{which}: no output\n{done.stderr[-3000:]}"
    return {r["call"]: r for r in rows}


def test_every_call_runs_on_nexus_side_by_side_with_wandb(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    (tmp_path / "w").mkdir()
    (tmp_path / "n").mkdir()
    real = _run("wandb", tmp_path / "w")
    ours = _run("nexus", tmp_path / "n")
    assert len(ours) == len(real) == 49
    table = "\n".join(
        f"{name:38} wandb: {'ok' if real[name]['ok'] else real[name]['error'][:50]:52} "
        f"nexus: {'ok' if r['ok'] else r['error']}"
        for name, r in ours.items()
    )
    raised = [name for name, r in ours.items() if not r["ok"]]
    assert not raised, f"calls that raise under Nexus:\n{table}"

    run_dir = tmp_path / "n" / "calls"  # dir="." is the root of the runs
    records = [r for r in P.read_records(run_dir / P.METRICS_FILE).records]
    kinds = {r.type for r in records}
    assert {P.TEXT, P.TABLE, P.HISTOGRAM, P.MEDIA} <= kinds
    texts = [r for r in records if r.type == P.TEXT]
    assert texts[0].key == "note" and texts[0].text == "hello"
    charts = {r.key: r.chart for r in records if r.type == P.TABLE}
    assert charts["table"] == "" and charts["pl"] == "line" and charts["cm"] == "confusion_matrix"
    image = next(r for r in records if r.type == P.MEDIA and r.kind == "image")
    assert (run_dir / image.path).read_bytes().startswith(b"\x89PNG") and image.caption == "noise"
    weights = next(r for r in records if r.type == P.HISTOGRAM and r.key == "weights")
    assert sum(weights.counts) == 100 and len(weights.edges) == len(weights.counts) + 1
    hello = [r for r in records if r.type == P.HELLO][-1]
    assert hello.meta["project"] == "drop-in" and hello.meta["metrics"]["loss"]["step_metric"] == "iter"
    assert hello.config["batch"] == 32 and hello.config["dropout"] == 0.1
    manifest = json.loads((run_dir / "files" / "artifacts" / "data" / "v0" / "manifest.json").read_text())
    assert manifest["files"][0]["path"] == "notes.txt" and len(manifest["files"][0]["sha256"]) == 64
    assert (run_dir / "files" / "saved" / "notes.txt").read_text() == "kept\n"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best"] == 0.1 and summary["final"] == 0.2
    assert set(summary["loss"]) == {"min"} and summary["loss"]["min"] <= 0.7
    assert sorted(p.name for p in (tmp_path / "n").iterdir() if (p / P.METRICS_FILE).exists()) == [
        "calls",
        "wandb_calls-1",
    ]  # the sweep run; mode="disabled" wrote nothing
