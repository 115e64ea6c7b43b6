"""How long `nexus export` takes for a long run: a synthetic 100k-step run folder (9 series per step,
an eval every 100 steps), exported to CSV and Parquet; prints points, seconds and points/s.

    .venv/bin/python bench/export_speed.py [--steps N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nexus_core import protocol as P
from nexus_tui.__main__ import main


def make_run(run: Path, steps: int) -> None:
    run.mkdir(parents=True)
    w = P.RecordWriter(run / P.METRICS_FILE)
    w.write({"type": "hello", "run": run.name, "total_steps": steps})
    for s in range(1, steps + 1):
        w.write(
            {
                "type": "metric",
                "step": s,
                "tokens": s * 4096,
                "loss": 3.0 / s,
                "ce": 2.9 / s,
                "lr": 1e-3,
                "gnorm": 1.0,
                "tok_s": 1e5,
                "step_s": 0.1,
                "mem": 1e9,
                "train/acc": s / steps,
            }
        )
        if s % 100 == 0:
            w.write({"type": "eval", "step": s, "tokens": s * 4096, "val_loss": 2.0, "val_ppl": 7.0})
    w.write({"type": "state", "state": "finished", "step": steps})
    w.close()


def bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    steps = parser.parse_args().steps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_run(root / "big", steps)
        for kind in ("csv", "parquet"):
            out = root / f"points.{kind}"
            t0 = time.perf_counter()
            assert main(["--root", str(root), "export", "big", f"--{kind}", "-o", str(out)]) == 0
            took = time.perf_counter() - t0
            size = out.stat().st_size
            print(f"{kind:8s} {steps} steps: {took:6.2f} s, {size / 1e6:6.1f} MB")


if __name__ == "__main__":
    bench()
