"""Damaged or planted files in a run folder are one line, never a traceback or a hang.

Each fault is made for real: os.mkfifo where a file should be, a symlink to /dev/zero, a directory,
a sparse multi-gigabyte status file, a checkpoint meta.json of the wrong types or nested 100 000
deep, a FIFO instead of a tensor file, TOML with a BOM or nested past the parser's stack, a 300-byte
run name, settings.json with Infinity. A hang fails through pytest-timeout (and the subprocess
timeouts), so "it did not hang" is proved, not hoped.
"""

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
from support import ROOT
from support.engine import engine_env, run_engine
from support.preset import TINY
from support.runfolder import snapshot

from nexus_core import protocol as P
from nexus_tui.app import NexusApp
from nexus_tui.documents.runs_index import summarize_run
from nexus_tui.settings import load_settings
from nexus_tui.widgets.log_pane import LogPane
from nexus_tui.widgets.run_table import RunTable

pytestmark = pytest.mark.timeout(180)


def one_line_error(done: subprocess.CompletedProcess, pattern: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert re.search(pattern, lines[0]), lines[0]


def nexus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nexus_tui", *args],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def dev_zero(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


PLANTS = {
    "fifo": (fifo, "FIFO"),
    "dev-zero": (dev_zero, "character device"),
    "directory": (directory, "directory"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "kept"
    done = run_engine("train", "--run-dir", str(run), "--steps", "3", *TINY, "--set", "train.ckpt_every=3")
    assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "copy"
    shutil.copytree(trained, run, symlinks=True)
    return run


# -- the metrics and status files ----------------------------------------------------------------


@pytest.mark.parametrize("plant", PLANTS)
def test_a_metrics_file_that_is_not_a_file_is_one_line_for_runs_compare_and_resume(
    copy: Path, plant: str
) -> None:
    make, word = PLANTS[plant]
    make(copy / P.METRICS_FILE)
    listed = nexus("--root", str(copy.parent), "runs")  # the status file answers: metrics not read
    assert listed.returncode == 0 and "copy" in listed.stdout and "Traceback" not in listed.stderr, (
        listed.stderr
    )
    (copy / P.STATUS_FILE).unlink()  # now `nexus runs` must read the metrics file, and must not hang
    listed = nexus("--root", str(copy.parent), "runs")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert re.search(rf"copy: cannot read {P.METRICS_FILE}: is (a |an )?{word}", listed.stdout), listed.stdout
    compared = nexus("compare", "--root", str(copy.parent), "copy")
    one_line_error(compared, rf"{P.METRICS_FILE}: is (a |an )?{word}")
    one_line_error(
        run_engine("resume", "--run-dir", str(copy), "--steps", "6", "--threads", "1", timeout=120), word
    )
    assert summarize_run(copy).note  # the reader the dashboard's picker uses says why too


@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "huge", "deep"])
def test_a_status_file_that_is_not_a_small_json_file_is_ignored(copy: Path, plant: str) -> None:
    status = copy / P.STATUS_FILE
    if plant == "huge":
        with open(status, "wb") as f:
            f.truncate(3 << 30)  # sparse: 3 GiB that a reader would otherwise load whole
    elif plant == "deep":
        status.write_text("[" * 200_000 + "]" * 200_000)
    else:
        PLANTS[plant][0](status)
    assert P.read_status(copy) is None
    listed = nexus("--root", str(copy.parent), "runs")
    assert listed.returncode == 0 and "copy" in listed.stdout and "Traceback" not in listed.stderr, (
        listed.stderr
    )


# -- checkpoints ---------------------------------------------------------------------------------


def _meta_path(run: Path) -> Path:
    return (run / "checkpoints" / "latest").resolve() / "meta.json"


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda m: {**m, "step": "abc"}, r"step = 'abc' \(str\), not int"),
        (lambda m: {**m, "config": 5}, r"config = '5' \(int\), not dict"),
        (lambda m: {**m, "tokens": True}, r"tokens = 'True' \(bool\)"),
        (lambda m: {**m, "config": {**m["config"], "model": [1, 2]}}, r"sections are not tables"),
        (lambda m: [m], r"is a JSON list"),
        (lambda m: "[" * 100_000 + "]" * 100_000, r"nested too deeply"),
        (
            lambda m: json.dumps(m).replace('"lr_scale": 1.0', '"lr_scale": Infinity'),
            r"Infinity is not a JSON number",
        ),
    ],
)
def test_a_checkpoint_meta_of_the_wrong_types_is_one_line(copy: Path, damage, pattern: str) -> None:
    meta_path = _meta_path(copy)
    damaged = damage(json.loads(meta_path.read_text()))
    meta_path.write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    before = snapshot(copy)
    one_line_error(run_engine("resume", "--run-dir", str(copy), "--threads", "1", timeout=120), pattern)
    assert snapshot(copy) == before


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_for_a_tensor_file_is_one_line(copy: Path, plant: str) -> None:
    PLANTS[plant][0](_meta_path(copy).parent / "model.safetensors")
    one_line_error(
        run_engine("resume", "--run-dir", str(copy), "--threads", "1", timeout=120),
        rf"model.safetensors is (a |an )?{PLANTS[plant][1]}",
    )
    one_line_error(
        run_engine("eval", "--run-dir", str(copy), "--batches", "1", timeout=120), PLANTS[plant][1]
    )


