"""The NVIDIA driver stand-in (nexus_tui/telemetry/simulated_nvml.c, the one `nexus demo
--simulate-gpus` uses), built with gcc into a folder the test names, and the text file it reads:
`FakeGpus(tmp).write(gpus, procs)`, then `env()` for a child process (the real nvidia-ml-py in it
loads the stand-in through LD_LIBRARY_PATH), or `preload()` in this process."""

from __future__ import annotations

import os
from pathlib import Path

from nexus_tui.telemetry import simulate


class FakeGpus:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = folder / "gpus.txt"
        try:
            self.lib = simulate.build(folder)
        except simulate.SimulationError as e:
            raise RuntimeError(str(e)) from None

    def write(
        self, gpus: list[tuple[str, int, int, int, int, int, int]], procs: list[tuple[int, int, int]] = ()
    ) -> None:
        """gpus: (name, util %, used B, total B, temp C, power W, limit W); procs: (gpu, pid, used B)."""
        simulate.write_state(self.state, gpus, list(procs))

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = f"{self.lib.parent}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
        env[simulate.STATE_ENV] = str(self.state)
        return env

    def preload(self) -> None:
        """Load the stand-in into this process (it answers as a missing driver once NEXUS_FAKE_NVML is unset)."""
        simulate.preload(self.lib, self.state)


TWO_GPUS = [
    ("NVIDIA RTX 4090", 0, 1 << 30, 24 << 30, 40, 60, 450),
    ("NVIDIA RTX 4090", 0, 1 << 30, 24 << 30, 41, 61, 450),
]
