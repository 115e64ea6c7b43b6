"""Telemetry on a real machine: host figures, a real busy child process, and GPUs either reported
(where a driver exists) or plainly said to be unavailable (here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from nexus_core import protocol as P
from nexus_tui.telemetry.sampler import Telemetry


@pytest.fixture
def busy_child():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<30: pass"]
    )
    yield proc
    proc.kill()
    proc.wait()


def test_host_sample_and_gpu_state() -> None:
    t = Telemetry()
    snap = t.sample()
    assert snap.host.cpu_count >= 1 and 0.0 <= snap.host.cpu_percent <= 100.0
    assert 0 < snap.host.ram_used <= snap.host.ram_total
    assert t.list_devices()[0][0] == "cpu"
    if snap.gpus:  # a machine with a driver: every GPU has a name and memory figures
        assert all(g.name and g.mem_total for g in snap.gpus)
        assert [d for d, _ in t.list_devices()[1:]] == [f"cuda:{g.index}" for g in snap.gpus]
    else:
        assert snap.gpus == [] and "GPU telemetry off" in t.gpu_error == snap.gpu_error
        assert len(t.list_devices()) == 1
    t.stop()


def test_tracks_a_run_process_until_it_dies(busy_child: subprocess.Popen) -> None:
    t = Telemetry(interval=0.3)
    t.track("busy", busy_child.pid)
    t.track("me", os.getpid())
    t.start()
    try:
        deadline = time.time() + 30
        while len(t.history_of("host.cpu")) < 3 and time.time() < deadline:
            time.sleep(0.1)
        p = t.snapshot().processes["busy"]
        assert p.alive and p.pid == busy_child.pid and p.rss and p.rss > 1 << 20
        assert max(t.history_of("run.busy.cpu")) > 20.0  # a spinning loop shows up (2 cores are shared)
        assert len(t.history_of("host.cpu")) >= 3
        busy_child.kill()
        busy_child.wait()
        deadline = time.time() + 5
        while t.snapshot().processes["busy"].alive and time.time() < deadline:
            time.sleep(0.1)
        assert not t.snapshot().processes["busy"].alive
    finally:
        t.stop()


def test_tracking_a_pid_that_does_not_exist_is_not_an_error() -> None:
    t = Telemetry()
    t.track("ghost", 2**22 + 12345)
    assert t.sample().processes["ghost"].alive is False
    t.stop()


def test_pid_alive_sees_exit() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    assert P.pid_alive(os.getpid())
    proc.wait()
    assert not P.pid_alive(proc.pid)
    assert not P.pid_alive("12")
