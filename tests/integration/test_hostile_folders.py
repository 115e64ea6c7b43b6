"""The hostile-folder test (issue 18, docs/SECURITY.md "The two doors"): run folders in which each
file in turn is a symlink out of the folder, a FIFO, a directory, /dev/zero, a huge sparse file or a
lying variant, and every command-line entry point run against them under a deadline.

What must hold for every one: nothing hangs (each command has a deadline), no traceback, no byte
written outside the run folder (a canary folder, the target of every outward link, is compared byte
for byte), and no code imported from the working directory (each command runs from a folder holding
planted `numpy/`, `msgspec/`, `engine/`, `torch/` and `safetensors/` packages that would leave a
marker). The `nexus` console script is used, as a person types it (not `python -m`, which would
put the working directory on sys.path by itself).

Kept modest for the 2-core CI box: one real training run is copied into every variant (module
fixture); the documents (`runs`, `compare`, `report`, `export`) take all the variants of one kind in
one command; the torch commands (`resume`, `generate`, `eval`) take the files they read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.engine import engine_env
from support.hostile_folders import FILES, KINDS, canary, make_variant, snapshot, train_base

PLANTED = ("numpy", "msgspec", "engine", "torch", "safetensors")
DEADLINE_S = 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_base(tmp_path_factory.mktemp("base"))


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A runs root, a canary folder outside it (the target of every outward link), and a working
    directory holding planted packages that would write a marker if imported."""
    outside = canary(tmp_path / "outside")
    cwd = tmp_path / "project"
    marker = tmp_path / "PLANTED_RAN"
    for package in PLANTED:
        (cwd / package).mkdir(parents=True)
        (cwd / package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('{package}\\n')\n")
    root = tmp_path / "runs"
    root.mkdir()
    return {"root": root, "outside": outside, "cwd": cwd, "marker": marker}


def _nexus(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `nexus` console script, as a person runs it, from `cwd`, under the deadline."""
    script = Path(sys.executable).with_name("nexus")
    try:
        return subprocess.run(
            [str(script), *args],
            cwd=cwd,
            env={**engine_env(), "PYTHONPATH": ""},
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`nexus {' '.join(args)}` hung (no answer in {DEADLINE_S} s)")


def _check(
    done: subprocess.CompletedProcess, world: dict[str, Path], before: dict[str, bytes], what: str
) -> None:
    out = done.stdout + done.stderr
    assert "Traceback" not in out, f"{what}: {out[-3000:]}"
    assert done.returncode in (0, 1, 2), f"{what}: exit {done.returncode}: {out[-2000:]}"
    if done.returncode == 2:
        assert done.stderr.strip().splitlines()[-1].startswith("error: "), f"{what}: {done.stderr[-2000:]}"
    assert snapshot(world["outside"]) == before, f"{what}: wrote outside the run folder"
    assert not world["marker"].exists(), f"{what}: imported from the cwd: {world['marker'].read_text()}"


@pytest.mark.parametrize("kind", KINDS)
def test_the_documents_survive_every_hostile_file(trained: Path, world: dict[str, Path], kind: str) -> None:
    outside, root = world["outside"], world["root"]
    names = [make_variant(trained, root, what, kind, outside).name for what in FILES]
    before = snapshot(outside)
    _check(_nexus("runs", "--root", str(root), cwd=world["cwd"]), world, before, f"{kind}: nexus runs")
    for command in (["compare"], ["report"], ["export", "--csv"]):
        left = list(names)
        while left:  # a run refused (one `error:` line naming it) leaves the others to try again
            done = _nexus(*command, "--root", str(root), *left, cwd=world["cwd"])
            _check(done, world, before, f"{kind}: nexus {command[0]} {' '.join(left)}")
            if done.returncode != 2:
                break
            named = [n for n in left if f"{n}/" in done.stderr or f"'{n}'" in done.stderr]
            assert named, f"{kind}: nexus {command[0]} refused without naming the run: {done.stderr}"
            left.remove(named[0])


ENGINE_FILES = ("metrics", "status", "config", "log", "meta", "weights", "tokenizer", "socket")


@pytest.mark.parametrize("kind", ["link_out", "fifo", "lying"])
def test_the_engine_commands_survive_every_hostile_file(
    trained: Path, world: dict[str, Path], kind: str
) -> None:
    outside, root = world["outside"], world["root"]
    runs = {what: make_variant(trained, root, what, kind, outside) for what in ENGINE_FILES}
    before = snapshot(outside)
    tries: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("resume", lambda r: ["resume", "--run-dir", str(r), "--steps", "5", "--threads", "1"]),
        ("generate", lambda r: ["generate", "--run-dir", str(r), "--tokens", "4", "--seed", "1"]),
        ("eval", lambda r: ["eval", "--run-dir", str(r), "--batches", "1"]),
    ]
    for what, run in runs.items():
        for name, argv in tries:
            if name != "resume" and what in ("metrics", "status", "log", "socket"):
                continue  # generate and eval read the config, checkpoint and tokenizer only
            _check(_nexus(*argv(run), cwd=world["cwd"]), world, before, f"{kind} {what}: nexus {name}")


def test_import_tb_refuses_hostile_event_files(tmp_path: Path, world: dict[str, Path]) -> None:
    pytest.importorskip("tensorboard")
    before = snapshot(world["outside"])
    name = "events.out.tfevents.1700000000.host"
    cases: dict[str, Callable[[Path], None]] = {
        "fifo": lambda p: os.mkfifo(p),
        "directory": lambda p: p.mkdir(),
        "dev_zero": lambda p: os.symlink("/dev/zero", p),
        "huge_length": lambda p: p.write_bytes(_record_header(2**62) + b"\x00" * 32),
    }
    for case, make in cases.items():
        logdir = tmp_path / f"tb-{case}"
        logdir.mkdir()
        make(logdir / name)
        done = _nexus(
            "import-tb", str(logdir), "--root", str(world["root"]), "--name", f"tb-{case}", cwd=world["cwd"]
        )
        _check(done, world, before, f"import-tb {case}")
        assert done.returncode == 2, f"import-tb {case} should be refused: {done.stderr}"
        assert not (world["root"] / f"tb-{case}").exists()


def _record_header(length: int) -> bytes:
    """A TFRecord header claiming `length` bytes, with a valid masked CRC32C (TensorBoard's own)."""
    import struct

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    head = struct.pack("<Q", length)
    return head + struct.pack("<I", masked_crc32c(head))
