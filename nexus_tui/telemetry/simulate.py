"""Simulated GPUs: `simulated_nvml.c`, a stand-in for the NVIDIA driver's library, built with the
machine's C compiler and loaded under its real name, so the real nvidia-ml-py (and so the telemetry
pane and the queue) sees GPUs on a machine without one. `nexus demo --simulate-gpus N` uses it; the
tests build it the same way. Its GPUs are a text file re-read on every call (`write_state`)."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import math
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from nexus_core import children, safefile
from nexus_core.safefile import read_bytes

SOURCE = Path(__file__).with_name("simulated_nvml.c")
LIB = "libnvidia-ml.so.1"
STATE_ENV = "NEXUS_FAKE_NVML"
GiB = 1 << 30


def simulated() -> bool:
    """Whether this process shows simulated GPUs: they are for the eye, no run can use them."""
    return bool(os.environ.get(STATE_ENV))


class SimulationError(Exception):
    """The stand-in cannot be built (no C compiler); one line."""


def build(folder: Path) -> Path:
    """Compile the stand-in into `folder` (once per source version); returns the library's path."""
    digest = hashlib.sha256(read_bytes(SOURCE)).hexdigest()[:12]
    lib = folder / digest / LIB
    if lib.exists():
        return lib
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SimulationError("simulated GPUs need a C compiler (gcc or cc) to build the driver stand-in")
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_suffix(".tmp")
    argv = [cc, "-shared", "-fPIC", "-O1", f"-Wl,-soname,{LIB}", "-o", str(tmp), str(SOURCE)]
    try:
        done = children.run(argv, cwd=lib.parent, env=children.child_env(), timeout=300)
    except (OSError, children.TimeoutExpired) as e:
        raise SimulationError(f"could not build the driver stand-in with {cc}: {e}") from None
    if done.returncode != 0:
        raise SimulationError(f"could not build the driver stand-in: {done.stderr.strip()[-300:]}")
    os.replace(tmp, lib)
    return lib


def write_state(
    path: Path,
    gpus: list[tuple[str, float, int, int, float, float, float]],
    procs: Sequence[tuple[int, int, int]] = (),
) -> None:
    """gpus: (name, util %, used B, total B, temp C, power W, limit W); procs: (gpu, pid, used B)."""
    lines = [
        f"gpu {n.replace(' ', '_')} {u:.0f} {used} {total} {t:.0f} {p * 1000:.0f} {lim * 1000:.0f}"
        for n, u, used, total, t, p, lim in gpus
    ]
    lines += [f"proc {g} {pid} {used}" for g, pid, used in procs]
    safefile.atomic_write(path, "\n".join(lines) + "\n")  # the stand-in re-reads it: never half a file


def preload(lib: Path, state: Path) -> None:
    """Load the stand-in into this process before nvidia-ml-py looks for the driver: its
    CDLL('libnvidia-ml.so.1') then finds this library by its soname."""
    os.environ[STATE_ENV] = str(state)
    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


class Simulation:
    """`count` GPUs whose load moves, with the live runs under `root` on them (run i on GPU i % count)."""

    def __init__(self, count: int, root: Path, folder: Path) -> None:
        self.count, self.root = count, root
        folder.mkdir(parents=True, exist_ok=True)
        self.state = folder / f"gpus-{os.getpid()}.txt"
        self._stop = threading.Event()
        preload(build(folder), self.state)
        self._write()
        self._thread = threading.Thread(target=self._loop, name="nexus-simulated-gpus", daemon=True)
        self._thread.start()

    def _runs(self) -> list[int]:
        from nexus_core.runfolder import pid_alive, read_status

        pids = []
        with contextlib.suppress(OSError):
            for d in sorted(self.root.iterdir()):
                status = read_status(d) if d.is_dir() else None
                if not status:
                    continue
                pid = status.get("pid")
                if (
                    isinstance(pid, int)
                    and status.get("state") in ("starting", "running", "paused")
                    and pid_alive(pid)
                ):
                    pids.append(pid)
        return pids

    def _write(self) -> None:
        t = time.time()
        pids = self._runs()
        procs = [(i % self.count, pid, (3 + 2 * i) * GiB) for i, pid in enumerate(pids)]
        gpus = []
        for g in range(self.count):
            used = sum(m for gi, _, m in procs if gi == g) + GiB // 2
            busy = any(gi == g for gi, _, _ in procs)
            util = (70 + 25 * math.sin(t / 3 + g)) if busy else 0.0
            gpus.append((f"Simulated GPU {g}", util, used, 24 * GiB, 35 + util / 3, 40 + 3.5 * util, 450.0))
        write_state(self.state, gpus, procs)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(OSError):
                self._write()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.state.unlink()
