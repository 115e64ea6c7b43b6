"""How fast the reporter's writer files a tight loop's steps, and whether any is lost.

    python bench/writer_throughput.py [--calls 1000000] [--keys 8]

Three figures from one run, so a loaded machine slows them alike:
- the bare RecordWriter, one record per write() (the protocol's own writer: the yardstick);
- the writer thread alone, filing a queue of logged steps (`keys` numbers each): steps/s, and its
  ratio to the bare writer (goal: >= 300k steps/s where the bare writer does ~400k records/s);
- a tight loop of `calls` log() calls of `keys` numbers on a real run: the caller's wall time,
  the records on file at the end and the records lost (must print lost 0: log() waits for a writer
  that falls behind instead of dropping).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nexus  # noqa: E402 - after the path fix, so the bench runs from a checkout
from nexus.writer import STEP, Writer  # noqa: E402
from nexus_core import protocol as P  # noqa: E402
from nexus_core.records import RecordWriter  # noqa: E402


def values(i: int, keys: int) -> dict[str, float | int]:
    out: dict[str, float | int] = {f"k{j}": 0.5 * j for j in range(keys - 1)}
    out["tokens"] = i * 64
    return out


def bare_writer(root: Path, n: int, keys: int) -> tuple[float, float]:
    """(records/s by the wall clock, records per CPU second)."""
    writer = RecordWriter(root / "bare.msgpack")
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        writer.write({"type": P.METRIC, "step": i, "time": 1.0, **values(i, keys)})
    spent, cpu = time.perf_counter() - t0, time.process_time() - c0
    writer.close()
    return n / spent, n / cpu


def writer_alone(root: Path, n: int, keys: int) -> tuple[float, float]:
    """(steps/s by the wall clock, steps per CPU second) of the writer thread filing `n` queued
    steps (queued before the clocks start; this thread only waits meanwhile)."""
    folder = root / "alone"
    folder.mkdir()
    writer = Writer(folder, {}, capacity=n + 1)
    writer.describe = None
    for i in range(n):
        writer.put({"type": STEP, "step": i + 1, "time": time.time(), "values": values(i, keys), "lr": None})
    t0, c0 = time.perf_counter(), time.process_time()
    writer.start()
    assert writer.sync(timeout=600), "the writer did not file the queue"
    spent, cpu = time.perf_counter() - t0, time.process_time() - c0
    writer.close()
    return n / spent, n / cpu


def tight_loop(root: Path, calls: int, keys: int) -> tuple[float, float, float, int, int]:
    """(seconds in the loop, CPU seconds of the calling thread in it, seconds to finish, records on
    file, records lost)."""
    run = nexus.init(root=root, name="tight")
    t0, c0 = time.perf_counter(), time.thread_time()
    for i in range(calls):
        run.log(values(i, keys))
    t1, caller_cpu = time.perf_counter(), time.thread_time() - c0
    run.finish()
    t2 = time.perf_counter()
    kept = sum(1 for r in P.read_records(run.dir / P.METRICS_FILE).records if r.type == P.METRIC)
    return t1 - t0, caller_cpu, t2 - t1, kept, calls - kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="log() calls in the tight loop")
    parser.add_argument("--keys", type=int, default=8, help="numbers per log() call")
    parser.add_argument("--alone", type=int, default=200_000, help="steps the writer files alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare, bare_cpu = bare_writer(root, args.alone, args.keys)
        alone, alone_cpu = writer_alone(root, args.alone, args.keys)
        loop_s, caller_cpu, finish_s, kept, lost = tight_loop(root, args.calls, args.keys)
    print("(wall-clock rates move with the machine's load; per-CPU-second rates much less)")
    print(f"bare RecordWriter:   {bare:10,.0f} records/s  {bare_cpu:10,.0f} per CPU s (one write() each)")
    print(
        f"writer thread alone: {alone:10,.0f} steps/s    {alone_cpu:10,.0f} per CPU s, {args.keys} numbers a step "
        f"({alone / bare:.2f}x / {alone_cpu / bare_cpu:.2f}x the bare writer)"
    )
    print(
        f"tight loop:          {args.calls:,} log() calls in {loop_s:.2f} s ({loop_s / args.calls * 1e6:.2f} us "
        f"a call by the wall clock, {caller_cpu / args.calls * 1e6:.2f} us of the caller's CPU; the writer "
        f"shares the GIL), finish {finish_s:.2f} s"
    )
    print(f"records on file:     {kept:,}   lost {lost}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
