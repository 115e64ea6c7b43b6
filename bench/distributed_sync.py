"""What running one run over several processes costs per step, measured on the CPU with gloo.

Two processes (torch.multiprocessing, a real gloo process group on localhost) each hold a model of a
preset's shape with gradients, and time the two collectives the trainer adds to every step:
1. `Dist.average`: the bucketed all-reduce of every gradient plus loss and ce;
2. `Dist.share_steering`: the all-reduce of three flags (stop / pause / new schedule).
Compare the sum with a step of the same model (engine_speed.py, or the engine's step_s records).
Numbers vary with machine load; on a GPU box nccl replaces gloo and the figures differ.

Run: OMP_NUM_THREADS=1 python bench/distributed_sync.py [--preset tiny] [--iters 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from engine.distributed import Dist  # noqa: E402
from engine.models import build_model  # noqa: E402
from nexus_core import config as C  # noqa: E402
from nexus_core.schedule import Schedule  # noqa: E402


def _worker(rank: int, world: int, port: int, preset: str, iters: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    me = Dist(torch.device("cpu"), world, rank, active=True)
    cfg = C.load_preset(preset)
    cfg.model.vocab_size = 256
    model = build_model(cfg.model)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    loss, ce = torch.tensor(3.0), torch.tensor(3.0)
    trainer = SimpleNamespace(
        stop_reason="", paused=False, schedule=Schedule.from_config(cfg.schedule, 1000), cfg=cfg
    )

    def timed(fn) -> float:
        for _ in range(5):
            fn()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) / iters

    avg = timed(lambda: me.average([p.grad for p in params], loss, ce))
    steer = timed(lambda: me.share_steering(trainer))
    if rank == 0:
        n = sum(p.numel() for p in params)
        print(f"{preset}: {n:,} params, {world} processes (gloo, 1 thread each)")
        print(
            f"  average (all-reduce grads + loss + ce): {avg * 1e3:8.3f} ms/step  ({n * 4 / avg / 1e9:.2f} GB/s)"
        )
        print(f"  share_steering (all-reduce of 3 flags):{steer * 1e3:8.3f} ms/step")
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--world", type=int, default=2)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(args.world, port, args.preset, args.iters), nprocs=args.world)


if __name__ == "__main__":
    main()
