"""How long the corpus takes to become tokens, and batches to be drawn: prints measured figures.

Run from the repo root: `python bench/data_speed.py`. Each load uses a fresh run folder unless it
measures the cache (the second BPE load of the same folder reuses tokenizer.json and tokens_*.npy).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from engine.data import get_batch, load_corpus  # noqa: E402
from nexus_core.config import DataConfig  # noqa: E402

T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<46} {time.perf_counter() - t0:8.3f} s")
    return out


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for max_bytes in (4_000_000, 0):
            cfg = DataConfig(max_bytes=max_bytes)
            c = timed(
                f"byte corpus, max_bytes={max_bytes:,}", lambda cfg=cfg: load_corpus(cfg, root / "b", 128)
            )
            print(f"    {c.description}; unigram H = {c.unigram_entropy:.3f} nats/token")
        bpe = DataConfig(tokenizer="bpe", bpe_vocab=2048, max_bytes=4_000_000)
        c = timed("bpe 2048: train + tokenize 4 MB (fresh run)", lambda: load_corpus(bpe, root / "p", 128))
        print(f"    {c.description}; {c.bytes_per_token:.2f} bytes/token")
        timed("bpe 2048: reload (tokenizer.json + token cache)", lambda: load_corpus(bpe, root / "p", 128))
        n = 2000
        t0 = time.perf_counter()
        for p in range(n):
            get_batch(c.train, 16, 128, seed=1, position=p)
        dt = (time.perf_counter() - t0) / n
        print(f"{'get_batch 16x128':<46} {dt * 1e6:8.1f} us/batch")


if __name__ == "__main__":
    main()
