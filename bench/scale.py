"""How Nexus scales with a run's length: open, memory, redraw and live ingest at 1e4..1e7 steps.

For each size N this writes (once, then reuses) a finished run of N steps with the real RecordWriter
(hello, a metric record of 8 numbers a step, an eval every 10k steps, a final state, a status file)
and measures, each in its own subprocess so peak RSS is that size's alone:

- open: seconds from the interpreter starting (as when a person types `nexus`) to *complete charts*
  in the real app driven headless by `App.run_test()`. Complete means: the run is in the table with
  its final state, and each of the four charts has been handed a curve of this run whose last x is
  step N and has drawn it (a chart waiting for its next live slot is not complete). Run twice: "cold" with no columnar cache beside the run (the open
  builds it), then "warm" with it.
- peak RSS of that app process (ru_maxrss), and its growth over an empty app; "private": its
  RssAnon at complete charts (memory it holds, without file pages of the cache it mapped); "child":
  the peak RSS of the prebuild child `nexus` starts to decode a history with no cache yet on the
  other core (live/prebuild.py; the bench starts it as `nexus` does, before importing Textual).
- redraw: the median cost of one charts-panel redraw plus the render of the four plotext charts,
  with 5 new metric records arriving between frames as from a live run.
- live ingest: records/s from a real pipe (a child process writes the run's file into it) through the
  supervisor's own pipe reader (`engine_io.read_pipe`) into a MetricStore.
- TensorBoard (where importable, `pip install tensorboard`): the same numbers written with its
  SummaryWriter (one event per step holding the 8 scalars, plus val_loss), loaded with the
  EventAccumulator as TensorBoard does (default size guidance), as the peer ratio.

Run: python bench/scale.py [--sizes 10000 100000 1000000] [--huge] [--no-tb] [--dir /tmp/nexus-scale]
     [--code /path/to/other/checkout]  (its nexus_tui, measured by this script: before/after)
     [--frames K]  (only the empty app's first frame, K times: its spread under this machine's load)
(--huge adds 1e7 steps: writing it takes minutes, once.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL_EVERY = 10_000


def metric_fields(step: int) -> dict:
    loss = 2.0 + 3.0 / math.sqrt(step) + 0.05 * math.sin(step * 0.37) + (0.8 if step % 99_991 == 0 else 0.0)
    return {
        "step": step,
        "tokens": step * 4096,
        "loss": loss,
        "ce": loss - 0.01,
        "lr": 3e-4 * min(1.0, step / 2000),
        "gnorm": 0.5 + 1.0 / math.sqrt(step),
        "tok_s": 30000.0 + (step % 17) * 10,
        "step_s": 0.13,
        "mem": 1_500_000_000 + (step % 5) * 4096,
    }


def write_run(run_dir: Path, n: int) -> None:
    """A finished run of n steps, written as the engine writes it."""
    sys.path.insert(0, os.environ.get("NEXUS_BENCH_CODE", str(ROOT)))
    from nexus_core.protocol import RecordWriter, write_status

    done = run_dir / ".bench-complete"
    if done.exists():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("*"):
        if stale.is_file():
            stale.unlink()
    t = time.perf_counter()
    w = RecordWriter(run_dir / "metrics.msgpack")
    w.write(
        {
            "type": "hello",
            "run": run_dir.name,
            "protocol": 1,
            "config": {"train": {"steps": n}},
            "pid": 1,
            "device": "cpu",
            "params": 1_000_000,
            "total_steps": n,
            "start_step": 0,
            "model": "transformer",
            "resumed_from": None,
        }
    )
    w.write({"type": "state", "state": "running", "step": 0, "reason": ""})
    for step in range(1, n + 1):
        w.write({"type": "metric", **metric_fields(step)})
        if step % EVAL_EVERY == 0:
            val = 2.1 + 3.0 / math.sqrt(step)
            w.write(
                {
                    "type": "eval",
                    "step": step,
                    "tokens": step * 4096,
                    "val_loss": val,
                    "val_ppl": math.exp(val),
                    "best": True,
                }
            )
    w.write(
        {"type": "state", "state": "finished", "step": n, "reason": "reached total_steps", "exit_code": 0}
    )
    w.close()
    write_status(run_dir, {"pid": 1, "state": "finished", "step": n, "total_steps": n, "device": "cpu"})
    done.write_text(f"{n}\n")
    print(
        f"  wrote {n:,} steps in {time.perf_counter() - t:.1f}s "
        f"({(run_dir / 'metrics.msgpack').stat().st_size / 1e6:.0f} MB)",
        file=sys.stderr,
    )


# -- children: each prints one JSON line ------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _anon_mb() -> float:
    """Private memory now (RssAnon): what the app holds, without file pages it has mapped (the
    columnar cache while it is read), which the kernel can drop at any time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_open(root: Path, n: int, t_start: float) -> None:
    """Open the app on `root` and wait for complete charts of its one run (n steps, or an empty root)."""
    import asyncio
    import statistics

    sys.path.insert(0, os.environ.get("NEXUS_BENCH_CODE", str(ROOT)))
    prebuild = None
    try:  # as `nexus` does before it imports Textual (a checkout from before it has no prebuild)
        from nexus_tui.live.prebuild import Prebuild

        prebuild = Prebuild.start(root)
    except ImportError:
        pass
    from nexus_tui.app import make_app

    async def go() -> dict:
        app = make_app(root=root) if prebuild is None else make_app(root=root, prebuild=prebuild)
        out: dict = {"child_rss_mb": 0.0}
        async with app.run_test(size=(200, 50)) as pilot:
            out["first_frame_s"] = time.time() - t_start
            if n == 0:
                await pilot.pause(1.0)  # the services start after the first frame
                out["rss_mb"], out["anon_mb"] = _peak_rss_mb(), _anon_mb()
                return out
            from nexus_tui.widgets.charts_panel import CHARTS, ChartsPanel

            panel = app.query_one(ChartsPanel)
            keys = [key for key, _ in CHARTS]

            def complete() -> bool:
                run = next(iter(app.store.runs()), None)
                if run is None or run.state != "finished" or getattr(run, "loading", None) is not None:
                    return False
                for key in keys:
                    chart = panel.chart(key)
                    if not any(len(c.xs) and c.xs[-1] == n for c in chart.spec.curves):
                        return False
                    if hasattr(chart, "_chart_built") and (
                        chart._chart_built is None or chart._chart_built[0] != chart._chart_sig
                    ):
                        return False  # handed to the chart but not drawn yet (waiting for a live slot)
                return True

            deadline = time.time() + 900
            while not complete():
                if time.time() > deadline:
                    out["error"] = "timed out"
                    return out
                await pilot.pause(0.01)
            await pilot.pause()  # the frame that renders those specs
            out["open_s"] = time.time() - t_start
            out["rss_mb"], out["anon_mb"] = _peak_rss_mb(), _anon_mb()
            if prebuild is not None:  # its work is done: reaped, its peak is the children's peak
                import resource

                prebuild.close()
                out["child_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            # Redraw: a live run's 5 new records between frames, then redraw + render of the 4 charts.
            from nexus_tui.themes import palette_for
            from nexus_tui.widgets.chart import MetricChart

            name = app.store.runs()[0].name
            seq = 10 * n + 10
            times = []
            for i in range(15):
                recs = []
                for k in range(5):
                    step = n + 5 * i + k + 1
                    recs.append({"type": "metric", "seq": seq, "time": time.time(), **metric_fields(step)})
                    seq += 1
                app.store.ingest(name, None, recs)
                t = time.perf_counter()
                panel.redraw(app.store, [name], palette_for(app.theme))
                for chart in app.query(MetricChart):
                    chart.render()
                times.append(time.perf_counter() - t)
            out["redraw_ms"] = statistics.median(times[3:]) * 1e3
        return out

    print(json.dumps(asyncio.run(go())))


def child_ingest(path: Path, n: int) -> None:
    """Records/s from a real pipe into a MetricStore through the supervisor's pipe reader."""
    import threading

    sys.path.insert(0, os.environ.get("NEXUS_BENCH_CODE", str(ROOT)))
    from nexus_tui.history.store import MetricStore
    from nexus_tui.live import engine_io

    store = MetricStore()
    r, w = os.pipe()
    if hasattr(engine_io, "widen_pipe"):  # the supervisor's pipe, as it sets it up
        engine_io.widen_pipe(r)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,sys\nfd=int(sys.argv[1])\nwith open(sys.argv[2],'rb') as f:\n"
            " while b:=f.read(1<<16):\n  v=memoryview(b)\n  while v: v=v[os.write(fd,v):]\n",
            str(w),
            str(path),
        ],
        pass_fds=(w,),
    )
    os.close(w)
    first: list[float] = []

    def deliver(batch) -> None:
        if not first:
            first.append(time.perf_counter())
        if batch and isinstance(batch[0], dict):  # before the columnar path: record dicts
            store.ingest("live", None, batch)
        else:
            store.ingest_batch("live", None, batch)

    t0 = time.perf_counter()
    engine_io.read_pipe(
        r, lambda: writer.poll() is not None, deliver, lambda text: None, threading.Event(), 0.05
    )
    elapsed = time.perf_counter() - t0
    writer.wait()
    got = len(store.get("live").series["ce"])
    total = n + n // EVAL_EVERY + 3
    print(json.dumps({"ingest_rps": total / elapsed, "points": got, "ok": got == n}))


