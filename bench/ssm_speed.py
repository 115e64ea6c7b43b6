"""Measured speed of the selective-SSM scans and of the hybrid/engram tiny presets on this machine.

Prints figures, asserts nothing: the chunked scan trades chunk x more elementwise work for fewer
sequential steps, which pays on a GPU and costs on a CPU; chunk 1 runs the stepwise scan (the loop
with a hand-written backward). The preset's ssm_chunk is a measured choice. Run: `python bench/ssm_speed.py` (one torch thread; numbers are noisy on a shared machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.models import build_model  # noqa: E402
from engine.models.ssm import (  # noqa: E402
    selective_scan_chunked,
    selective_scan_sequential,
    selective_scan_stepwise,
)
from nexus_core.config import load_preset  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    """Fastest of `repeats` runs, in seconds (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def scan_figures(b: int = 16, T: int = 128, d: int = 256, n: int = 8) -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(b, T, d, generator=g, requires_grad=True)
    delta = (torch.rand(b, T, d, generator=g) * 0.1).requires_grad_()
    A = (-torch.rand(d, n, generator=g) * 8).requires_grad_()
    B = torch.randn(b, T, n, generator=g, requires_grad=True)
    C = torch.randn(b, T, n, generator=g, requires_grad=True)
    D = torch.ones(d)
    print(f"scan fwd+bwd, b={b} T={T} d_inner={d} N={n}:")
    t = best_of(lambda: selective_scan_sequential(u, delta, A, B, C, D)[0].sum().backward())
    print(f"  sequential        {t * 1e3:8.1f} ms")
    t = best_of(lambda: selective_scan_stepwise(u, delta, A, B, C, D)[0].sum().backward())
    print(f"  stepwise          {t * 1e3:8.1f} ms   (= chunked L=1)")
    for chunk in (2, 4, 8, 16):
        t = best_of(lambda c=chunk: selective_scan_chunked(u, delta, A, B, C, D, c)[0].sum().backward())
        print(f"  chunked L={chunk:<3}     {t * 1e3:8.1f} ms")


def preset_figures(name: str, overrides: dict[str, int] | None = None) -> float:
    cfg = load_preset(name)
    cfg.model.vocab_size = 256
    for k, v in (overrides or {}).items():
        setattr(cfg.model.hybrid, k, v)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (cfg.train.batch_size, cfg.model.seq_len + 1))

    def step() -> None:
        out = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        out.loss.backward()
        opt.step()

    step()
    t = best_of(step)
    tokens = cfg.train.batch_size * cfg.model.seq_len
    extra = " ".join(f"{k}={v}" for k, v in (overrides or {}).items())
    print(
        f"  {name:12s} {extra:14s} {model.num_params():>9,d} params  {t * 1e3:7.1f} ms/step  {tokens / t:7.0f} tok/s"
    )
    return t


if __name__ == "__main__":
    torch.set_num_threads(1)
    scan_figures()
    print("train step (fwd+bwd+AdamW), preset batch and seq_len:")
    tiny = preset_figures("tiny")
    hybrid = [preset_figures("hybrid-tiny", {"ssm_chunk": chunk}) for chunk in (1, 2, 4, 8)]
    preset_figures("engram-tiny")
    preset_figures("lstm-tiny")
    print(f"hybrid-tiny (fastest chunk) / tiny step time: {min(hybrid) / tiny:.2f}x")
