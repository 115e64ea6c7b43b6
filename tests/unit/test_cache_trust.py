"""The derived cache is never trusted more than the records (issue 18): a header that lies about a
column's dtype, NaN/inf or fractional steps, a same-length rewrite in the middle of the metrics file,
a FIFO where the cache is, a `.nexus-cache` that links out of the run folder: each means the cache is
not used (and not written through), and the history read is the records' own."""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from support.runfolder import write_finished

from nexus_core.protocol import METRICS_FILE
from nexus_tui.history.columnar import cachefile, colcache
from nexus_tui.history.columnar.fastdecode import ColumnDecoder, MetricBlock
from nexus_tui.history.reader import read_pieces


@pytest.fixture
def run(tmp_path: Path) -> Path:
    write_finished(tmp_path / "long", 9000)
    data = (tmp_path / "long" / METRICS_FILE).read_bytes()
    assert colcache.save(tmp_path / "long", ColumnDecoder().feed(data), len(data))
    assert colcache.load(tmp_path / "long") is not None
    return tmp_path / "long"


def _rewrite(path: Path, change) -> None:
    """Edit a cache file's JSON header (and maybe its bytes) in place, as an attacker would."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + size])
    change(header, data)
    new = json.dumps(header).encode()
    first = min(at for at, _, _ in header["arrays"].values())
    assert 16 + len(new) <= first
    data[8:16] = len(new).to_bytes(8, "little")
    data[16 : 16 + len(new)] = new
    path.write_bytes(bytes(data))


def _steps(pieces) -> np.ndarray:
    return np.concatenate([p.step for p in pieces if isinstance(p, MetricBlock)])


@pytest.mark.parametrize("dtype", ["<i8", "|u1", "<f4", "O", "<U8", ">f8"])
def test_a_header_naming_another_dtype_is_not_used(run: Path, dtype: str) -> None:
    def change(header, _data) -> None:
        header["arrays"]["step"][1] = dtype

    _rewrite(cachefile.cache_path(run), change)
    assert colcache.load(run) is None
    assert cachefile.cached_offset(run) is None
    assert len(_steps(read_pieces(run).pieces)) == 9000  # the records, read whole


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 2.5, 2.0**60])
def test_steps_no_record_can_hold_are_not_used(run: Path, bad: float) -> None:
    def change(header, data) -> None:
        at = header["arrays"]["step"][0]
        data[at + 8 * 100 : at + 8 * 101] = struct.pack("<d", bad)

    _rewrite(cachefile.cache_path(run), change)
    assert colcache.load(run) is None
    steps = _steps(read_pieces(run).pieces)
    assert np.isfinite(steps).all() and steps.max() == 9000 and len(steps) == 9000


@pytest.mark.parametrize("field", ["offset", "count"])
def test_columns_that_disagree_or_reach_past_the_file_are_not_used(run: Path, field: str) -> None:
    def change(header, _data) -> None:
        spec = header["arrays"]["tokens"]
        if field == "offset":
            spec[0] = 1 << 40
        else:
            spec[2] -= 1

    _rewrite(cachefile.cache_path(run), change)
    assert colcache.load(run) is None


def test_a_same_length_rewrite_in_the_middle_of_the_records_is_noticed(run: Path) -> None:
    path = run / METRICS_FILE
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    at = data.index(b"loss", middle) + 5  # a float64 value after the key: same length, new value
    assert data[at - 1] == 0xCB
    data[at : at + 8] = struct.pack(">d", 123.0)
    path.write_bytes(bytes(data))
    assert colcache.load(run) is None, "the cache still claims the rewritten bytes"


def test_a_fifo_where_the_cache_is_never_blocks(run: Path) -> None:
    cache = cachefile.cache_path(run)
    cache.unlink()
    os.mkfifo(cache)
    result: list[object] = []
    t = threading.Thread(
        target=lambda: result.append((colcache.load(run), cachefile.cached_offset(run))), daemon=True
    )
    t.start()
    t.join(60)
    assert not t.is_alive(), "reading a FIFO cache blocked"
    assert result == [(None, None)]


def test_a_cache_folder_that_links_out_of_the_run_is_not_written_through(run: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / cachefile.CACHE_FILE).write_bytes(b"the user's own file")
    folder = run / cachefile.CACHE_DIR
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.symlink_to(outside)
    data = (run / METRICS_FILE).read_bytes()
    assert not colcache.save(run, ColumnDecoder().feed(data), len(data))
    assert colcache.load(run) is None
    read_pieces(run)  # the CLI's read path, which leaves a cache behind when it can
    assert sorted(p.name for p in outside.iterdir()) == [cachefile.CACHE_FILE]
    assert (outside / cachefile.CACHE_FILE).read_bytes() == b"the user's own file"