def write_tb(logdir: Path, n: int) -> None:
    done = logdir / ".bench-complete"
    if done.exists():
        return
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter

    t = time.perf_counter()
    w = SummaryWriter(str(logdir))
    for step in range(1, n + 1):
        f = metric_fields(step)
        vals = [
            Summary.Value(tag=k, simple_value=float(f[k]))
            for k in ("tokens", "loss", "ce", "lr", "gnorm", "tok_s", "step_s", "mem")
        ]
        if step % EVAL_EVERY == 0:
            vals.append(Summary.Value(tag="val_loss", simple_value=2.1 + 3.0 / math.sqrt(step)))
        w.file_writer.add_summary(Summary(value=vals), step)
    w.close()
    done.write_text(f"{n}\n")
    print(f"  wrote TensorBoard events for {n:,} steps in {time.perf_counter() - t:.1f}s", file=sys.stderr)


def child_tb(logdir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = time.perf_counter()
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    points = sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    print(json.dumps({"tb_s": time.perf_counter() - t, "tb_points": points, "rss_mb": _peak_rss_mb()}))


# -- the parent ------------------------------------------------------------------------------------------------


def run_child(args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=1800
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--huge", action="store_true", help="also 1e7 steps (writing it takes minutes, once)")
    ap.add_argument("--no-tb", action="store_true", help="skip the TensorBoard peer")
    ap.add_argument(
        "--tb-max",
        type=int,
        default=1_000_000,
        help="the TensorBoard peer only up to this many steps (it loads 1e6 in ~100 s here)",
    )
    ap.add_argument("--no-ingest", action="store_true")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nexus-scale"))
    ap.add_argument(
        "--code", type=Path, default=ROOT, help="the checkout whose Nexus to measure (before/after)"
    )
    ap.add_argument(
        "--frames", type=int, default=0, help="only time the empty app's first frame, this many times"
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "open":
            child_open(Path(rest[0]), int(rest[1]), float(rest[2]))
        elif kind == "ingest":
            child_ingest(Path(rest[0]), int(rest[1]))
        elif kind == "tb":
            child_tb(Path(rest[0]))
        return

    sizes = list(args.sizes) + ([10_000_000] if args.huge else [])
    tb_ok = not args.no_tb
    if tb_ok:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            tb_ok = False
            print("tensorboard not importable: no peer column (pip install tensorboard)")
    code = str(args.code.resolve())
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(args.dir / "config"),
        "PYTHONPATH": code,
        "NEXUS_BENCH_CODE": code,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    print(f"code from {code}")
    empty = args.dir / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    if args.frames:
        frames = sorted(
            run_child(["--child", "open", str(empty), "0", repr(time.time())], env).get(
                "first_frame_s", float("nan")
            )
            for _ in range(args.frames)
        )
        print(
            f"empty app, first frame x{args.frames}: median {frames[len(frames) // 2]:.3f}s, "
            f"min {frames[0]:.3f}s, max {frames[-1]:.3f}s ({' '.join(f'{f:.3f}' for f in frames)}; "
            f"load {os.getloadavg()[0]:.1f})"
        )
        return
    base = run_child(["--child", "open", str(empty), "0", repr(time.time())], env)
    base_rss = run_child(["--child", "open", str(empty), "0", repr(time.time())], env)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"empty app: first frame {base.get('first_frame_s', float('nan')):.2f}s / "
        f"{base_rss.get('first_frame_s', float('nan')):.2f}s, peak RSS {base_rss.get('rss_mb', float('nan')):.0f} MB, "
        f"private {base_rss.get('anon_mb', float('nan')):.0f} MB"
    )
    print(
        f"{'steps':>10} {'open cold':>10} {'open warm':>10} {'first frame':>11} {'RSS cold/warm':>14} "
        f"{'private':>12} {'child':>7} {'redraw':>8} {'ingest rec/s':>13} {'TB load':>8} {'TB/Nexus':>9}"
    )
    for n in sizes:
        root = args.dir / f"runs-{n}"
        write_run(root / f"run{n}", n)
        shutil.rmtree(root / f"run{n}" / ".nexus-cache", ignore_errors=True)  # cold: no columnar cache yet
        cold = run_child(["--child", "open", str(root), str(n), repr(time.time())], env)
        warm = run_child(["--child", "open", str(root), str(n), repr(time.time())], env)
        if "error" in cold or "error" in warm:
            print(f"{n:>10,} open failed: {cold.get('error') or warm.get('error')}")
            continue
        ingest = (
            {}
            if args.no_ingest
            else run_child(["--child", "ingest", str(root / f"run{n}" / "metrics.msgpack"), str(n)], env)
        )
        tb = {}
        if tb_ok and n <= args.tb_max:
            logdir = args.dir / f"tb-{n}"
            write_tb(logdir, n)
            tb = run_child(["--child", "tb", str(logdir)], env)
        rate = f"{ingest['ingest_rps']:>13,.0f}" if "ingest_rps" in ingest else f"{'-':>13}"
        tb_s = f"{tb['tb_s']:>7.2f}s" if "tb_s" in tb else f"{'-':>8}"
        ratio = f"{tb['tb_s'] / warm['open_s']:>8.1f}x" if "tb_s" in tb else f"{'-':>9}"
        print(
            f"{n:>10,} {cold['open_s']:>9.2f}s {warm['open_s']:>9.2f}s {warm['first_frame_s']:>10.2f}s "
            f"{cold['rss_mb']:>6.0f}/{warm['rss_mb']:>4.0f} MB {cold['anon_mb']:>4.0f}/{warm['anon_mb']:>4.0f} MB "
            f"{cold['child_rss_mb']:>4.0f} MB "
            f"{warm['redraw_ms']:>6.1f}ms {rate} {tb_s} {ratio}  (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        if ingest and not ingest.get("ok", True):
            print(f"  ingest: {ingest}")


if __name__ == "__main__":
    main()
