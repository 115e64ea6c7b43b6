"""The GPU acceptance check: everything on Nexus's CUDA path, in one table, in about six minutes.

    python bench/gpu_check.py --out DIR [--only train,live,oom,resume,torchrun] [--budget 400]
                              [--train-filter 'hybrid-6m (chunk 32) compiled']
    make gpu-check

Sections (each its own time limit; one failing never stops the others):
  train     gpt-6m, gpt-70m and the 6.7M hybrid at its GPU chunk size (32), bf16, eager and compiled:
            tok/s, step time, peak memory, MFU (6 * params * tok/s over the bf16 dense peak of the
            device, from PEAK_BF16_TFLOPS), and held-out CE falling
  live      one engine steered over its control socket as the dashboard does: nexus_tui's Telemetry
            on the real driver (util, memory, temperature, power, clocks; the engine's pid in
            NVML's per-process list), a hot pause (GPU memory within 1%, same step after), then
            checkpoint, eval, generate, ramp and stop
  oom       an absurd batch: one `error:` line naming the run, batch size and memory; clean exit
  resume    stop at half, resume, compare the loss curve with one uninterrupted run (deterministic
            kernels on; bf16 tolerance 0.05)
  torchrun  2 ranks, only where there are 2 GPUs

Without a GPU it says what it skips and runs a tiny CPU variant of the rest (a couple of minutes).
Writes table.md, results.json and engines.log (every engine's log) to --out; exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_sections as S  # noqa: E402
from gpu_engine import CheckFailed  # noqa: E402

SECTIONS = {  # name -> (function, time limit in seconds on a GPU, on a CPU)
    "live": (S.section_live, 90, 120),
    "oom": (S.section_oom, 60, 10),
    "resume": (S.section_resume, 70, 120),
    "train": (S.section_train, 330, 150),
    "torchrun": (S.section_torchrun, 120, 10),
}


def environment() -> tuple[bool, int, str, list[str]]:
    """(cuda, GPU count, device name, lines to print) — nvidia-smi -L and torch's view."""
    import torch

    lines = [f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})"]
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
        lines += [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    else:
        lines.append("nvidia-smi: not found")
    cuda = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if cuda else 0
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    if cuda:
        peak = S.peak_tflops(name)
        lines.append(
            f"device 0: {name}, {gpus} GPU(s); bf16 dense peak "
            f"{f'{peak:.0f} TFLOP/s' if peak else 'unknown (no MFU)'}"
        )
    else:
        lines.append("no CUDA device: GPU-only checks are skipped, the rest runs a tiny CPU variant")
    return cuda, gpus, name, lines


def table(rows: list[tuple[str, str, str, str]], title: str) -> str:
    out = [f"### {title}", "", "| section | check | result | figures |", "| --- | --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} | {d.replace('|', '/')} |" for a, b, c, d in rows]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", default="gpu-check-out", help="folder for table.md, results.json, engines.log"
    )
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--budget", type=float, default=440.0, help="seconds for all sections together")
    parser.add_argument(
        "--train-filter",
        default="",
        help="only the train runs whose label contains this, e.g. 'hybrid-6m (chunk 32) compiled'",
    )
    parser.add_argument("--runs", help="folder for the run folders (default: a temporary one)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    cuda, gpus, name, env_lines = environment()
    print("\n".join(env_lines), flush=True)
    runs = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="nexus-gpu-check-"))
    ctx = S.Context(runs=runs, cuda=cuda, gpus=gpus, device_name=name, train_filter=args.train_filter)
    for section in chosen:
        fn, gpu_limit, cpu_limit = SECTIONS[section]
        left = args.budget - (time.monotonic() - start)
        if left < 15:
            ctx.add(section, "whole section", "FAIL", f"not run: the {args.budget:.0f}s budget is spent")
            continue
        print(f"== {section}", flush=True)
        t0 = time.monotonic()
        ctx.deadline = t0 + min(gpu_limit if cuda else cpu_limit, left)
        try:
            fn(ctx)
        except CheckFailed as e:
            ctx.add(section, "section", "FAIL", str(e))
        except Exception as e:  # noqa: BLE001 - a broken section is a row, not the end of the check
            ctx.add(section, "section", "FAIL", f"{type(e).__name__}: {e}")
        finally:
            for run in ctx.engines:
                run.kill()
        print(f"   ({time.monotonic() - t0:.0f}s)", flush=True)

    total = time.monotonic() - start
    title = (
        f"gpu_check on {name} ({gpus} GPU) — {total:.0f}s"
        if cuda
        else f"gpu_check on CPU (no GPU) — {total:.0f}s"
    )
    text = "\n".join(f"    {ln}" for ln in env_lines) + "\n\n" + table(ctx.rows, title)
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps(
            {"device": name, "gpus": gpus, "seconds": total, "env": env_lines, "rows": ctx.rows}, indent=1
        )
    )
    with open(out / "engines.log", "w") as f:
        for run in ctx.engines:
            f.write(f"\n===== {run.name} ({run.run_dir})\n{run.log_text()[-20000:]}")
    print("\n" + text, flush=True)
    failed = [r for r in ctx.rows if r[2] == "FAIL"]
    print(
        f"{len(failed)} failed, {sum(r[2] == 'PASS' for r in ctx.rows)} passed, "
        f"{sum(r[2] == 'SKIP' for r in ctx.rows)} skipped",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
