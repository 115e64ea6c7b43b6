"""Where a run's columnar cache lives and what its header says, without numpy.

`nexus` asks this before the dashboard (and numpy) is imported, to know which runs have no usable
cache yet and are worth decoding in a child process while the dashboard starts (live/prebuild.py).
The header tells only which offset of the metrics file a cache was made from; whether it still
describes the file (its fingerprint) is `colcache.load`'s to check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from nexus_core.safefile import open_regular, parse_json
from nexus_core.schema import METRICS_FILE
from nexus_core.units import as_int

CACHE_DIR = ".nexus-cache"
CACHE_FILE = "metrics.cols"
MAGIC = b"NXCOLS1\n"
VERSION = 5
"""2: typed records (others kept as their msgpack bytes, read back by RecordDecoder), step_s column.
3: a writer's own keys as columns `x:KEY` (before, those records were kept among the others).
4: `clean` in the meta: the bytes it covers decoded without a warning (`nexus report` says what a
damaged file's decode skipped, so it reads only a clean cache).
5: the fingerprint hashes every byte the cache covers (4 hashed the head and the tail only)."""
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
    header = parse_json(f.read(size))
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
        raise ValueError("not a cache header")
    if not isinstance(header.get("arrays"), dict):
        raise ValueError("not a cache header")
    for name, spec in header["arrays"].items():
        header["arrays"][name] = _array_spec(name, spec)
    return header


_DTYPES = {"seq": "<i8", "layout": "<i8", "others": "|u1"}
"""Each column's one dtype (others: `<f8`; masks `present_*`: `|b1`): a cache naming any other is not ours."""


def column_dtype(name: str) -> str:
    """The dtype a cache column of this name must have."""
    return _DTYPES.get(name, "|b1" if name.startswith("present_") else "<f8")


def _array_spec(name: Any, spec: Any) -> tuple[int, str, int]:
    """One column's (offset, dtype, count), checked like a record: ValueError unless both numbers
    are non-negative ints and the dtype is the one that column has."""
    if not isinstance(name, str) or not isinstance(spec, list) or len(spec) != 3:
        raise ValueError("bad column entry")
    at, dtype, count = spec
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in (at, count)):
        raise ValueError(f"column {name!r}: bad offset or length")
    if dtype != column_dtype(name):
        raise ValueError(f"column {name!r}: dtype {dtype!r} is not {column_dtype(name)!r}")
    return at, dtype, count


def cached_offset(run_dir: Path) -> int | None:
    """How many bytes of the metrics file the cache says it holds (this version's cache only), or
    None: no cache, another version, or not a cache at all."""
    try:
        with open_regular(cache_path(run_dir), within=run_dir) as f:  # a FIFO planted here never blocks
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
