"""GPU and host telemetry, sampled in a background thread (the device layer, nvitop-style, no UI).

Every NVML call goes through `_nv`, which turns any NVML error into None, so a GPU that does not
report its power or a driver that vanishes mid-run costs a blank field, never a crash. Without an
NVIDIA driver (laptops, CI, this project's test machines) the GPU list is empty, `gpu_error` says so
in one line, and host telemetry works as usual. psutil.Process objects are kept between samples:
their cpu_percent() needs the previous reading, and creating them costs more than sampling.

A run may be several processes: under torchrun the pid a run reports (rank 0's, in its hello and
status) has the torchrun launcher as its parent, and the launcher's other children are the other
ranks on this host. Each sample re-reads that family from the process tree (`rank_processes`), so
ranks are attributed to their run whether this dashboard launched it or attached to it later, with
no field the engine must write; ranks on other hosts are not visible here and are not counted.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from nexus_core.units import gib

pynvml: Any = None
"""nvidia-ml-py, imported by `_init_nvml` (on the sampler thread when deferred): importing it costs
tens of ms the first frame need not wait for."""

LAUNCHERS = ("torch.distributed.run", "torchrun")
"""A process whose command line holds one of these starts a run's ranks as its children."""
HISTORY = 120
"""Samples kept for sparklines: two minutes at one a second."""


@dataclass
class GpuSample:
    """One GPU at one moment. Fields NVML could not give are None."""

    index: int
    name: str
    util: float | None = None
    """Percent of time a kernel ran over the last sample period."""
    mem_used: int | None = None
    mem_total: int | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    clock_sm_mhz: int | None = None
    clock_mem_mhz: int | None = None
    fan: float | None = None
    processes: dict[int, int | None] = field(default_factory=dict)
    """pid -> GPU memory bytes (None when the driver hides it)."""
    runs: dict[str, int | None] = field(default_factory=dict)
    """The tracked runs among `processes`: run name -> GPU memory bytes."""

    @property
    def mem_free(self) -> int | None:
        if self.mem_used is None or self.mem_total is None:
            return None
        return max(0, self.mem_total - self.mem_used)


@dataclass
class HostSample:
    cpu_percent: float
    """Whole machine, 0-100."""
    cpu_count: int
    ram_used: int
    ram_total: int
    load1: float | None = None


@dataclass
class ProcessSample:
    """A tracked run's engine process (under torchrun: its ranks on this host, summed)."""

    name: str
    pid: int
    alive: bool
    cpu_percent: float | None = None
    """Of one core (100 = one core busy), as top shows it."""
    rss: int | None = None
    threads: int | None = None
    pids: tuple[int, ...] = ()
    """Every process counted: the run's pid, or each rank's."""


@dataclass
class TelemetrySnapshot:
    time: float
    host: HostSample
    gpus: list[GpuSample]
    processes: dict[str, ProcessSample]
    gpu_error: str = ""


def _nv(fn: Callable[..., Any], *args: Any) -> Any:
    """Call one NVML function; any NVML failure (not supported, lost GPU, no driver) becomes None."""
    if pynvml is None:
        return None
    try:
        return fn(*args)
    except (pynvml.NVMLError, OSError):
        return None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def rank_processes(proc: psutil.Process) -> list[psutil.Process]:
    """The processes of the run that `proc` speaks for: under torchrun (its parent, or itself, is
    the launcher) every worker the launcher started, rank order by pid; otherwise `proc` alone."""
    try:
        for launcher in (proc, proc.parent()):
            if launcher is not None and any(name in " ".join(launcher.cmdline()) for name in LAUNCHERS):
                workers = sorted(launcher.children(), key=lambda p: p.pid)
                return workers or [proc]
    except psutil.Error:
        pass
    return [proc]


