"""How much does the Nexus loop cost? Tokens/s of `Trainer` against a plain PyTorch loop that trains
the same model, with the same optimizer, on the same batches, measured in one process, one run.

The plain loop is what you would write by hand (nanoGPT style): batch, forward, backward, clip, step,
loss.item(). The Nexus loop adds the LR schedule, records to file and pipe-less writer, the status
file, command polling, health checks and memory readings. Each loop is timed over the same steps
after a warm-up, alternating twice and keeping the best of each, since the machine is shared.

    python bench/engine_speed.py [--preset tiny] [--steps 60] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from engine.data import get_batch, load_corpus  # noqa: E402
from engine.device import autocast, autocast_dtype, resolve_device  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.optim import build_optimizer, set_lr_multiplier  # noqa: E402
from engine.trainer import Trainer  # noqa: E402
from nexus_core import protocol as P  # noqa: E402
from nexus_core.config import apply_override, load_preset  # noqa: E402

WARMUP = 5


def nexus_loop(cfg, root: Path, tag: str) -> float:
    """Tokens/s of the real Trainer over steps WARMUP+1..N, from its own metric timestamps."""
    run_dir = root / f"nexus-{tag}"
    trainer = Trainer(cfg, run_dir)
    assert trainer.run() == 0
    times = {r["step"]: r["time"] for r in P.iter_records(run_dir / P.METRICS_FILE, frozenset({P.METRIC}))}
    steps = cfg.train.steps - WARMUP
    return steps * trainer.tokens_per_step / (times[cfg.train.steps] - times[WARMUP])


def plain_loop(cfg, root: Path) -> float:
    """Tokens/s of a hand-written loop on the same model, optimizer and batches."""
    t = cfg.train
    device = resolve_device(t.device)
    amp = autocast_dtype(device, t.dtype)
    torch.manual_seed(t.seed)
    corpus = load_corpus(cfg.data, root, cfg.model.seq_len)
    cfg.model.vocab_size = corpus.tokenizer.vocab_size
    model = build_model(cfg.model).to(device)
    opt = build_optimizer(model, cfg.optim)
    set_lr_multiplier(opt, 1.0)
    start = 0.0
    for step in range(t.steps):
        if step == WARMUP:
            start = time.perf_counter()
        for i in range(t.grad_accum):
            x, y = get_batch(
                corpus.train, t.batch_size, cfg.model.seq_len, t.seed, step * t.grad_accum + i, device
            )
            with autocast(device, amp):
                loss = model(x, y).loss
            (loss / t.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return (t.steps - WARMUP) * t.batch_size * t.grad_accum * cfg.model.seq_len / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    def config():
        cfg = load_preset(args.preset)
        cfg.train.steps, cfg.train.device, cfg.train.threads = args.steps, args.device, args.threads
        cfg.train.eval_every, cfg.train.sample_every, cfg.train.ckpt_every = 10**9, 0, 0
        cfg.data.max_bytes = min(cfg.data.max_bytes or 2_000_000, 2_000_000)
        for text in args.set:
            apply_override(cfg, text)
        return cfg.validate()

    plain, nexus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(2):
            plain.append(plain_loop(config(), Path(tmp)))
            nexus.append(nexus_loop(config(), Path(tmp), str(round_)))
    cfg = config()
    print(
        f"preset {args.preset} on {args.device}, {args.threads} thread(s), {args.steps - WARMUP} timed steps of "
        f"{cfg.train.batch_size * cfg.train.grad_accum * cfg.model.seq_len} tokens"
    )
    print(f"plain PyTorch loop: {max(plain):10.0f} tok/s   (rounds: {', '.join(f'{v:.0f}' for v in plain)})")
    print(f"nexus Trainer loop: {max(nexus):10.0f} tok/s   (rounds: {', '.join(f'{v:.0f}' for v in nexus)})")
    print(f"ratio nexus/plain:  {max(nexus) / max(plain):10.3f}")


if __name__ == "__main__":
    main()
