"""The queue file's one door: `runs/.nexus-queue/queue.json`, read, checked and replaced here only.

The file is untrusted input like any run folder, and it names commands the runner will start, so a
file this user did not write must never run: it is read only when it is a regular file (no link,
no FIFO) owned by this uid and writable by nobody else, in a folder of ours that nobody else can
write (a swapped-in file is refused), under a size cap, decoded into typed structs (`model.py`)
that refuse unknown keys, and its `owner` must be this uid. Any failure is one `QueueError` line
that says what to fix, and the damaged file is left where it is (nothing is lost or overwritten).

Writers (two dashboards, the CLI, the runner) are serialized by an flock on `queue.lock` held for a
whole read-modify-write (`editing`); the file is replaced atomically (temp file, fsync, rename), so
a reader without the lock sees the old queue or the new one, never half of one. `runner.lock` is
held by the one runner of this runs folder for its life.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec

from nexus_core import safefile
from nexus_tui.jobs.model import QueueDoc, doc_problem

QUEUE_DIR = ".nexus-queue"
QUEUE_FILE = "queue.json"
LOCK_FILE = "queue.lock"
RUNNER_LOCK = "runner.lock"
MAX_BYTES = 8 << 20


class QueueError(Exception):
    """The queue cannot be read or written; the message is one line that says what to fix."""


def queue_dir(root: str | Path) -> Path:
    return Path(root) / QUEUE_DIR


def _own_dir(root: str | Path, create: bool) -> Path | None:
    """The queue's folder, made (mode 0700) when `create`; QueueError if it is not ours alone."""
    folder = queue_dir(root)
    if create:
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise QueueError(f"cannot create the queue folder {folder}: {e.strerror or e}") from None
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise QueueError(f"cannot read the queue folder {folder}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise QueueError(f"{folder} is not a folder (a link or a file): move it aside")
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise QueueError(
            f"{folder} is not this user's alone (owner uid {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o}): move it aside or chmod go-w it"
        )
    return folder


def _open_lock(root: str | Path, name: str) -> int:
    folder = _own_dir(root, create=True)
    assert folder is not None
    try:
        return safefile.open_lock(folder / name, create=True)  # 0600, never through a link
    except OSError as e:
        raise QueueError(f"cannot open the queue's lock {folder / name}: {e.strerror or e}") from None


@contextlib.contextmanager
def locked(root: str | Path) -> Iterator[None]:
    """Hold the queue's write lock (waits for another writer, who holds it for milliseconds)."""
    fd = _open_lock(root, LOCK_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read(root: str | Path) -> QueueDoc:
    """The queue as it is (an empty one when there is none yet); QueueError for a file that is not
    this user's, not a regular file, too large, not a queue, or breaking the queue's rules."""
    folder = _own_dir(root, create=False)
    if folder is None:
        return QueueDoc(owner=os.getuid())
    path = folder / QUEUE_FILE
    try:
        data = safefile.read_private(path, MAX_BYTES)  # no link, no FIFO, this uid's alone, capped
    except FileNotFoundError:
        return QueueDoc(owner=os.getuid())
    except safefile.UnsafeFileError as e:
        why = "it is not run; " if e.errno == errno.EPERM else ""
        raise QueueError(f"the queue {path} {e.strerror}: {why}move it aside") from None
    except OSError as e:
        raise QueueError(f"cannot read the queue {path}: {e.strerror or e}: move it aside") from None
    try:
        doc = msgspec.json.decode(data, type=QueueDoc)
    except msgspec.DecodeError as e:
        raise QueueError(f"the queue {path} is damaged ({e}): move it aside") from None
    if doc.owner != os.getuid():
        raise QueueError(f"the queue {path} says it belongs to uid {doc.owner}: it is not run; move it aside")
    if problem := doc_problem(doc):
        raise QueueError(f"the queue {path} is damaged ({problem}): move it aside")
    return doc


def write(root: str | Path, doc: QueueDoc) -> None:
    """Replace the queue atomically (call it holding `locked`)."""
    folder = _own_dir(root, create=True)
    assert folder is not None
    data = msgspec.json.format(msgspec.json.encode(doc), indent=1)
    try:
        safefile.atomic_write(folder / QUEUE_FILE, data, mode=0o600, fsync=True)
    except OSError as e:
        raise QueueError(f"cannot write the queue in {folder}: {e.strerror or e}") from None


@contextlib.contextmanager
def editing(root: str | Path) -> Iterator[QueueDoc]:
    """Read, change and write the queue under its lock: `with editing(root) as doc: ...`. Nothing is
    written when the body raises."""
    with locked(root):
        doc = read(root)
        yield doc
        write(root, doc)


def hold_runner_lock(root: str | Path) -> int | None:
    """The runner's lock, held (the fd, kept open for the runner's life), or None when another
    runner of this runs folder holds it."""
    fd = _open_lock(root, RUNNER_LOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def runner_alive(root: str | Path) -> bool:
    """Whether a runner holds this runs folder's runner lock now."""
    if _own_dir(root, create=False) is None:
        return False
    fd = hold_runner_lock(root)
    if fd is None:
        return True
    os.close(fd)
    return False
