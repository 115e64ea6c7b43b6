"""`nexus import-tb`: event files written by torch's own SummaryWriter, imported through the console
script, then read back through `nexus runs`, `nexus compare`, `nexus export` and the store; damaged
log folders give one line and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import ROOT
from support.reporter import nexus_runs
from torch.utils.tensorboard import SummaryWriter

from nexus_core import protocol as P
from nexus_tui.documents.comparison import load_runs

STEPS = 12


def f32(x: float) -> float:
    """What an event file keeps of a Python float (scalars are stored as float32)."""
    return float(np.float32(x))


def write_logdir(logdir: Path) -> None:
    """A training loop's TensorBoard logs: train scalars every step, val every 4, plus a Keras-style
    `validation/` subfolder."""
    w = SummaryWriter(str(logdir))
    for step in range(1, STEPS + 1):
        w.add_scalar("train/loss", 3.0 / step, step)
        w.add_scalar("lr", 1e-3 * step, step)
        w.add_scalar("train/acc", step / 100, step)
        w.add_scalar("tokens", step * 4096, step)
        if step % 4 == 0:
            w.add_scalar("val/loss", 4.0 / step, step)
            w.add_scalar("val/acc", step / 50, step)
    w.close()
    v = SummaryWriter(str(logdir / "validation"))
    for step in (4, 8, 12):
        v.add_scalar("epoch_accuracy", step / 20, step)
    v.close()


def nexus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nexus_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_import_makes_a_run_every_reader_shows(tmp_path: Path) -> None:
    logdir, root = tmp_path / "tb" / "my-exp", tmp_path / "runs"
    write_logdir(logdir)
    done = nexus("--root", str(root), "import-tb", str(logdir))
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"imported {STEPS} steps from 2 event file(s)")
    run = root / "my-exp"
    assert sorted(p.name for p in root.iterdir()) == ["my-exp"]  # no temporary folder left

    records = P.read_records(run / P.METRICS_FILE)
    assert records.warnings == []
    recs = records.records
    assert recs[0].type == "hello" and recs[0].source == "tensorboard" and recs[0].run == "my-exp"
    assert recs[-1].type == "state" and recs[-1].state == "finished" and recs[-1].step == STEPS
    metrics = {r.step: r for r in recs if r.type == "metric"}
    evals = {r.step: r for r in recs if r.type == "eval"}
    assert sorted(metrics) == list(range(1, STEPS + 1)) and sorted(evals) == [4, 8, 12]
    for step, m in metrics.items():
        assert m.loss == f32(3.0 / step) and m.lr == f32(1e-3 * step) and m.tokens == step * 4096
        assert dict(m.extra) == {"train/acc": f32(step / 100)}
    for step, e in evals.items():
        assert e.val_loss == f32(4.0 / step) and e.tokens == step * 4096
        assert dict(e.extra) == {"val/acc": f32(step / 50), "validation/epoch_accuracy": f32(step / 20)}
    assert [evals[s].best for s in (4, 8, 12)] == [True, True, True]

    row = nexus_runs(root)["my-exp"]
    assert row[1] == "finished" and row[2] == f"{STEPS}/{STEPS}" and row[3] == f"{f32(4.0 / 12):.4f}"

    store, names = load_runs(root, ["my-exp"])  # what the dashboard's compare screen folds
    view = store.get("my-exp")
    assert names == ["my-exp"] and view.step == STEPS and view.best_val_loss == pytest.approx(f32(4.0 / 12))
    compare = nexus("--root", str(root), "compare", "my-exp")
    assert compare.returncode == 0 and "my-exp" in compare.stdout
    export = nexus("--root", str(root), "export", "my-exp", "--csv")
    assert export.returncode == 0 and f"my-exp,eval,12,{12 * 4096}," in export.stdout
    assert "validation/epoch_accuracy" in export.stdout
    report = nexus("--root", str(root), "report", "my-exp")  # a run with no engine config: dashes, not None
    assert report.returncode == 0 and "(eval every –, checkpoint every –)" in report.stdout, report.stdout[
        :1500
    ]


def test_names_and_taken_names(tmp_path: Path) -> None:
    logdir, root = tmp_path / "tb", tmp_path / "runs"
    write_logdir(logdir)
    assert nexus("--root", str(root), "import-tb", str(logdir), "--name", "first").returncode == 0
    taken = nexus("--root", str(root), "import-tb", str(logdir), "--name", "first")
    assert taken.returncode == 2 and taken.stderr.count("\n") == 1 and "already exists" in taken.stderr
    bad = nexus("--root", str(root), "import-tb", str(logdir), "--name", "../escape")
    assert bad.returncode == 2 and bad.stderr.startswith("error: run name") and bad.stderr.count("\n") == 1
    assert sorted(p.name for p in root.iterdir()) == ["first"]


def _one_event_file(logdir: Path) -> Path:
    (path,) = logdir.glob("events.out.tfevents.*")
    return path


def test_damaged_logdirs_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    good = tmp_path / "good"
    w = SummaryWriter(str(good))
    for step in range(1, 6):
        w.add_scalar("loss", 1.0 / step, step)
    w.close()
    data = _one_event_file(good).read_bytes()

    flipped = tmp_path / "flipped"
    flipped.mkdir()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    (flipped / _one_event_file(good).name).write_bytes(bytes(bad))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "events.out.tfevents.1.host").write_bytes(b"not an event file at all" * 10)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no events here")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (flipped, "not a readable TensorBoard event file"),
        (junk, "not a readable TensorBoard event file"),
        (empty, "no TensorBoard event files"),
        (a_file, "is not a folder"),
        (tmp_path / "missing", "is not a folder"),
    ]
    for logdir, words in cases:
        done = nexus("--root", str(root), "import-tb", str(logdir), "--name", "x")
        assert done.returncode == 2, (logdir, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert words in done.stderr and done.stdout == ""
        assert not root.exists() or list(root.iterdir()) == []

    # A writer killed mid-record: the whole records are imported, and the cut-off one is named.
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / _one_event_file(good).name).write_bytes(data[:-7])
    done = nexus("--root", str(root), "import-tb", str(torn), "--name", "torn")
    assert done.returncode == 0 and "cut-off last record" in done.stderr, done.stderr
    steps = [r.step for r in P.read_records(root / "torn" / P.METRICS_FILE).records if r.type == "metric"]
    assert steps == [1, 2, 3, 4]


def test_tensorboard_summary_writer_scalars_import(tmp_path: Path) -> None:
    """TensorBoard's own writer files scalars as TF2 tensors, not `simple_value`s: read those too."""
    from tensorboard.summary import Writer

    logdir, root = tmp_path / "tf2", tmp_path / "runs"
    w = Writer(str(logdir))
    for step in range(0, 30, 3):
        w.add_scalar("eval/loss", 5.0 - step / 10, step, wall_time=1_700_000_000 + step)
        w.add_scalar("loss", 6.0 - step / 10, step, wall_time=1_700_000_000 + step)
        w.add_scalar("grad_norm", 0.5, step, wall_time=1_700_000_000 + step)
    w.close()
    done = nexus("--root", str(root), "import-tb", str(logdir), "--name", "tf2")
    assert done.returncode == 0, done.stderr
    recs = P.read_records(root / "tf2" / P.METRICS_FILE).records
    metrics = {r.step: r for r in recs if r.type == "metric"}
    evals = {r.step: r for r in recs if r.type == "eval"}
    assert sorted(metrics) == sorted(evals) == list(range(0, 30, 3))
    for step in metrics:
        assert metrics[step].loss == f32(6.0 - step / 10) and metrics[step].gnorm == 0.5
        assert evals[step].val_loss == f32(5.0 - step / 10)
        assert metrics[step].time == 1_700_000_000 + step
    assert nexus_runs(root)["tf2"][1] == "finished"