# -- configs and names ---------------------------------------------------------------------------


def test_toml_with_a_bom_is_read_and_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[train]\nsteps = 2\n")
    run = tmp_path / "runs" / "bom"
    done = run_engine("train", "--run-dir", str(run), "--config", str(bom), *TINY, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    assert P.read_status(run)["step"] == 2
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    one_line_error(
        run_engine("train", "--run-dir", str(tmp_path / "runs" / "deep"), "--config", str(deep), *TINY),
        r"nested too deeply",
    )
    planted = tmp_path / "fifo.toml"
    os.mkfifo(planted)
    one_line_error(
        run_engine("train", "--run-dir", str(tmp_path / "runs" / "f"), "--config", str(planted), *TINY),
        r"FIFO",
    )
    assert not (tmp_path / "runs" / "deep").exists() and not (tmp_path / "runs" / "f").exists()


def test_a_300_character_run_name_is_one_line_everywhere(tmp_path: Path) -> None:
    long = tmp_path / "runs" / ("x" * 300)
    for command in (["train", *TINY], ["resume"], ["generate"], ["eval"]):
        done = run_engine(command[0], "--run-dir", str(long), *command[1:])
        # train checks the name against the run-name rule first (nexus_core.names); the others find no run folder there or meet the OS limit
        one_line_error(done, r"(too long|File name too long|up to 64|not a run folder)")
    one_line_error(run_engine("train", "--name", "y" * 300, *TINY), r"(--name|up to 64)")
    listed = nexus("--root", str(long), "runs")
    assert "Traceback" not in listed.stderr and listed.returncode in (0, 2), listed.stderr
    compared = nexus("compare", "--root", str(tmp_path), "z" * 300)
    one_line_error(compared, r"too long")


# -- the dashboard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"ema": Infinity}',
        b'{"window": 1e400}',
        b'{"ema": NaN, "theme": [1]}',
        b"\x00garbage{{",
        b'{"theme": {"a": 1}}',
        b"[" * 100_000,
    ],
)
def test_settings_with_infinity_or_garbage_give_defaults_and_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    settings, warning = load_settings(path)
    assert settings.ema == settings.ema and 0 <= settings.ema <= 0.99 and isinstance(settings.theme, str)
    if content.startswith(b'{"theme"'):
        assert settings.theme == "nexus-dark"
    else:
        assert warning and "\n" not in warning and "using defaults" in warning


async def test_the_dashboard_starts_over_damaged_folders_and_settings(tmp_path: Path, copy: Path) -> None:
    root = copy.parent
    for name, target, plant in (
        ("m-fifo", P.METRICS_FILE, fifo),
        ("m-zero", P.METRICS_FILE, dev_zero),
        ("m-dir", P.METRICS_FILE, directory),
        ("s-fifo", P.STATUS_FILE, fifo),
        ("log-fifo", P.LOG_FILE, fifo),
    ):
        d = root / name
        shutil.copytree(copy, d, symlinks=True)
        plant(d / target)
    (root / "log-fifo" / P.STATUS_FILE).write_text(json.dumps({"state": "running", "pid": 999_999_999}))
    settings = tmp_path / "settings.json"
    settings.write_text('{"ema": Infinity, "window": 1e400}')
    app = NexusApp(root, settings_path=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 60
        while not app._replayed and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert app._replayed, "the start-up replay never finished"
        table = app.query_one(RunTable)
        while time.monotonic() < deadline and not {"copy", "s-fifo", "log-fifo"} <= set(table.rows):
            await pilot.pause(0.1)
        assert {"copy", "s-fifo", "log-fifo"} <= {str(k.value) for k in table.rows}
        log = app.query_one(LogPane).lines_written
        assert any("settings file" in line and "using defaults" in line for line in log), log[:5]
        assert any("m-dir" in line and "is a directory" in line for line in log), log
        await pilot.press("t")  # still answers keys
        assert app.is_running


def test_nexus_runs_into_a_closed_pipe_and_with_its_own_root(copy: Path) -> None:
    for i in range(1500):  # ~150 kB of listing: more than a pipe holds, so the writer meets the closed end
        (copy.parent / f"more-{i:04d}").mkdir()
        P.write_status(
            copy.parent / f"more-{i:04d}",
            {"state": "finished", "step": i, "total_steps": 9999, "device": "cpu", "model": "transformer"},
        )
    proc = subprocess.run(
        f"{sys.executable} -m nexus_tui runs --root {copy.parent} | head -1",
        shell=True,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (
        proc.stdout.startswith("NAME") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    ), proc.stderr
    listed = nexus("runs", "--root", str(copy.parent))
    assert listed.returncode == 0 and "copy" in listed.stdout, listed.stderr
