"""Opening files in a run folder that someone else may have planted: regular files only, bounded.

A run folder is untrusted input (docs/SECURITY.md). A metrics file that is a FIFO blocks `open()`
forever; one that is a symlink to /dev/zero never ends; a directory raises EISDIR deep in a reader; a
multi-gigabyte status file eats memory. So every reader of a run folder opens through here: the open
is non-blocking (a FIFO with no writer cannot hang it), `fstat` on the open descriptor (no race with
a rename) must say regular file, and reads stop at a size cap. Any refusal is an `UnsafeFileError`,
an OSError whose message says what the path is and what was expected, so callers that already handle
OSError print one line.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

SMALL_FILE_BYTES = 4 << 20
"""Cap for files a person or the engine writes whole: status, config, meta.json, settings (4 MiB)."""


class UnsafeFileError(OSError):
    """A run-folder path that is not a regular file, or is larger than its reader allows."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | Path, max_bytes: int | None = None) -> BinaryIO:
    """`path` opened for binary reading, or UnsafeFileError if it is not a regular file (or is
    larger than max_bytes). Symlinks are followed, but to a regular file only."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except IsADirectoryError:
        raise UnsafeFileError(errno.EISDIR, "is a directory, not a file", str(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
        if max_bytes is not None and st.st_size > max_bytes:
            raise UnsafeFileError(errno.EFBIG, f"is {st.st_size} bytes, more than the {max_bytes} allowed", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_append(path: str | Path) -> BinaryIO:
    """`path` opened to append (created 0644 if missing), or UnsafeFileError: never through a symlink
    (O_NOFOLLOW), never a FIFO/device (non-blocking open, fstat on the descriptor) and never a file
    with a second hard link, so a planted `engine.log -> ~/.ssh/authorized_keys` cannot be written."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | getattr(os, "O_NOCTTY", 0), 0o644)
    except IsADirectoryError:
        raise UnsafeFileError(errno.EISDIR, "is a directory, not a file", str(path)) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFileError(errno.ELOOP, "is a symlink; refusing to write through it", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
        if st.st_nlink > 1:
            raise UnsafeFileError(errno.EMLINK, "has another hard link; refusing to write through it", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, max_bytes: int = SMALL_FILE_BYTES) -> bytes:
    """A whole regular file of at most max_bytes (a file that grows past the cap while read is cut
    short and refused, never read without end)."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(errno.EFBIG, f"is more than the {max_bytes} bytes allowed", str(path))
    return data


def read_text(path: str | Path, max_bytes: int = SMALL_FILE_BYTES) -> str:
    """read_bytes as UTF-8 (a leading BOM dropped); UnicodeDecodeError (a ValueError) if it is not."""
    return read_bytes(path, max_bytes).decode("utf-8-sig")


def parse_json(text: str | bytes) -> Any:
    """json.loads that refuses what a reader cannot use: NaN/Infinity (not JSON, but Python's json
    takes them) and nesting deep enough to exhaust the stack. Every refusal is a ValueError."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(path: str | Path, max_bytes: int = SMALL_FILE_BYTES) -> Any:
    """A small JSON file from a run folder: OSError (UnsafeFileError included) or ValueError."""
    return parse_json(read_bytes(path, max_bytes))


def describe_os_error(e: OSError) -> str:
    """One line for an OSError from these readers: 'PATH: what is wrong'."""
    what = e.strerror or str(e)
    return f"{e.filename}: {what}" if e.filename else what


def _create_new(path: str | Path) -> int:
    """A descriptor of a new regular file at `path` (never through a symlink, never an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except FileExistsError:
        raise UnsafeFileError(errno.EEXIST, "already exists; refusing to overwrite it", str(path)) from None


def write_new(path: str | Path, data: bytes) -> None:
    """Write `data` to a file that must not exist yet (O_EXCL, O_NOFOLLOW): a media file or a manifest
    the reporter files under a run folder can never overwrite, or write through, something planted."""
    fd = _create_new(path)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def copy_in(source: str | Path, path: str | Path, max_bytes: int | None = None) -> int:
    """Copy a regular file (the script's own: a checkpoint, a code file) to a new file `path`, as
    write_new does; returns the bytes copied. Refuses a FIFO or device source like open_regular."""
    import shutil

    with open_regular(source, max_bytes) as src:
        fd = _create_new(path)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            return dst.tell()
