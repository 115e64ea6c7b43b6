"""What the reporter costs a training loop: per log() call, and per step of a plain loop.

    python bench/reporter_overhead.py [--device cpu|cuda] [--steps 3000] [--blocks 10]

One run measures both loops, interleaved in blocks (A, B, A, B, ...) so that a machine whose load
changes meanwhile slows both alike: the plain loop, and the same loop with `run.log({...})` of a loss
tensor, a grad-norm tensor and two floats plus `run.step_end()` each step. The ratio is the median
block's steps/s with the reporter over without (goal: >= 0.99). The figures in the README came from
this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nexus  # noqa: E402 - after the path fix, so the bench runs from a checkout


def make(device: str, width: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(width, width),
        torch.nn.GELU(),
        torch.nn.Linear(width, width),
        torch.nn.GELU(),
        torch.nn.Linear(width, 1),
    ).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def block(model, opt, x, y, steps: int, run: nexus.Run | None) -> float:
    """steps/s of `steps` training steps, reporting to `run` if given."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if run is not None:
            run.log({"loss": loss, "grad_norm": gnorm, "lr": 1e-3, "tokens": i * 64})
            run.step_end()
    sync()
    return steps / (time.perf_counter() - t0)


def per_log_call(run: nexus.Run, device: str, n: int = 2_000) -> float:
    """Microseconds per log() call on the training thread (a tensor and three floats), best of 5 bursts
    of n calls (the writer thread's share is in the per-step figure, not here)."""
    loss = torch.ones((), device=device)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            run.log({"loss": loss, "lr": 1e-3, "tokens": i, "train/acc": 0.5})
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
        time.sleep(0.3)  # let the writer catch up between bursts
    return best


def writer_per_step(root: str, device: str, n: int = 5_000) -> float:
    """Microseconds of the writer thread's work per logged step (route, read tensors, pack, append),
    timed on this thread so no other thread's share blurs it."""
    from nexus.writer import STEP, Writer

    writer = (
        Writer(Path(root) / "writer-bench", {}) if (Path(root) / "writer-bench").mkdir() is None else None
    )
    loss = torch.ones((), device=device)
    for i in range(n):
        writer.put(
            {
                "type": STEP,
                "step": i,
                "time": time.time(),
                "lr": None,
                "values": {"loss": loss.detach(), "lr": 1e-3, "tokens": i, "train/acc": 0.5},
            }
        )
    t0 = time.perf_counter()
    while writer.queue:  # a pass files at most one chunk
        writer._flush()
    spent = time.perf_counter() - t0
    writer.close()
    return spent / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=300, help="steps per block")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per loop (interleaved)")
    parser.add_argument("--width", type=int, default=256, help="hidden width of the MLP")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, opt = make(args.device, args.width)
    x = torch.randn(args.batch, args.width, device=args.device)
    y = torch.randn(args.batch, 1, device=args.device)
    with tempfile.TemporaryDirectory() as root:
        run = nexus.init(root=root, name="bench", total_steps=args.steps * args.blocks)
        block(model, opt, x, y, args.steps // 3, None)  # warm-up, both paths
        block(model, opt, x, y, args.steps // 3, run)
        plain, reported = [], []
        for _ in range(args.blocks):
            plain.append(block(model, opt, x, y, args.steps, None))
            reported.append(block(model, opt, x, y, args.steps, run))
        log_us = per_log_call(run, args.device)
        run.finish()
        writer_us = writer_per_step(root, args.device)
    p, r = statistics.median(plain), statistics.median(reported)
    step_us = (1 / r - 1 / p) * 1e6
    print(
        f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU, 1 thread'}), "
        f"MLP width {args.width}, batch {args.batch}, {args.blocks} x {args.steps} steps per loop"
    )
    print(f"plain loop:      {p:9.1f} steps/s (median block; {min(plain):.1f}..{max(plain):.1f})")
    print(f"with reporter:   {r:9.1f} steps/s (median block; {min(reported):.1f}..{max(reported):.1f})")
    print(f"ratio:           {r / p:9.4f}  (goal >= 0.99)")
    print(f"cost per step:   {step_us:9.1f} us (log of 4 keys + step_end, writer thread included)")
    print(f"cost per log():  {log_us:9.2f} us on the training thread")
    print(f"writer thread:   {writer_us:9.2f} us per logged step (off the training thread; shares the GIL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
