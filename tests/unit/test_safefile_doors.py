"""The file door's own promises, on real files: atomic replace with unique temp names that leaves the
old file whole on failure, no write through a link out of the folder, appends that name a FIFO, and
readers that stop at a sparse file's first hole (docs/SECURITY.md "The two doors")."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from support.runfolder import write_finished

from nexus_core import safefile
from nexus_core.records import read_records


def test_atomic_write_leaves_the_old_file_whole_and_no_temp_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "status"
    target.write_text("old")
    with pytest.raises(RuntimeError), safefile.atomic_writer(target) as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["status"]


def test_concurrent_atomic_writers_never_share_a_temp_name(tmp_path: Path) -> None:
    target = tmp_path / "status"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(50):
                safefile.atomic_write(target, f"writer {n}\n" * 100)
        except BaseException as e:  # noqa: BLE001 - collected for the assert
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    text = target.read_text()
    assert len(set(text.splitlines())) == 1, "a torn mix of two writers"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status"]


def test_no_atomic_write_through_a_folder_that_links_out(tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (run / "sub").symlink_to(outside)
    with pytest.raises(safefile.UnsafeFileError, match="leads outside"):
        safefile.atomic_write(run / "sub" / "x.json", "{}", within=run)
    assert list(outside.iterdir()) == []
    with pytest.raises(safefile.UnsafeFileError, match="symlink"):
        safefile.private_dir(run, "sub")


def test_append_names_a_fifo_instead_of_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "engine.log")
    with pytest.raises(safefile.UnsafeFileError, match="FIFO"):
        safefile.open_append(tmp_path / "engine.log")


def test_readers_stop_at_a_sparse_files_first_hole(tmp_path: Path) -> None:
    run = tmp_path / "run"
    written = write_finished(run, 50)
    path = run / "metrics.msgpack"
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size + (8 << 30))  # 8 GiB of hole after the records
    got = read_records(path)
    assert len(got.records) == len(written)
    assert any("after a hole" in w.text for w in got.warnings)
    with safefile.open_regular(path) as f:
        assert size <= safefile.data_end(f, path.stat().st_size) < path.stat().st_size
