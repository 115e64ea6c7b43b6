"""The sections of bench/gpu_check.py. Each takes the shared Context, adds rows, and raises
CheckFailed (or anything) to end early; gpu_check.py catches it, so one section never stops another.

Every engine here is a real `python -m engine` process steered over its real control socket.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_engine import CheckFailed, EngineRun

from nexus_core import protocol as P

PEAK_BF16_TFLOPS = (  # dense bf16 peak by device-name fragment, first match wins
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("H800", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
    ("A10G", 70.0),
    ("L4", 121.0),
)

FAST = [
    "--set",
    "train.sample_every=0",
    "--set",
    "train.ckpt_every=0",
    "--set",
    "train.save_best=false",
    "--set",
    "train.eval_batches=4",
]
"""Side work off for timed runs (the end-of-run checkpoint and evals still happen)."""
CORPUS = ["--set", "data.max_bytes=4000000"]
"""4 MB of the built-in corpus: the BPE presets train their tokenizer in seconds instead of a minute."""


CPU_SHRINK = [
    "--set",
    "model.n_layers=2",
    "--set",
    "model.d_model=32",
    "--set",
    "model.n_heads=2",
    "--set",
    "model.n_kv_heads=1",
    "--set",
    "model.seq_len=32",
    "--set",
    "train.batch_size=4",
    "--set",
    "data.max_bytes=200000",
    "--threads",
    "1",
]
"""Without a GPU every engine shrinks to a toy, so the CPU part ends in a couple of minutes on a busy box."""


def peak_tflops(name: str) -> float | None:
    return next((tf for frag, tf in PEAK_BF16_TFLOPS if frag.lower() in name.lower()), None)


@dataclass
class Context:
    """What every section shares: where runs go, the device, and the rows of the table."""

    runs: Path
    cuda: bool
    gpus: int
    device_name: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    engines: list[EngineRun] = field(default_factory=list)
    train_filter: str = ""
    """run only the training configs whose label contains this"""
    deadline: float = math.inf
    """monotonic time at which the current section must end"""

    def add(self, section: str, check: str, status: str, figures: str = "") -> None:
        self.rows.append((section, check, status, figures))
        print(f"  [{status}] {section}: {check}  {figures}", flush=True)

    def left(self, cap: float = math.inf) -> float:
        left = self.deadline - time.monotonic()
        if left <= 1:
            raise CheckFailed("section time limit reached")
        return min(left, cap)

    def engine(self, name: str, args: list[str], command: str = "train") -> EngineRun:
        device = (
            ["--device", "cuda"]
            if self.cuda
            else ["--device", "cpu", *(CPU_SHRINK if command == "train" else [])]
        )
        run = EngineRun(self.runs, name, [*args, *device], command)
        self.engines.append(run)
        return run


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


# -- training speed ------------------------------------------------------------------------------


def train_configs(ctx: Context) -> list[tuple[str, str, list[str], int, bool]]:
    """(label, preset, extra args, steps, compile) for this machine."""
    if not ctx.cuda:
        return [("tiny", "tiny", [], 40, False), ("hybrid-tiny (chunk 1)", "hybrid-tiny", [], 30, False)]
    gpu_hybrid = ["--set", "model.hybrid.ssm_chunk=32", "--set", "model.hybrid.ssm_state=16"]
    base = [
        ("gpt-6m", "gpt-6m", CORPUS, 300),
        ("gpt-70m", "gpt-70m", CORPUS, 200),
        ("hybrid-6m (chunk 32)", "hybrid-6m", [*CORPUS, *gpu_hybrid], 150),
    ]
    return [(label, p, a, s, False) for label, p, a, s in base] + [
        (label, p, a, s, True) for label, p, a, s in base
    ]


def section_train(ctx: Context) -> None:
    """Every training config, or those whose label contains ctx.train_filter (a targeted rerun)."""
    if not ctx.cuda:
        ctx.add(
            "train", "torch.compile runs", "SKIP", "no GPU: compiled runs skipped (minutes of CPU compile)"
        )
    peak = peak_tflops(ctx.device_name) if ctx.cuda else None
    for label, preset, extra, steps, compiled in train_configs(ctx):
        name = f"train-{preset}-{'compiled' if compiled else 'eager'}"
        check = (
            f"{label} {'compiled' if compiled else 'eager'}{' bf16' if ctx.cuda else ' fp32'} {steps} steps"
        )
        if ctx.train_filter not in check:
            continue
        try:
            _train_one(ctx, name, check, preset, extra, steps, compiled, peak)
        except CheckFailed as e:
            ctx.add("train", check, "FAIL", str(e))
            _kill(ctx, name)


def _kill(ctx: Context, name: str) -> None:
    for run in ctx.engines:
        if run.name == name:
            run.kill()


def _train_one(
    ctx: Context,
    name: str,
    check: str,
    preset: str,
    extra: list[str],
    steps: int,
    compiled: bool,
    peak: float | None,
) -> None:
    t0 = time.monotonic()
    args = [
        "--preset",
        preset,
        "--steps",
        str(steps),
        *FAST,
        *extra,
        "--set",
        f"train.eval_every={max(1, steps // 4)}",
        "--set",
        f"train.compile={str(compiled).lower()}",
    ]
    if ctx.cuda:
        args += ["--set", "train.dtype=bf16"]
    run = ctx.engine(name, args)
    code = run.wait_exit(ctx.left(200 if compiled else 90))
    wall = time.monotonic() - t0
    if code != 0:
        raise CheckFailed(f"exit {code}: {run.last_line()}")
    hello = run.of(P.HELLO)[0]
    metrics = run.metrics()
    steady = metrics[len(metrics) // 3 :] if compiled else metrics[5:]  # past compile / warm-up
    tok_s = _median([m["tok_s"] for m in steady])
    step_ms = 1000 * _median([m["step_s"] for m in steady])
    mem = max(m["mem"] for m in metrics) / 2**30
    params = int(hello["params"])
    mfu = f", MFU {100 * 6 * params * tok_s / (peak * 1e12):.1f}%" if peak else ""
    evals = [e["val_loss"] for e in run.of(P.EVAL)]
    if len(evals) < 2 or not metrics:
        raise CheckFailed(f"{len(metrics)} metric and {len(evals)} eval records; want steps and two evals")
    falls = len(evals) >= 2 and evals[-1] < evals[0]
    figures = (
        f"{params / 1e6:.2f}M params, {tok_s:,.0f} tok/s, {step_ms:.1f} ms/step, "
        f"peak {mem:.2f} GiB{mfu}; val CE {evals[0]:.3f} -> {evals[-1]:.3f}; {wall:.0f}s wall"
    )
    ctx.add("train", check, "PASS" if falls else "FAIL", figures + ("" if falls else " (CE did not fall)"))


# -- a live run: telemetry, hot pause, every command ---------------------------------------------


def section_live(ctx: Context) -> None:
    preset = "gpt-6m" if ctx.cuda else "tiny"
    warm = 20 if ctx.cuda else 5
    run = ctx.engine(
        "live", ["--preset", preset, "--steps", "100000", *FAST, *CORPUS, "--set", "train.eval_every=0"]
    )
    try:
        run.wait_steps(warm, ctx.left(90))
        _telemetry(ctx, run)
        _hot_pause(ctx, run)
        _commands(ctx, run)
    finally:
        run.kill()


def _telemetry(ctx: Context, run: EngineRun) -> None:
    from nexus_tui.telemetry.sampler import Telemetry

    tel = Telemetry(interval=0.5)
    try:
        tel.track(run.name, run.proc.pid)
        time.sleep(1.0)  # utilization and CPU% cover the time since the previous reading
        snap = tel.sample()
        proc = snap.processes.get(run.name)
        ok = proc is not None and proc.alive and (proc.rss or 0) > 0
        ctx.add(
            "telemetry",
            "host and engine process (psutil)",
            "PASS" if ok else "FAIL",
            f"host CPU {snap.host.cpu_percent:.0f}%, engine pid {run.proc.pid} "
            f"CPU {proc.cpu_percent if proc else None}%, RSS {(proc.rss or 0) / 2**20 if proc else 0:.0f} MiB",
        )
        if not ctx.cuda:
            ctx.add("telemetry", "GPU (NVML)", "SKIP", snap.gpu_error or "no GPU")
            return
        if not snap.gpus:
            raise CheckFailed(f"NVML saw no GPU: {snap.gpu_error}")
        g = snap.gpus[0]
        fields = {
            "util": g.util,
            "mem": g.mem_used,
            "temp": g.temp_c,
            "power": g.power_w,
            "sm clock": g.clock_sm_mhz,
            "mem clock": g.clock_mem_mhz,
        }
        missing = [k for k, v in fields.items() if v is None]
        ctx.add(
            "telemetry",
            f"NVML fields on {g.name}",
            "FAIL" if missing else "PASS",
            f"util {g.util}%, mem {(g.mem_used or 0) / 2**30:.1f}/{(g.mem_total or 0) / 2**30:.1f} GiB, "
            f"{g.temp_c} C, {g.power_w} W of {g.power_limit_w} W, SM {g.clock_sm_mhz} MHz, "
            f"mem {g.clock_mem_mhz} MHz" + (f"; missing {missing}" if missing else ""),
        )
        used = g.runs.get(run.name)
        found = run.proc.pid in g.processes
        ctx.add(
            "telemetry",
            "engine in NVML's per-process list",
            "PASS" if found and used else "FAIL",
            f"pid {run.proc.pid}: {used / 2**20 if used else None} MiB; NVML lists pids {sorted(g.processes)}",
        )
    finally:
        tel.stop()


def _held_memory(ctx: Context, run: EngineRun) -> int | None:
    """GPU memory NVML says the engine holds (on a CPU run: its RSS)."""
    from nexus_tui.telemetry.sampler import Telemetry

    tel = Telemetry()
    try:
        tel.track(run.name, run.proc.pid)
        snap = tel.sample()
        if ctx.cuda:
            return snap.gpus[0].runs.get(run.name) if snap.gpus else None
        proc = snap.processes.get(run.name)
        return proc.rss if proc else None
    finally:
        tel.stop()


def _hot_pause(ctx: Context, run: EngineRun) -> None:
    before = _held_memory(ctx, run)
    run.command(P.PAUSE)
    run.wait_for("paused state", lambda: any(s["state"] == P.PAUSED for s in run.of(P.STATE)), ctx.left(30))
    paused_at = run.last_step()
    time.sleep(2.0)  # a paused engine must neither step nor let go of its memory
    during = _held_memory(ctx, run)
    moved = run.last_step() != paused_at
    run.command(P.RESUME)
    after = run.wait_for(
        "a step after resume",
        lambda: [m["step"] for m in run.metrics() if m["step"] > paused_at],
        ctx.left(60),
    )
    tol = 0.01 if ctx.cuda else 0.10
    what = "GPU memory (NVML)" if ctx.cuda else "RSS (no GPU; 10% tolerance)"
    same = before is not None and during is not None and abs(during - before) <= tol * before
    ok = same and not moved and after[0] == paused_at + 1
    ctx.add(
        "control",
        "hot pause keeps the model in memory",
        "PASS" if ok else "FAIL",
        f"{what} {_mib(before)} -> {_mib(during)} MiB while paused; paused at step {paused_at}, "
        f"next step {after[0]}" + ("; stepped while paused" if moved else ""),
    )


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f}"


def _commands(ctx: Context, run: EngineRun) -> None:
    reply = run.command(P.CHECKPOINT, timeout=60)
    path = Path(reply["path"])
    ok = path.is_dir() and any(path.iterdir())
    ctx.add(
        "control", "checkpoint", "PASS" if ok else "FAIL", f"{path.name}: {len(list(path.iterdir()))} files"
    )

    reply = run.command(P.EVAL_NOW, timeout=60)
    val = reply.get("val_loss")
    ok = isinstance(val, float) and math.isfinite(val)
    ctx.add("control", "eval", "PASS" if ok else "FAIL", f"val CE {val}")

    run.command(P.GENERATE, prompt="def ", tokens=40, temperature=0.8, top_k=40)
    sample = run.wait_for(
        "requested sample record", lambda: [s for s in run.of(P.SAMPLE) if s.get("requested")], ctx.left(60)
    )[0]
    ctx.add(
        "control",
        "generate",
        "PASS" if sample["text"] else "FAIL",
        f"{len(sample['text'])} chars: {sample['text'][:40]!r}",
    )

    lr_now = run.metrics()[-1]["lr"]
    target, ramp_steps = lr_now * 0.5, 10
    reply = run.command(P.RAMP, target_lr=target, ramp_steps=ramp_steps)
    s0 = int(reply["step"])
    done = run.wait_for(
        "ramp end", lambda: [m for m in run.metrics() if m["step"] >= s0 + ramp_steps + 3], ctx.left(60)
    )
    near = [m["lr"] for m in run.metrics() if s0 + ramp_steps - 1 <= m["step"] <= s0 + ramp_steps + 3]
    ok = bool(done) and any(abs(lr - target) <= 0.02 * target for lr in near)
    then = f"{near[-1]:.3g}" if near else "?"
    ctx.add(
        "control",
        "ramp",
        "PASS" if ok else "FAIL",
        f"LR {lr_now:.3g} -> target {target:.3g} over {ramp_steps} steps; LR then {then}",
    )

    run.command(P.STOP, timeout=60)
    code = run.wait_exit(ctx.left(60))
    states = [s["state"] for s in run.of(P.STATE)]
    latest = run.run_dir / P.CHECKPOINTS_DIR / "latest"
    ok = code == 0 and states[-1] == P.STOPPED and latest.exists()
    ctx.add(
        "control",
        "stop",
        "PASS" if ok else "FAIL",
        f"exit {code}, last state {states[-1]}, final checkpoint {latest.resolve().name if latest.exists() else None}",
    )


# -- out of memory ------------------------------------------------------------------------------


def section_oom(ctx: Context) -> None:
    if not ctx.cuda:
        ctx.add("oom", "CUDA out of memory", "SKIP", "no GPU")
        return
    batch = 16384
    run = ctx.engine(
        "oom",
        [
            "--preset",
            "gpt-6m",
            "--steps",
            "10",
            *FAST,
            *CORPUS,
            "--set",
            f"train.batch_size={batch}",
            "--set",
            "train.eval_batches=1",
        ],
    )
    code = run.wait_exit(ctx.left(120))
    text = run.log_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("error:") and "out of memory" in ln]
    traceback = "Traceback" in text
    line = lines[0] if lines else ""
    ok = (
        code in (1, 2)
        and len(lines) == 1
        and not traceback
        and "'oom'" in line
        and f"batch_size {batch}" in line
        and "MiB" in line
    )
    ctx.add(
        "oom",
        f"absurd batch ({batch}) on the GPU",
        "PASS" if ok else "FAIL",
        f"exit {code}; {len(lines)} error line(s){', a traceback' if traceback else ''}: {line[:400]}",
    )


# -- resume -------------------------------------------------------------------------------------


def section_resume(ctx: Context) -> None:
    preset, total = ("gpt-6m", 120) if ctx.cuda else ("tiny", 30)
    half = total // 2
    common = [
        "--preset",
        preset,
        "--steps",
        str(total),
        *FAST,
        *CORPUS,
        "--set",
        "train.deterministic=true",
        "--set",
        "train.eval_every=0",
    ]
    whole = ctx.engine("resume-whole", common)
    split = ctx.engine("resume-split", [*common, "--stop-at", str(half)])
    try:
        if split.wait_exit(ctx.left(120)) != 0:
            raise CheckFailed(f"first half: {split.last_line()}")
        split.start(
            ["--device", "cuda" if ctx.cuda else "cpu", *([] if ctx.cuda else ["--threads", "1"])],
            command="resume",
        )
        if split.wait_exit(ctx.left(120)) != 0:
            raise CheckFailed(f"resume: {split.last_line()}")
        if whole.wait_exit(ctx.left(120)) != 0:
            raise CheckFailed(f"uninterrupted run: {whole.last_line()}")
    finally:
        whole.kill()
        split.kill()
    a = {m["step"]: m["loss"] for m in whole.metrics()}
    b = {m["step"]: m["loss"] for m in split.metrics() if m["step"] > half}
    steps = sorted(set(a) & set(b))
    if len(steps) < total - half:
        raise CheckFailed(f"only {len(steps)} resumed steps to compare")
    diff = [abs(a[s] - b[s]) for s in steps]
    tol = 0.05 if ctx.cuda else 1e-6
    ok = max(diff) <= tol
    ctx.add(
        "resume",
        f"{preset}: stop at {half}, resume to {total} vs one run",
        "PASS" if ok else "FAIL",
        f"loss |diff| max {max(diff):.2e}, mean {statistics.mean(diff):.2e} over {len(steps)} steps "
        f"(tolerance {tol:g}); step {steps[0]}: {a[steps[0]]:.4f} vs {b[steps[0]]:.4f}",
    )


# -- several GPUs -------------------------------------------------------------------------------


def section_torchrun(ctx: Context) -> None:
    if ctx.gpus < 2:
        ctx.add("torchrun", "2 ranks", "SKIP", f"{ctx.gpus} GPU(s) here; needs 2")
        return
    run = ctx.engine("torchrun", ["--preset", "gpt-6m", "--steps", "40", "--nproc", "2", *FAST, *CORPUS])
    code = run.wait_exit(ctx.left(180))
    hello: dict[str, Any] = (run.of(P.HELLO) or [{}])[0]
    metrics = run.metrics()
    ok = code == 0 and hello.get("world_size") == 2 and metrics and metrics[-1]["step"] == 40
    ctx.add(
        "torchrun",
        "2 ranks, one run",
        "PASS" if ok else "FAIL",
        f"exit {code}, world_size {hello.get('world_size')}, "
        f"{metrics[-1]['tok_s'] if metrics else 0:,.0f} tok/s at the end",
    )
