"""What one dashboard redraw costs at 1e3 vs 1e6 steps, measured on the real ChartsPanel.

A headless Textual app holds the charts panel; a run of N metric records (with an eval every 100
steps) is ingested into a real MetricStore. Then, like a live run, a few records arrive between
redraws and `ChartsPanel.redraw` (smoothing, windowing, bucketing, plotext specs) is timed, plus
the render of the four plotext charts. The first redraw builds the chart cache (O(N)); the later
ones extend it (O(new points + N/256 + buckets)).

Run: python bench/dashboard_redraw.py [--sizes 1000 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual.app import App, ComposeResult  # noqa: E402

from nexus_tui.history.store import MetricStore  # noqa: E402
from nexus_tui.settings import Settings  # noqa: E402
from nexus_tui.themes import PALETTES  # noqa: E402
from nexus_tui.widgets.chart import MetricChart  # noqa: E402
from nexus_tui.widgets.charts_panel import ChartsPanel  # noqa: E402


def metric(seq: int, step: int) -> dict:
    loss = 3.0 / math.sqrt(step) + 0.01 * ((step * 7919) % 13)
    return {
        "type": "metric",
        "seq": seq,
        "time": 1e9 + step * 0.07,
        "step": step,
        "tokens": step * 2048,
        "loss": loss,
        "ce": loss,
        "lr": 1e-3,
        "gnorm": 0.7 + 1 / step,
        "tok_s": 3e4,
        "mem": 1e9,
    }


def build(n: int) -> MetricStore:
    store = MetricStore()
    recs: list[dict] = [{"type": "hello", "seq": 0, "time": 1e9, "total_steps": 2 * n, "config": {}}]
    for step in range(1, n + 1):
        recs.append(metric(len(recs), step))
        if step % 100 == 0:
            recs.append({"type": "eval", "seq": len(recs), "step": step, "val_loss": 2.0 + 1 / step})
    for i in range(0, len(recs), 100_000):
        store.ingest("run", None, recs[i : i + 100_000])
    return store


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield ChartsPanel(Settings(ema=0.9), id="charts")


async def measure(n: int, redraws: int) -> tuple[float, float, float]:
    store = build(n)
    app = Host()
    async with app.run_test(size=(160, 45)) as pilot:
        panel = app.query_one(ChartsPanel)
        t = time.perf_counter()
        panel.redraw(store, ["run"], PALETTES["nexus-dark"])
        first = time.perf_counter() - t
        seq, step = store.get("run").metric["seq"] + 1000, n
        times, renders = [], []
        for _ in range(redraws):
            recs = []
            for _ in range(5):  # a few new steps between frames, as from a live run
                step += 1
                seq += 1
                recs.append(metric(seq, step))
            store.ingest("run", None, recs)
            t = time.perf_counter()
            panel.redraw(store, ["run"], PALETTES["nexus-dark"])
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
            for chart in app.query(MetricChart):
                chart.render()
            renders.append(time.perf_counter() - t)
        await pilot.pause()
    return first, statistics.median(times), statistics.median(renders)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    ap.add_argument("--redraws", type=int, default=20)
    args = ap.parse_args()
    for n in args.sizes:
        first, redraw, render = asyncio.run(measure(n, args.redraws))
        print(
            f"{n:>9,} steps: first redraw {first * 1e3:8.1f} ms (builds the cache), "
            f"then redraw {redraw * 1e3:6.1f} ms + plotext render of 4 charts {render * 1e3:6.1f} ms (median)"
        )


if __name__ == "__main__":
    main()