class Telemetry:
    """Samples every `interval` seconds in a daemon thread. `snapshot()` is the latest reading
    (plain dataclasses, safe to hand to another thread); `history` holds deques for sparklines keyed
    "host.cpu", "host.ram" (percent), "gpuN.util", "gpuN.mem" (percent), "gpuN.temp", "gpuN.power",
    "run.NAME.cpu", "run.NAME.rss" (read them with `history_of`, which copies under the lock)."""

    def __init__(
        self,
        interval: float = 1.0,
        history: int = HISTORY,
        defer: bool = False,
    ) -> None:
        """`defer=True` (the app): NVML init and the first reading happen on the sampler thread
        when `start()` runs, not here, so the dashboard's first frame does not wait for them;
        until then `snapshot()` is an empty reading."""
        self.interval = interval
        self.history: dict[str, deque[float]] = {}
        self._history_len = history
        self._tracked: dict[str, psutil.Process | None] = {}
        self._pids: dict[str, int] = {}
        self._families: dict[str, tuple[int, ...]] = {}
        """Each run's processes at the last sample (rank_processes); GPU processes are matched to these."""
        self._known: dict[int, psutil.Process] = {}
        """Rank processes seen before, kept for cpu_percent's previous reading."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[Any] = []
        self._names: list[str] = []
        self.gpu_error = ""
        self._ready = threading.Event()
        self._latest = TelemetrySnapshot(time.time(), HostSample(0.0, 1, 0, 0), [], {})
        if not defer:
            self._prepare()

    def _prepare(self) -> None:
        """NVML init and the first reading (which only starts psutil's CPU measurement)."""
        self._init_nvml()
        psutil.cpu_percent(None)  # the first call only starts the measurement
        self._latest = self.sample(remember=False)
        self._ready.set()

    # -- NVML ------------------------------------------------------------------------------------

    def _init_nvml(self) -> None:
        global pynvml
        if pynvml is None:
            with contextlib.suppress(ImportError):  # a dependency, but degrade anyway
                import pynvml as nvml

                pynvml = nvml
        if pynvml is None:
            self.gpu_error = "nvidia-ml-py is not installed: GPU telemetry off"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError_LibraryNotFound:
            self.gpu_error = "no NVIDIA driver found: GPU telemetry off"
            return
        except pynvml.NVMLError as e:
            self.gpu_error = f"NVIDIA driver not usable ({e}): GPU telemetry off"
            return
        count = _nv(pynvml.nvmlDeviceGetCount) or 0
        self._handles = [
            h for i in range(count) if (h := _nv(pynvml.nvmlDeviceGetHandleByIndex, i)) is not None
        ]
        self._names = [
            _text(_nv(pynvml.nvmlDeviceGetName, h) or f"GPU {i}") for i, h in enumerate(self._handles)
        ]
        if not self._handles:
            self.gpu_error = "the NVIDIA driver reports no GPUs: GPU telemetry off"

    def _gpu(self, index: int, handle: Any) -> GpuSample:
        g = GpuSample(index=index, name=self._names[index])
        util = _nv(pynvml.nvmlDeviceGetUtilizationRates, handle)
        g.util = float(util.gpu) if util is not None else None
        mem = _nv(pynvml.nvmlDeviceGetMemoryInfo, handle)
        if mem is not None:
            g.mem_used, g.mem_total = int(mem.used), int(mem.total)
        temp = _nv(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
        g.temp_c = float(temp) if temp is not None else None
        power = _nv(pynvml.nvmlDeviceGetPowerUsage, handle)
        g.power_w = power / 1000.0 if power is not None else None
        limit = _nv(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        g.power_limit_w = limit / 1000.0 if limit is not None else None
        g.clock_sm_mhz = _nv(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM)
        g.clock_mem_mhz = _nv(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM)
        fan = _nv(pynvml.nvmlDeviceGetFanSpeed, handle)
        g.fan = float(fan) if fan is not None else None
        by_pid = {pid: name for name, pids in self._families.items() for pid in pids}
        for getter in (
            pynvml.nvmlDeviceGetComputeRunningProcesses,
            pynvml.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            for p in _nv(getter, handle) or ():
                used = getattr(p, "usedGpuMemory", None)
                used = int(used) if isinstance(used, int) and used >= 0 else None  # N/A is a huge sentinel
                if used is not None and used > (1 << 50):
                    used = None
                g.processes[int(p.pid)] = used
                if (owner := by_pid.get(int(p.pid))) is not None:
                    before = g.runs.get(owner)
                    g.runs[owner] = None if used is None else used + (before or 0)
        return g

    # -- processes -------------------------------------------------------------------------------

    def track(self, name: str, pid: int) -> None:
        """Follow a run's engine process (CPU %, RSS, GPU memory)."""
        with self._lock:
            if self._pids.get(name) == pid and self._tracked.get(name) is not None:
                return
            self._pids[name] = pid
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)
            except (psutil.Error, ValueError):
                proc = None
            self._tracked[name] = proc

    def _process(self, name: str, proc: psutil.Process | None) -> ProcessSample:
        pid = self._pids.get(name, -1)
        self._families[name] = (pid,)
        if proc is None:
            return ProcessSample(name, pid, alive=False)
        try:
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return ProcessSample(name, pid, alive=False)
        family = [self._known.setdefault(p.pid, p) if p.pid != pid else proc for p in rank_processes(proc)]
        cpu, rss, threads, pids = 0.0, 0, 0, []
        for member in family:
            try:
                with member.oneshot():
                    cpu += member.cpu_percent(None)
                    rss += member.memory_info().rss
                    threads += member.num_threads()
                pids.append(member.pid)
            except psutil.Error:
                self._known.pop(member.pid, None)
        self._families[name] = tuple(pids) or (pid,)
        return ProcessSample(
            name, pid, alive=alive, cpu_percent=cpu, rss=rss, threads=threads, pids=self._families[name]
        )

    # -- sampling --------------------------------------------------------------------------------

    def sample(self, remember: bool = True) -> TelemetrySnapshot:
        """Take one reading now (the sampler thread calls this; tests may too). `remember=False`
        keeps it out of the history (the very first CPU reading covers no time and reads 0)."""
        vm = psutil.virtual_memory()
        load = None
        with contextlib.suppress(OSError, AttributeError):
            load = os.getloadavg()[0]
        host = HostSample(
            cpu_percent=psutil.cpu_percent(None),
            cpu_count=psutil.cpu_count() or 1,
            ram_used=int(vm.total - vm.available),
            ram_total=int(vm.total),
            load1=load,
        )
        with self._lock:
            procs = {name: self._process(name, p) for name, p in self._tracked.items()}
            family = {pid for pids in self._families.values() for pid in pids}
            for gone in set(self._known) - family:
                del self._known[gone]
            gpus = [self._gpu(i, h) for i, h in enumerate(self._handles)]
            snap = TelemetrySnapshot(
                time=time.time(), host=host, gpus=gpus, processes=procs, gpu_error=self.gpu_error
            )
            if remember:
                self._remember(snap)
        return snap

    def history_of(self, key: str) -> list[float]:
        """A copy of one history deque (the sampler thread appends to the deques meanwhile)."""
        with self._lock:
            return list(self.history.get(key, ()))

    def _remember(self, snap: TelemetrySnapshot) -> None:
        def put(key: str, value: float | None) -> None:
            if value is None:
                return
            if key not in self.history:
                self.history[key] = deque(maxlen=self._history_len)
            self.history[key].append(float(value))

        put("host.cpu", snap.host.cpu_percent)
        put("host.ram", 100.0 * snap.host.ram_used / snap.host.ram_total if snap.host.ram_total else None)
        for g in snap.gpus:
            put(f"gpu{g.index}.util", g.util)
            put(
                f"gpu{g.index}.mem",
                100.0 * g.mem_used / g.mem_total if g.mem_used is not None and g.mem_total else None,
            )
            put(f"gpu{g.index}.temp", g.temp_c)
            put(f"gpu{g.index}.power", g.power_w)
        for p in snap.processes.values():
            if p.alive:
                put(f"run.{p.name}.cpu", p.cpu_percent)
                put(f"run.{p.name}.rss", p.rss)

    def snapshot(self) -> TelemetrySnapshot:
        """The latest reading (taken at construction, then every `interval` s once started)."""
        return self._latest

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="nexus-telemetry", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if not self._ready.is_set():
            try:
                self._prepare()
            except Exception as e:  # noqa: BLE001 - as below: telemetry must not take the app down
                self.gpu_error = self.gpu_error or f"telemetry start failed: {e}"
            finally:
                self._ready.set()
        while not self._stop.wait(self.interval):
            try:
                self._latest = self.sample()
            except Exception as e:  # noqa: BLE001 - a sampler must outlive odd psutil/NVML states
                self.gpu_error = self.gpu_error or f"telemetry sample failed: {e}"
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval + 1)
            self._thread = None
        if self._handles:
            _nv(pynvml.nvmlShutdown)
            self._handles = []

    # -- the launch form -------------------------------------------------------------------------

    def list_devices(self) -> list[tuple[str, str]]:
        """Choices for where a run trains: ("cpu", "cpu (N cores)") then ("cuda:N", "cuda:N NAME (free/total)")."""
        if self._thread is not None:
            self._ready.wait(10.0)  # a deferred start lists the GPUs once NVML is up (well under 1 s)
        out = [("cpu", f"cpu ({psutil.cpu_count() or 1} cores)")]
        for g in self._latest.gpus or [self._gpu(i, h) for i, h in enumerate(self._handles)]:
            mem = f" ({gib(g.mem_free, '?')}/{gib(g.mem_total, '?')} GiB free)" if g.mem_total else ""
            out.append((f"cuda:{g.index}", f"cuda:{g.index} {g.name}{mem}"))
        return out
