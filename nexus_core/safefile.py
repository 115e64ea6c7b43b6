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

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

SMALL_FILE_BYTES = 4 << 20
"""Cap for files a person or the engine writes whole: status, config, meta.json, settings (4 MiB)."""


class UnsafeFileError(OSError):
    """A run-folder path that is not a regular file, or is larger than its reader allows."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(
    path: str | Path, max_bytes: int | None = None, within: str | Path | None = None
) -> BinaryIO:
    """`path` opened for binary reading, or UnsafeFileError if it is not a regular file (or is
    larger than max_bytes). Symlinks are followed, but to a regular file only, and, given `within`
    (the run folder), only while they stay inside it."""
    if within is not None:
        check_inside(within, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except IsADirectoryError:
        raise UnsafeFileError(errno.EISDIR, "is a directory, not a file", str(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
        if max_bytes is not None and st.st_size > max_bytes:
            raise UnsafeFileError(
                errno.EFBIG, f"is {st.st_size} bytes, more than the {max_bytes} allowed", str(path)
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_writable(fd: int, path: str | Path) -> None:
    """UnsafeFileError unless the open descriptor is a regular file with no second hard link (a
    planted hard link to a user's file must not be written through)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
    if st.st_nlink > 1:
        raise UnsafeFileError(errno.EMLINK, "has another hard link; refusing to write through it", str(path))


def open_append(path: str | Path, buffering: int = -1) -> BinaryIO:
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
            raise UnsafeFileError(
                errno.ELOOP, "is a symlink; refusing to write through it", str(path)
            ) from None
        if e.errno == errno.ENXIO:  # a FIFO with no reader, or a socket, opened without blocking
            raise UnsafeFileError(errno.ENXIO, "is a FIFO or socket, not a regular file", str(path)) from None
        raise
    try:
        _check_writable(fd, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "ab", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def read_bytes(
    path: str | Path, max_bytes: int = SMALL_FILE_BYTES, within: str | Path | None = None
) -> bytes:
    """A whole regular file of at most max_bytes (a file that grows past the cap while read is cut
    short and refused, never read without end)."""
    with open_regular(path, max_bytes, within) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(errno.EFBIG, f"is more than the {max_bytes} bytes allowed", str(path))
    return data


def read_private(path: str | Path, max_bytes: int = SMALL_FILE_BYTES) -> bytes:
    """A whole small file that only this user may have written (a file naming commands to run, such
    as the job queue): never through a symlink (O_NOFOLLOW), never a FIFO or device, owned by this
    uid and writable by nobody else, at most max_bytes. UnsafeFileError says which check failed
    (errno ELOOP, EINVAL, EPERM or EFBIG); FileNotFoundError when it is missing."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFileError(
                errno.ELOOP, "is a symlink; refusing to read through it", str(path)
            ) from None
        if e.errno == errno.EISDIR:
            raise UnsafeFileError(errno.EINVAL, "is a directory, not a regular file", str(path)) from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise UnsafeFileError(
                errno.EPERM,
                f"was not written by this user alone (owner uid {st.st_uid}, "
                f"mode {stat.S_IMODE(st.st_mode):o})",
                str(path),
            )
        if st.st_size > max_bytes:
            raise UnsafeFileError(
                errno.EFBIG, f"is {st.st_size} bytes, more than the {max_bytes} allowed", str(path)
            )
        os.set_blocking(fd, True)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(errno.EFBIG, f"is more than the {max_bytes} bytes allowed", str(path))
    return data


def read_text(path: str | Path, max_bytes: int = SMALL_FILE_BYTES, within: str | Path | None = None) -> str:
    """read_bytes as UTF-8 (a leading BOM dropped); UnicodeDecodeError (a ValueError) if it is not."""
    return read_bytes(path, max_bytes, within).decode("utf-8-sig")


def parse_json(text: str | bytes) -> Any:
    """json.loads that refuses what a reader cannot use: NaN/Infinity (not JSON, but Python's json
    takes them) and nesting deep enough to exhaust the stack. Every refusal is a ValueError."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(path: str | Path, max_bytes: int = SMALL_FILE_BYTES, within: str | Path | None = None) -> Any:
    """A small JSON file from a run folder: OSError (UnsafeFileError included) or ValueError."""
    return parse_json(read_bytes(path, max_bytes, within))


def describe_os_error(e: OSError) -> str:
    """One line for an OSError from these readers: 'PATH: what is wrong'."""
    what = e.strerror or str(e)
    return f"{e.filename}: {what}" if e.filename else what


# --- Paths inside a folder -------------------------------------------------------------------------


def check_inside(root: str | Path, path: str | Path) -> Path:
    """`path` with every symlink resolved, or UnsafeFileError if that leaves `root` (also resolved):
    a run folder's `.nexus-cache -> /home/me/.config` or `checkpoints -> /` must never be written
    through. The path need not exist yet (its existing part is what is resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UnsafeFileError(
            errno.EXDEV, f"leads outside {root} (to {real}); refusing to follow it", str(path)
        )
    return Path(real)


def private_dir(parent: str | Path, name: str) -> Path:
    """parent/NAME created if missing, and refused (UnsafeFileError) unless it is a real folder of
    this user: not a symlink (a planted `.nexus-cache -> elsewhere` is not written through), not a
    FIFO or file."""
    path = Path(parent) / name
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(errno.ELOOP, "is a symlink; refusing to write through it", str(path))
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(errno.ENOTDIR, f"is {_kind(st.st_mode)}, not a folder", str(path))
    if st.st_uid != os.getuid():
        raise UnsafeFileError(errno.EPERM, "belongs to another user; refusing to write in it", str(path))
    return path


def fresh_dir(parent: str | Path, name: str) -> Path:
    """A new empty folder parent/NAME made by this process (FileExistsError if the name is taken), so
    nothing planted can be inside it: writes into it by a library's own path API are safe."""
    path = Path(parent) / name
    os.mkdir(path, 0o755)
    return path


def scratch_file(folder: str | Path) -> BinaryIO:
    """An anonymous temp file (no name: it vanishes when closed) in `folder`, for spilling."""
    import tempfile

    return tempfile.TemporaryFile(dir=folder, prefix=".scratch.")  # noqa: SIM115 - the caller closes it


# --- Writing: atomic replace, exclusive create, write-through ----------------------------------------

_UMASK: int | None = None


def _plain_mode() -> int:
    """The mode a plain open() would give a new file (0666 less the umask), not mkstemp's 0600."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_writer(
    path: str | Path, within: str | Path | None = None, mode: int | None = None, fsync: bool = False
) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` when the block ends without error, in one rename: a reader
    sees the old file or the new one, never half of one, and a failure leaves the old file and no
    temp. The temp name is unique (mkstemp beside the target: no two writers, DDP ranks or threads,
    ever share one). `within`: refuse (UnsafeFileError) when the target's folder resolves outside it.
    The new file's mode is `mode`, or what a plain open() would give. `fsync`: the data is on disk
    before the rename (a file that names work still to do, such as the job queue, survives a crash)."""
    import tempfile

    path = Path(path)
    folder = path.parent
    if within is not None:
        check_inside(within, folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, _plain_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(
    path: str | Path,
    data: bytes | str,
    within: str | Path | None = None,
    mode: int | None = None,
    fsync: bool = False,
) -> None:
    """Replace `path` with `data` (str as UTF-8) atomically: see atomic_writer."""
    with atomic_writer(path, within, mode, fsync) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


class ExistsError(UnsafeFileError, FileExistsError):
    """write_new's refusal: something (a file, a planted link) is already at the path."""


def write_new(path: str | Path, data: bytes | str, fsync: bool = False) -> None:
    """Create `path` and write `data` (str as UTF-8): O_EXCL and O_NOFOLLOW, so a media file, a
    manifest, a report or a checkpoint's meta.json never overwrites, or writes through, something
    planted (ExistsError, a FileExistsError, if anything is there, a symlink included)."""
    fd = _create_new(path)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def writing_through(path: str | Path) -> Iterator[BinaryIO]:
    """A file for an output path a person typed (`-o FILE`), written the way `tee` would: a symlink is
    followed (the link stays a link), a FIFO or device such as /dev/stdout is streamed into (never
    renamed over or unlinked), and a regular file (or a new one) is replaced atomically at the
    link's real target, keeping its mode, so a failed write leaves the old file whole."""
    try:
        st: os.stat_result | None = os.stat(path)  # through any links
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeFileError(errno.EISDIR, "is a directory, not a file", str(path))
        # Opened by the name given: /dev/stdout resolves to names like `pipe:[123]` that cannot be opened.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "wb") as f:
            yield f
        return
    real = Path(os.path.realpath(path))
    with atomic_writer(real, mode=None if st is None else stat.S_IMODE(st.st_mode)) as f:
        yield f


def write_through(path: str | Path, data: bytes | str) -> None:
    """Write `data` (str as UTF-8) to an output path a person typed: see writing_through."""
    with writing_through(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


# --- Descriptors for locks and /proc ----------------------------------------------------------------


def open_lock(path: str | Path, create: bool) -> int:
    """A descriptor on a run's lock file for flock: never through a symlink; created 0600 if asked.
    FileNotFoundError when it is missing and not to be created."""
    flags = (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY
    fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeFileError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
    return fd


def read_proc(path: str) -> bytes:
    """A small /proc file (its size reads as 0, so no cap by size: a read of 64 KiB at most)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        return f.read(1 << 16)


def open_devnull_fd() -> int:
    """A write descriptor on /dev/null (to park stdout after the reader went away)."""
    return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def rewrite_in_place(path: str | Path, data: bytes) -> None:
    """Overwrite the regular file at `path` with `data` in place (for a folder where a rename cannot
    be made): never through a symlink, never a FIFO/device, never a file with a second hard link."""
    fd = os.open(
        path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    )
    try:
        _check_writable(fd, path)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def data_end(f: BinaryIO, size: int) -> int:
    """Where the file's data ends: its size, or the start of its first hole. A metrics file is
    appended to, never seeked past its end, so it has no holes; a planted sparse file of gigabytes
    is all hole, and reading its zeros took minutes. Readers stop at the first hole."""
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_hole is None:
        return size
    fd = f.fileno()
    try:
        at = os.lseek(fd, 0, os.SEEK_CUR)
        hole = os.lseek(fd, 0, seek_hole)
        os.lseek(fd, at, os.SEEK_SET)
    except OSError:
        return size
    return min(size, hole)


def _create_new(path: str | Path) -> int:
    """A descriptor of a new regular file at `path` (never through a symlink, never an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, _plain_mode())
    except FileExistsError:
        raise ExistsError(errno.EEXIST, "already exists; refusing to overwrite it", str(path)) from None


def copy_in(source: str | Path, path: str | Path, max_bytes: int | None = None) -> int:
    """Copy a regular file (the script's own: a checkpoint, a code file) to a new file `path`, as
    write_new does; returns the bytes copied. Refuses a FIFO or device source like open_regular."""
    import shutil

    with open_regular(source, max_bytes) as src:
        fd = _create_new(path)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            return dst.tell()
