"""What reporting costs the engine's training thread per step, now that its records go through the
reporter's writer thread (nexus/writer.py) instead of being filed on the training thread.

    python bench/engine_writer.py [--steps 20000] [--old PATH_TO_OLD_report.py]

Times `Reporter.metric(...)` with the engine's fields (plus two extra series, as a run with MTP heads
or several param groups sends) on the calling thread, then how long `close()` takes to file what is
still queued. With `--old` (a copy of the former engine/report.py, e.g. `git show
d019997:engine/report.py > /tmp/old_report.py`) it times the old synchronous Reporter on the same
fields too, in the same process. Also: the per-group grad norms against one clip_grad_norm_ on a
tiny model's gradients (the trainer now computes the total from the groups' norms).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FIELDS = {"loss": 3.1, "ce": 3.0, "lr": 3e-4, "gnorm": 0.9, "tok_s": 50_000.0, "step_s": 0.05, "mem": 1 << 30}


def time_reporter(cls: type, steps: int, root: Path, extra: dict) -> tuple[float, float]:
    """(µs per metric() on this thread, s for close())."""
    root.mkdir(parents=True)
    rep = cls(root, run="bench", total_steps=steps)
    rep._print = lambda line: None  # engine.log lines are the same in both
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        rep.metric(step=step, tokens=step * 2048, **FIELDS, **extra)
    per_call = (time.perf_counter() - t0) / steps * 1e6
    t1 = time.perf_counter()
    rep.close()
    return per_call, time.perf_counter() - t1


def grad_norm_cost(rounds: int = 200) -> tuple[float, float]:
    """(µs for clip_grad_norm_ over all grads, µs for the per-group norms + clip) on a tiny model."""
    import torch

    from engine.models import build_model
    from engine.optim import build_optimizer, group_grad_norms
    from nexus_core.config import Config

    cfg = Config(name="bench")
    cfg.model.vocab_size = 256
    model = build_model(cfg.model)
    opt = build_optimizer(model, cfg.optim)
    x = torch.randint(0, 256, (4, cfg.model.seq_len))
    model(x, x).loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]

    def one() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)

    def grouped() -> None:
        norms = group_grad_norms(opt)
        total = torch.nn.utils.get_total_norm(list(norms.values()))
        torch.nn.utils.clip_grads_with_norm_(params, 1.0, total)

    out = []
    for fn in (one, grouped):
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(rounds):
                fn()
            runs.append((time.perf_counter() - t0) / rounds * 1e6)
        out.append(min(runs))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--old", help="path of the former engine/report.py to compare with")
    args = ap.parse_args()
    import torch

    from engine.report import Reporter

    extra = {"mtp/head1_ce": torch.tensor(3.2), "gnorm/adamw_decay": torch.tensor(0.8)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            rows.append(
                ("new (writer thread)", *time_reporter(Reporter, args.steps, Path(tmp) / f"new{i}", extra))
            )
            if args.old:
                spec = importlib.util.spec_from_file_location("old_report", args.old)
                old = importlib.util.module_from_spec(spec)
                assert spec.loader is not None
                spec.loader.exec_module(old)
                plain = {k: float(v) for k, v in extra.items()}
                rows.append(
                    (
                        "old (synchronous)",
                        *time_reporter(old.Reporter, args.steps, Path(tmp) / f"old{i}", plain),
                    )
                )
    print(f"{args.steps} metric records, each with 2 extra series; best of 3")
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        print(
            f"{name:22s} {min(r[1] for r in mine):7.1f} µs/step on the training thread "
            f"(median {statistics.median(r[1] for r in mine):.1f}), close {min(r[2] for r in mine):.2f} s"
        )
    one, grouped = grad_norm_cost()
    print(f"grad norm, tiny model: clip_grad_norm_ {one:.0f} µs, per-group norms + clip {grouped:.0f} µs")


if __name__ == "__main__":
    main()
