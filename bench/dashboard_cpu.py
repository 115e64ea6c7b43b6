"""The dashboard's own CPU while the two demo runs train: what Nexus takes away from training.

Starts the real app headless (`App.run_test`) with `nexus demo`'s two tiny CPU runs, waits until both
report steps, then measures the app process's CPU time (all its threads: pipe readers, watcher,
telemetry, the event loop drawing charts) over a window of wall time, as % of one core, plus how many
plotext builds the charts did and how many records arrived meanwhile. The engines are separate
processes and are killed at the end.

Run: python bench/dashboard_cpu.py [--seconds 20] [--code /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def measure(seconds: float, root: Path) -> dict:
    from nexus_tui.app import make_app
    from nexus_tui.widgets.chart import MetricChart

    app = make_app(root=root, demo=True, demo_steps=1_000_000)
    out: dict = {}
    async with app.run_test(size=(200, 50)) as pilot:
        deadline = time.time() + 300
        while time.time() < deadline:
            runs = app.store.runs()
            if len(runs) == 2 and all(len(r.series["ce"]) >= 5 for r in runs):
                break
            await pilot.pause(0.2)
        else:
            out["error"] = "the demo runs did not start"
        steps0 = sum(len(r.series["ce"]) for r in app.store.runs())
        builds0 = sum(getattr(c, "builds", 0) for c in app.query(MetricChart))
        wall0, cpu0 = time.perf_counter(), time.process_time()
        # Plain sleep, not Pilot.pause in a loop: each pause walks the DOM and waits on the screen,
        # ~3% of a core of the bench's own that a person's terminal does not have.
        await asyncio.sleep(seconds)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        out["cpu_pct"] = 100 * cpu / wall
        out["records"] = sum(len(r.series["ce"]) for r in app.store.runs()) - steps0
        out["builds"] = sum(getattr(c, "builds", 0) for c in app.query(MetricChart)) - builds0
        out["seconds"] = wall
        for pid in app.services.supervisor.processes().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument(
        "--code", type=Path, default=ROOT, help="the checkout whose nexus_tui to measure (before/after)"
    )
    args = ap.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, code from {args.code}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")
        r = asyncio.run(measure(args.seconds, Path(tmp) / "runs"))
    if "error" in r:
        print(r["error"])
    print(
        f"dashboard CPU while two demo runs train: {r['cpu_pct']:.1f}% of one core over {r['seconds']:.0f}s "
        f"({r['records']} metric records arrived, {r['builds'] or 'n/a'} plotext builds)"
    )


if __name__ == "__main__":
    main()
