"""What sharing rank 0's steering costs each step under torchrun: `RankSteering.step_end()` per call.

    python -m torch.distributed.run --standalone --nproc-per-node 2 bench/ranks_step_end.py [--calls 2000]

Two ranks (gloo on the CPU, as under NCCL, where the decisions take a gloo group of their own): rank
0 has a real run in a temporary folder, nothing is commanded, so each call is rank 0's
`run.step_end()` plus one broadcast of the 8-float decision. Printed by rank 0: microseconds per
call (median of blocks), beside an empty `dist.barrier()` for scale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nexus  # noqa: E402 - after the path fix, so the bench runs from a checkout
from nexus.ranks import RankSteering  # noqa: E402


def per_call(fn, calls: int, blocks: int = 5) -> float:
    times = []
    for _ in range(blocks):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    opt = torch.optim.SGD(torch.nn.Linear(4, 4).parameters(), lr=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        run = nexus.init(run_dir=Path(tmp) / "bench") if rank == 0 else None
        if run is not None:
            run.watch(opt)
        steer = RankSteering(run, opt, lambda decision: None)
        shared = per_call(steer.step_end, calls)
        barrier = per_call(dist.barrier, calls)
        if run is not None:
            run.finish()
            print(
                f"RankSteering.step_end: {shared:.0f} us/call on {dist.get_world_size()} ranks "
                f"(an empty barrier: {barrier:.0f} us)"
            )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
