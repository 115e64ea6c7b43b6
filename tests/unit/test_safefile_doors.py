"""The file door's own promises, on real files: atomic replace with unique temp names that leaves the
old file whole on failure, no write through a link out of the folder, appends that name a FIFO, and
readers that stop at a sparse file's first hole (docs/SECURITY.md "The two doors")."""

from __future__ import annotations

import errno
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


def test_read_private_refuses_what_this_user_did_not_write_alone(tmp_path: Path) -> None:
    """The queue's reader: a link, a FIFO, a file others may write, or one past the cap is refused
    with a reason (the errno says which); a file of ours, mode 0600, is read whole."""
    ours = tmp_path / "queue.json"
    ours.write_bytes(b"{}")
    ours.chmod(0o600)
    assert safefile.read_private(ours) == b"{}"
    link = tmp_path / "link.json"
    link.symlink_to(ours)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo, 0o600)
    shared = tmp_path / "shared.json"
    shared.write_bytes(b"{}")
    shared.chmod(0o622)
    for path, code, words in [
        (link, "ELOOP", "symlink"),
        (fifo, "EINVAL", "FIFO"),
        (shared, "EPERM", "not written by this user alone"),
    ]:
        with pytest.raises(safefile.UnsafeFileError, match=words) as e:
            safefile.read_private(path)
        assert e.value.errno == getattr(errno, code)
    with pytest.raises(safefile.UnsafeFileError, match="more than the 1 allowed"):
        safefile.read_private(ours, max_bytes=1)
    with pytest.raises(FileNotFoundError):
        safefile.read_private(tmp_path / "missing.json")