def test_without_tensorboard_it_says_what_to_install(tmp_path: Path) -> None:
    write_logdir(tmp_path / "tb")
    block = (
        "import sys; sys.modules['tensorboard'] = None; from nexus_tui.__main__ import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", block, "--root", str(tmp_path / "runs"), "import-tb", str(tmp_path / "tb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and "pip install 'nexus[tensorboard]'" in done.stderr
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


async def test_the_dashboard_lists_an_imported_run(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_tui import format as fmt
    from nexus_tui.app import NexusApp
    from nexus_tui.widgets.run_table import RunTable

    write_logdir(tmp_path / "tb")
    assert nexus("--root", str(runs_root), "import-tb", str(tmp_path / "tb"), "--name", "old").returncode == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(RunTable)
        deadline = 60.0
        while "old" not in table.rows and deadline > 0:
            await pilot.pause(0.1)
            deadline -= 0.1
        assert "old" in table.rows
        while str(table.get_cell("old", "best")) != fmt.loss(f32(4.0 / 12)) and deadline > 0:
            await pilot.pause(0.1)
            deadline -= 0.1
        assert str(table.get_cell("old", "best")) == fmt.loss(f32(4.0 / 12))
        assert table.get_cell("old", "state").plain.startswith("finished")
        await pilot.pause()  # let the table's selection message land before the app shuts down


def test_a_logdir_of_several_runs_with_hparams_histograms_images_and_text(tmp_path: Path) -> None:
    """Two runs written by torch's SummaryWriter (each with add_hparams, add_histogram, add_image and
    add_text) import as two runs: hparams as config, their metrics as summary, the rest as records."""
    import json

    logdir, root = tmp_path / "sweep", tmp_path / "runs"
    rng = np.random.default_rng(0)
    for run, lr in (("lr-small", 0.01), ("lr-big", 0.1)):
        w = SummaryWriter(str(logdir / run))
        for step in range(1, 4):
            w.add_scalar("train/loss", lr / step, step)
            w.add_histogram("weights", rng.normal(size=200), step)
            w.add_text("notes", f"{run} at {step}", step)
        w.add_image("picture", rng.random((3, 4, 5)), 3)
        w.add_hparams({"lr": lr, "optimizer": "adam"}, {"hparam/final_loss": lr / 3})
        w.close()
    done = nexus("--root", str(root), "import-tb", str(logdir))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.iterdir()) == ["sweep-lr-big", "sweep-lr-small"]
    assert done.stderr.count("imported 3 steps and 7 histograms/images/texts") == 2
    for run, lr in (("lr-small", 0.01), ("lr-big", 0.1)):
        folder = root / f"sweep-{run}"
        recs = P.read_records(folder / P.METRICS_FILE).records
        assert recs[0].config == {"lr": pytest.approx(lr), "optimizer": "adam"}
        assert json.loads((folder / "summary.json").read_text()) == {
            "hparam/final_loss": pytest.approx(f32(lr / 3))
        }
        assert [r.loss for r in recs if r.type == "metric"] == [f32(lr / s) for s in (1, 2, 3)]
        assert not any("hparam" in k for r in recs if r.type == "metric" for k in r.extra)
        texts = [(r.step, r.key, r.text) for r in recs if r.type == P.TEXT]
        assert texts == [(s, "notes", f"{run} at {s}") for s in (1, 2, 3)]  # on its own step
        hists = [r for r in recs if r.type == P.HISTOGRAM]
        assert [h.step for h in hists] == [1, 2, 3] and all(sum(h.counts) == 200 for h in hists)
        assert all(len(h.edges) == len(h.counts) + 1 and h.edges[0] < h.edges[-1] for h in hists)
        (image,) = [r for r in recs if r.type == P.MEDIA]
        assert image.step == 3 and (image.width, image.height) == (5, 4)
        assert (folder / image.path).read_bytes().startswith(b"\x89PNG")
