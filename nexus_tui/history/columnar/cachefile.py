"""Where a run's columnar cache lives and what its header says, without numpy.

`nexus` asks this before the dashboard (and numpy) is imported, to know which runs have no usable
cache yet and are worth decoding in a child process while the dashboard starts (live/prebuild.py).
The header tells only which offset of the metrics file a cache was made from; whether it still
describes the file (its fingerprint) is `colcache.load`'s to check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from nexus_core.schema import METRICS_FILE
from nexus_core.units import as_int

CACHE_DIR = ".nexus-cache"
CACHE_FILE = "metrics.cols"
MAGIC = b"NXCOLS1\n"
VERSION = 4
"""2: typed records (others kept as their msgpack bytes, read back by RecordDecoder), step_s column.
3: a writer's own keys as columns `x:KEY` (before, those records were kept among the others).
4: `clean` in the meta: the bytes it covers decoded without a warning (`nexus report` says what a
damaged file's decode skipped, so it reads only a clean cache)."""
MIN_FILE_BYTES = 1 << 20
"""Smaller metrics files decode faster than a cache loads: no cache for them."""
MAX_HEADER_BYTES = 1 << 20
"""A header claiming more than this is not one we wrote."""


def cache_path(run_dir: Path) -> Path:
    return Path(run_dir) / CACHE_DIR / CACHE_FILE


def read_header(f: BinaryIO) -> dict[str, Any]:
    """The JSON header at the start of an open cache file (`meta` and `arrays`); ValueError if the
    file is not one of ours."""
    if f.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a cache file")
    size = int.from_bytes(f.read(8), "little")
    if not 0 < size <= MAX_HEADER_BYTES:
        raise ValueError("cache header of an impossible size")
    header = json.loads(f.read(size))
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
        raise ValueError("not a cache header")
    return header


def cached_offset(run_dir: Path) -> int | None:
    """How many bytes of the metrics file the cache says it holds (this version's cache only), or
    None: no cache, another version, or not a cache at all."""
    try:
        with open(cache_path(run_dir), "rb") as f:
            meta = read_header(f)["meta"]
        offset = meta.get("offset") if meta.get("version") == VERSION else None
    except (OSError, ValueError):
        return None
    n = as_int(offset)
    return n if n is not None and n >= 0 else None


def worth_building(run_dir: Path) -> bool:
    """True when the run's metrics file is long enough for a cache, its folder can take one, and the
    cache there (if any) leaves at least MIN_FILE_BYTES of the file out: opening it would decode
    that much."""
    try:
        size = (Path(run_dir) / METRICS_FILE).stat().st_size
    except OSError:
        return False
    if size < MIN_FILE_BYTES or not os.access(run_dir, os.W_OK):
        return False
    offset = cached_offset(run_dir)
    return offset is None or offset > size or size - offset >= MIN_FILE_BYTES
