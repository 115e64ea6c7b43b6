"""Compare the model families: train each family's tiny preset for the same tokens, print a table.

Every run goes through the real CLI (`python -m engine train --preset P`) on the built-in corpus
(the Python standard library's own source, byte tokens), same steps, batch and sequence length, so
the rows differ only in the model. Held-out CE is the trainer's own eval at the last step; bits per
byte is CE / ln 2 (byte tokens: one token is one byte); tok/s is the median over the run's steps.

Run: `python bench/families.py` (150 steps each, 2 torch threads: a few minutes on a laptop CPU).
One run per family, one seed: differences of a few hundredths of a nat are within noise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus_core import protocol as P  # noqa: E402

PRESETS = ("tiny", "hybrid-tiny", "engram-tiny", "lstm-tiny")


def train(preset: str, steps: int, threads: int, eval_batches: int, run_dir: Path) -> dict[str, float | str]:
    """One CLI run; returns the table row read back from its metrics file."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    args = [
        sys.executable,
        "-m",
        "engine",
        "train",
        "--preset",
        preset,
        "--steps",
        str(steps),
        "--threads",
        str(threads),
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
        "--set",
        f"train.eval_every={steps}",
        "--set",
        f"train.eval_batches={eval_batches}",
        "--set",
        "train.sample_every=0",
        "--set",
        "train.ckpt_every=0",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{preset}: {done.stderr.strip().splitlines()[-1]}")
    records = list(P.iter_records(run_dir / P.METRICS_FILE))
    hello = next(r for r in records if r["type"] == P.HELLO)
    metrics = [r for r in records if r["type"] == P.METRIC]
    final = [r for r in records if r["type"] == P.EVAL][-1]
    ce = final["val_loss"]
    return {
        "preset": preset,
        "family": hello["config"]["model"]["family"],
        "params": hello["params"],
        "tokens": metrics[-1]["tokens"],
        "train_ce": statistics.mean(r["ce"] for r in metrics[-10:]),
        "val_ce": ce,
        "bpb": ce / math.log(2),
        "tok_s": statistics.median(r["tok_s"] for r in metrics[5:] or metrics),
        "wall": wall,
    }


def table(rows: list[dict[str, float | str]]) -> str:
    lines = [
        "| preset | family | params | held-out CE (nats) | bits/byte | train CE (last 10) | tok/s | wall (s) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['family']} | {r['params']:,} | {r['val_ce']:.3f} | {r['bpb']:.3f} "
            f"| {r['train_ce']:.3f} | {r['tok_s']:,.0f} | {r['wall']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="steps per family (default 150)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--eval-batches", type=int, default=16, help="held-out batches for the final CE")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--keep", help="keep the run folders under this folder (default: a temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        rows = []
        for preset in args.presets:
            rows.append(train(preset, args.steps, args.threads, args.eval_batches, base / preset))
            print(f"{preset}: done in {rows[-1]['wall']:.0f} s", file=sys.stderr, flush=True)
    tokens = rows[0]["tokens"]
    print(
        f"{dt.date.today().isoformat()}, {platform.machine()} CPU with {os.cpu_count()} cores, "
        f"{args.threads} torch threads; {args.steps} steps x {tokens // args.steps:,} tokens = {tokens:,} "
        f"training tokens each; held-out CE over {args.eval_batches} batches at the last step.\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
