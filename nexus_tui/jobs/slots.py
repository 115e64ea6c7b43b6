"""Which slots the box has and which are free: GPUs through NVML, else CPU slots.

A GPU is free when no job of the queue holds it and the driver shows no foreign process on it (a
process that is neither a queued job's nor one of its children: a notebook, another user's run).
NVML missing or failing means a box without GPUs: `cpu_slots` slots, none of them foreign-held."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class Box:
    """The slots right now: `kind` 'gpu' (indices are GPU indices) or 'cpu' (slot numbers)."""

    kind: str
    slots: list[int]
    foreign: dict[int, list[int]] = field(default_factory=dict)
    """GPU index -> pids of processes on it that are not the queue's."""
    note: str = ""
    """Why there are no GPUs (NVML's one line), '' when it answered."""

    def free(self, held: Iterable[int]) -> list[int]:
        """Slots neither a job nor a foreign process holds, lowest first."""
        taken = set(held) | {i for i, pids in self.foreign.items() if pids}
        return [i for i in self.slots if i not in taken]


def _family(pids: Iterable[int]) -> set[int]:
    """The pids and all their descendants (torchrun's ranks, a script's workers)."""
    out: set[int] = set()
    for pid in pids:
        out.add(pid)
        with contextlib.suppress(psutil.Error):
            out.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    return out


def _gpu_pids(nvml: Any, handle: Any) -> list[int]:
    pids: list[int] = []
    for getter in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
        try:
            pids += [int(p.pid) for p in getter(handle)]
        except nvml.NVMLError:
            continue
    return pids


def probe(cpu_slots: int, job_pids: Iterable[int] = ()) -> Box:
    """Ask the driver for GPUs and who is on them; a box without GPUs gets `cpu_slots` CPU slots."""
    try:
        import pynvml as nvml
    except ImportError:
        return Box("cpu", list(range(cpu_slots)), note="nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return Box("cpu", list(range(cpu_slots)), note=f"no NVIDIA driver: {e}")
    try:
        count = nvml.nvmlDeviceGetCount()
        if count <= 0:
            return Box("cpu", list(range(cpu_slots)), note="the driver shows no GPU")
        ours = _family(job_pids)
        foreign: dict[int, list[int]] = {}
        for i in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
            except nvml.NVMLError:
                foreign[i] = [-1]  # a GPU the driver cannot describe is not handed out
                continue
            foreign[i] = sorted(p for p in set(_gpu_pids(nvml, handle)) if p not in ours)
        return Box("gpu", list(range(count)), foreign)
    except nvml.NVMLError as e:
        return Box("cpu", list(range(cpu_slots)), note=f"the NVIDIA driver failed: {e}")
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
