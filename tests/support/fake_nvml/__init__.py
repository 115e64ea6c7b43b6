"""The NVIDIA driver stand-in (fake_nvml.c), built with gcc into a folder the test names, and the
text file it reads: `FakeGpus(tmp).write(gpus, procs)`, then `env()` for a child process (the real
nvidia-ml-py in it loads the stand-in through LD_LIBRARY_PATH), or `preload()` in this process."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIB = "libnvidia-ml.so.1"


class FakeGpus:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = folder / "gpus.txt"
        self.lib = folder / LIB
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            raise RuntimeError("no C compiler: the NVML stand-in needs gcc")
        subprocess.run([gcc, "-shared", "-fPIC", "-O1", f"-Wl,-soname,{LIB}", "-o", str(self.lib), str(SOURCE)],
                       check=True, capture_output=True)

    def write(self, gpus: list[tuple[str, int, int, int, int, int, int]], procs: list[tuple[int, int, int]] = ()) -> None:
        """gpus: (name, util %, used B, total B, temp C, power mW, limit mW); procs: (gpu, pid, used B).
        Replaced atomically: a reader never sees half a file."""
        lines = [f"gpu {n.replace(' ', '_')} {u} {used} {total} {t} {p} {lim}" for n, u, used, total, t, p, lim in gpus]
        lines += [f"proc {g} {pid} {used}" for g, pid, used in procs]
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.state)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = f"{self.folder}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
        env["NEXUS_FAKE_NVML"] = str(self.state)
        return env

    def preload(self) -> None:
        """Load the stand-in into this process: nvidia-ml-py's CDLL('libnvidia-ml.so.1') then finds it
        by its soname. Set NEXUS_FAKE_NVML in os.environ too (the stand-in reads it on each call)."""
        os.environ["NEXUS_FAKE_NVML"] = str(self.state)
        ctypes.CDLL(str(self.lib), mode=ctypes.RTLD_GLOBAL)


TWO_GPUS = [("NVIDIA RTX 4090", 0, 1 << 30, 24 << 30, 40, 60_000, 450_000),
            ("NVIDIA RTX 4090", 0, 1 << 30, 24 << 30, 41, 61_000, 450_000)]
