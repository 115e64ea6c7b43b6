"""GPU check for the launcher: a command launched on cuda:0 sees only that GPU, reports through
`nexus`, and the telemetry attributes its NVML process memory to the run. Prints one line per check;
exits non-zero on a failure. Run: python bench/gpu_launch_check.py (skips plainly without a GPU)."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from nexus_tui.live.supervisor import Supervisor
from nexus_tui.telemetry.sampler import Telemetry

SCRIPT = """
import os, time, torch, nexus
run = nexus.init(config={"visible": os.environ.get("CUDA_VISIBLE_DEVICES")}, total_steps=10**6)
x = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")  # 256 MiB the telemetry must see
for step in range(1, 10**6):
    run.log({"loss": 1.0 / step, "gpus": float(torch.cuda.device_count())})
    run.step_end()
    if run.should_stop:
        break
    time.sleep(0.05)
"""


def main() -> int:
    tel = Telemetry()
    if not tel.list_devices()[1:]:
        print("SKIP no GPU:", tel.gpu_error)
        return 0
    root = Path(tempfile.mkdtemp()) / "runs"
    root.mkdir()
    ended = threading.Event()
    sup = Supervisor(
        root,
        lambda *a: None,
        lambda n, c, t: (print("exit", n, c, t[-300:]), ended.set()),
        lambda n, t: print("warn", n, t),
    )
    sup.launch_command([sys.executable, "-c", SCRIPT], "gpu-cmd", "cuda:0")
    from nexus_core.protocol import read_status

    deadline = time.monotonic() + 120
    status: dict = {}
    while time.monotonic() < deadline and not ended.is_set():
        status = read_status(root / "gpu-cmd") or {}
        if status.get("step", 0) > 5:
            break
        time.sleep(0.5)
    print("status", {k: status.get(k) for k in ("state", "step", "pid")})
    ok = status.get("step", 0) > 5
    tel.track("gpu-cmd", int(status.get("pid") or 0))
    mem = None
    for _ in range(40):
        snap = tel.sample()
        mem = snap.gpus[0].runs.get("gpu-cmd") if snap.gpus else None
        if mem:
            break
        time.sleep(0.5)
    print(f"{'PASS' if mem else 'FAIL'} telemetry attributes GPU memory to the command: {mem}")
    ok = ok and bool(mem)
    from nexus_core.commands import Stop

    sup.send("gpu-cmd", Stop())
    print("PASS stopped" if ended.wait(60) else "FAIL no exit after stop")
    print((root / "gpu-cmd" / "engine.log").read_text()[-500:])
    sup.shutdown(stop_runs=True, timeout=10)
    return 0 if ok and ended.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
