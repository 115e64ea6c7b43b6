"""Hostile run folders for the hostile-folder tests (tests/integration/test_hostile_folders.py and
tests/ui/test_hostile_dashboard.py): one real run copied, then one file of it made a symlink out of the
folder, a FIFO, a directory, /dev/zero, a huge sparse file or a lying variant."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from support.engine import run_engine
from support.preset import TINY

CKPT = "checkpoints/step_000004"
FILES = {
    "metrics": "metrics.msgpack",
    "status": "status",
    "config": "config.toml",
    "log": "engine.log",
    "cache": ".nexus-cache/metrics.cols",
    "meta": f"{CKPT}/meta.json",
    "weights": f"{CKPT}/model.safetensors",
    "tokenizer": "tokenizer.json",
    "socket": "control.sock",
    "view": ".nexus-view.json",
}
KINDS = ("link_out", "fifo", "directory", "dev_zero", "sparse", "lying")
LIES: dict[str, bytes] = {
    "metrics": b"\xdf\xff\xff\xff\xff" + b"\x00" * 64,  # a map claiming 4 billion keys
    "status": b'{"pid": 1, "state": "running", "step": 1e400, "updated": "never"}',
    "config": b'[data]\nsource = "/etc"\ntokenizer = "byte"\n[model]\nd_model = -1\n',
    "log": b"\x1b]52;c;UFdORUQ=\x07\x1b[2J planted\n" * 10,
    "cache": (
        b"NXCOLS1\n"
        + (60).to_bytes(8, "little")
        + b'{"meta": {"version": 5}, "arrays": {"seq": [0, "<f8", 99]}}'
    ),
    "meta": b'{"step": 4, "optimizer": {"state": 7}, "format": 999, "name": "../../../etc"}',
    "weights": b"\xff" * 8 + b"{}",
    "tokenizer": b'{"model": {"type": "BPE", "vocab": 5}}',
    "socket": b"not a socket",
    "view": b'{"hidden": [' + b"[" * 50000 + b"]" * 50000 + b"]}",
}


def train_base(folder: Path) -> Path:
    """One real run (4 steps, a checkpoint at 4): the base every hostile variant is copied from."""
    run = folder / "base"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "4",
        *TINY,
        "--set",
        "train.ckpt_every=4",
        "--set",
        "train.eval_every=0",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run / "engine.lock").unlink(missing_ok=True)
    return run


def canary(folder: Path) -> Path:
    """The folder outside the runs that every outward link points at, with the user's files in it."""
    folder.mkdir()
    (folder / "canary").write_text("the user's own file\n")
    (folder / "folder").mkdir()
    (folder / "folder" / "canary").write_text("another\n")
    return folder


def plant(path: Path, kind: str, what: str, outside: Path) -> None:
    """Make `path` the hostile `kind` of file (the parent folder exists)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if kind == "link_out":
        os.symlink(outside / ("folder" if what == "cache" else "canary"), path)
        if what == "cache":  # the cache's folder itself leads out
            path.unlink()
            shutil.rmtree(path.parent, ignore_errors=True)
            os.symlink(outside / "folder", path.parent)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    elif kind == "sparse":
        with path.open("wb") as f:
            f.truncate(8 << 30)
    else:
        path.write_bytes(LIES[what])


def make_variant(base: Path, root: Path, what: str, kind: str, outside: Path) -> Path:
    run = root / f"{what}-{kind}"
    shutil.copytree(base, run, symlinks=True)
    target = run / FILES[what]
    target.parent.mkdir(parents=True, exist_ok=True)
    plant(target, kind, what, outside)
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
