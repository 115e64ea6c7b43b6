"""How fast the dashboard's data plane is, measured in one run (numbers vary with machine load).

1. Records/s a MetricStore ingests from a real pipe: a child process writes N metric records
   (msgpack, as the engine packs them) as fast as it can; this process decodes them with the
   protocol's RecordDecoder and ingests them in batches, like a Supervisor reader thread feeding the
   store. Also decode alone, to show what the store's bookkeeping costs on top.
2. Time to prepare one chart series of 1e3 vs 1e6 points: copy it out of the store, downsample to
   a chart's sub-columns, smooth (EMA) the downsampled points; and plotext's build of the result,
   against plotext on raw points (the reason downsampling exists).

Run: python bench/chart_and_ingest.py [--records 300000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus_core.protocol import RecordDecoder  # noqa: E402
from nexus_tui.curves.downsample import downsample, ema_continue  # noqa: E402
from nexus_tui.history.store import MetricStore  # noqa: E402

CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[3])
from nexus_core.protocol import pack
fd, n = int(sys.argv[1]), int(sys.argv[2])
buf = []
for s in range(n):
    buf.append(pack({"type": "metric", "step": s + 1, "tokens": (s + 1) * 2048, "loss": 3.0 - s * 1e-6,
                     "ce": 2.9, "lr": 1e-3, "gnorm": 0.7, "tok_s": 30000.0, "step_s": 0.07, "mem": 1 << 30,
                     "seq": s + 1, "time": 1.7e9 + s * 0.07}))
    if len(buf) == 256:
        os.write(fd, b"".join(buf)); buf = []
if buf:
    os.write(fd, b"".join(buf))
"""


def pipe_ingest(n: int, with_store: bool) -> tuple[float, int]:
    """Seconds to receive (and ingest) n records through a real pipe from another process."""
    r, w = os.pipe()
    store = MetricStore()
    store.ingest("bench", None, [{"type": "hello", "seq": 0, "total_steps": n}])
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(w), str(n), str(ROOT)], pass_fds=(w,))
    os.close(w)
    decoder = RecordDecoder()
    got = 0
    t0 = None
    while data := os.read(r, 1 << 16):
        if t0 is None:
            t0 = time.perf_counter()
        records = decoder.feed(data)
        got += len(records)
        if with_store:
            store.ingest("bench", None, records)
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    os.close(r)
    child.wait()
    if with_store:
        assert len(store.series("bench", "loss")[0]) == n
    return elapsed, got


def prepare(store: MetricStore, name: str, buckets: int) -> tuple[list[float], list[float]]:
    xs, ys = store.series(name, "loss")
    dx, dy = downsample(xs, ys, buckets)
    return dx, ema_continue(dy, 0.6)[0].tolist()


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--buckets", type=int, default=200, help="sub-columns of a ~100-cell-wide chart")
    args = ap.parse_args()
    n = args.records

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    secs, got = pipe_ingest(n, with_store=False)
    print(
        f"pipe -> RecordDecoder:               {got:>9,} records in {secs:.2f}s = {got / secs:>9,.0f} records/s"
    )
    secs, got = pipe_ingest(n, with_store=True)
    print(
        f"pipe -> RecordDecoder -> MetricStore: {got:>9,} records in {secs:.2f}s = {got / secs:>9,.0f} records/s"
    )

    store = MetricStore()
    for size in (1_000, 1_000_000):
        name = f"s{size}"
        recs = [
            {
                "type": "metric",
                "seq": i,
                "step": i + 1,
                "loss": 3.0 + ((i * 7919) % 1000) / 1e4,
                "time": float(i),
            }
            for i in range(size)
        ]
        store.ingest(name, None, recs)
    for size in (1_000, 1_000_000):
        t = best_of(lambda size=size: prepare(store, f"s{size}", args.buckets))
        pts = len(prepare(store, f"s{size}", args.buckets)[0])
        print(f"prepare {size:>9,} points (copy + downsample + ema): {t * 1e3:8.2f} ms -> {pts} points")

    try:
        import plotext as plt
    except ImportError:
        print("plotext not importable: skipping build times")
        return

    def build(xs, ys) -> None:
        plt.clear_figure()
        plt.limitsize(False, False)
        plt.plotsize(100, 25)
        plt.plot(xs, ys)
        plt.build()

    for size in (1_000, 1_000_000):
        dx, dy = prepare(store, f"s{size}", args.buckets)
        t = best_of(lambda dx=dx, dy=dy: build(dx, dy))
        t_all = best_of(lambda size=size: build(*prepare(store, f"s{size}", args.buckets)))
        print(
            f"plotext build, {size:>9,} points downsampled to {len(dx)}: {t * 1e3:8.2f} ms "
            f"(prepare + build: {t_all * 1e3:.2f} ms)"
        )
    for raw in (1_000, 100_000):
        xs, ys = store.series("s1000000", "loss")
        xs, ys = list(xs[:raw]), list(ys[:raw])
        t = best_of(lambda xs=xs, ys=ys: build(xs, ys), repeat=1)
        print(f"plotext build, {raw:>9,} raw points (no downsampling): {t * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
