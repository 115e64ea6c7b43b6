"""Which runs are worth a prebuild child (`cachefile.worth_building`), judged from the cache's header
alone, on real caches and on hostile files where a cache would be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runfolder import write_finished

from nexus_core.protocol import METRICS_FILE
from nexus_tui.history.columnar import cachefile, colcache
from nexus_tui.history.columnar.fastdecode import ColumnDecoder


@pytest.fixture
def run(tmp_path: Path) -> Path:
    write_finished(tmp_path / "long", 9000)
    return tmp_path / "long"


def build_cache(run: Path) -> int:
    data = (run / METRICS_FILE).read_bytes()
    assert colcache.save(run, ColumnDecoder().feed(data), len(data))
    return len(data)


def test_a_long_run_without_a_cache_is_worth_it_and_a_short_one_is_not(run: Path, tmp_path: Path) -> None:
    assert cachefile.worth_building(run)
    write_finished(tmp_path / "short", 100)
    assert not cachefile.worth_building(tmp_path / "short")
    assert not cachefile.worth_building(tmp_path / "missing")


def test_a_cache_of_the_whole_file_is_enough_until_the_file_grows_by_a_cache_worth(run: Path) -> None:
    size = build_cache(run)
    assert cachefile.cached_offset(run) == size
    assert not cachefile.worth_building(run)
    write_finished(run, 9000)  # appended: as much again
    assert cachefile.worth_building(run)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"NXCOLS1\n",
        b"NXCOLS1\n" + (1 << 40).to_bytes(8, "little"),  # a header "of a terabyte"
        b"NXCOLS1\n" + (5).to_bytes(8, "little") + b"[1,2]",
        b"NXCOLS1\n" + (2).to_bytes(8, "little") + b"{}",
        b"PK\x03\x04 not a cache",
    ],
)
def test_a_damaged_or_foreign_cache_counts_as_none(run: Path, content: bytes) -> None:
    cachefile.cache_path(run).parent.mkdir()
    cachefile.cache_path(run).write_bytes(content)
    assert cachefile.cached_offset(run) is None
    assert cachefile.worth_building(run)


@pytest.mark.parametrize("offset", [-1, "12", True, 1.5, None])
def test_a_header_with_an_offset_that_is_no_count_of_bytes_counts_as_none(run: Path, offset: object) -> None:
    header = json.dumps({"meta": {"version": cachefile.VERSION, "offset": offset}, "arrays": {}}).encode()
    cachefile.cache_path(run).parent.mkdir()
    cachefile.cache_path(run).write_bytes(cachefile.MAGIC + len(header).to_bytes(8, "little") + header)
    assert cachefile.cached_offset(run) is None
    assert cachefile.worth_building(run)
