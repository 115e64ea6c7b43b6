"""One run's throughput, memory and stability, and its timeline: what ran how fast, and what went wrong
when. A crash that left no record (SIGKILL, the OOM killer, a lost machine) is found the way
`nexus runs` finds it: a live state whose process is gone."""

from __future__ import annotations

import statistics
import time
from collections import Counter

from nexus_core.units import as_num
from nexus_tui import format as fmt
from nexus_tui.documents.comparison import active_seconds, markdown_table
from nexus_tui.documents.report.facts import RunFacts
from nexus_tui.documents.report.safe import block, md
from nexus_tui.documents.report.sections import spread

GPU_KEYS = {
    "gpu_temp": "GPU temperature (°C)",
    "temp_c": "GPU temperature (°C)",
    "gpu_power": "GPU power (W)",
    "power_w": "GPU power (W)",
}
"""Telemetry fields a metric record could carry. None does today (NVML is read live by the dashboard
and not written to the run folder), so the report says so instead of inventing numbers."""


def _values(facts: RunFacts, key: str) -> list[float]:
    """The finite values of a metric field (or a writer's own key) in the fold's order."""
    return facts.metrics.finite(key)


def throughput_section(facts: RunFacts) -> str:
    tok_s, step_s, mem = _values(facts, "tok_s"), _values(facts, "step_s"), _values(facts, "mem")
    times = sorted(_values(facts, "time"))
    device = str(facts.hello.get("device") or "")
    mem_kind = "CUDA max allocated" if device.startswith("cuda") else "process RSS"
    rows = [
        ["tokens seen", fmt.count(max(_values(facts, "tokens"), default=None))],
        [
            "tok/s (median, last)",
            f"{fmt.count(statistics.median(tok_s)) if tok_s else fmt.DASH}, "
            f"{fmt.count(tok_s[-1]) if tok_s else fmt.DASH}",
        ],
        ["step time (median)", f"{statistics.median(step_s) * 1000:.1f} ms" if step_s else fmt.DASH],
        [
            "time training (idle gaps left out)",
            fmt.duration(active_seconds(times)) if len(times) > 1 else fmt.DASH,
        ],
        [f"peak memory ({mem_kind})", fmt.mib(max(mem)) if mem else fmt.DASH],
    ]
    seen = {}
    for key, label in GPU_KEYS.items():
        got = _values(facts, key)
        if got:
            seen[label] = f"max {max(got):.0f}, median {statistics.median(got):.0f}"
    rows += [[label, text] for label, text in seen.items()]
    out = markdown_table(["measure", "value"], rows, [False, True])
    if not seen:
        out += (
            "\n\nGPU temperature and power: not recorded. The dashboard reads them live (NVML), but no "
            "record in the run folder carries them."
        )
    return out


def stability_section(facts: RunFacts) -> str:
    """NaN steps, every alert with its step, the final state, and for a crash the end of engine.log."""
    nan_steps = facts.metrics.nonfinite_steps("loss")
    kinds = Counter(str(a.get("kind")) for a in facts.alerts)
    state = facts.summary.state
    verdict = [
        f"NaN/inf loss: {'none' if not nan_steps else f'{len(nan_steps)} step(s), first at {nan_steps[0]}'}",
        f"OOM: {'none' if not kinds['oom'] else kinds['oom']}",
        f"crash: {'none' if state != 'crashed' and not kinds['crash'] else 'yes'}",
        f"alerts: {sum(kinds.values())}",
    ]
    lines = [
        f"Final state: **{md(state)}** at step {facts.last_step} of {facts.total_steps}"
        f" ({len(facts.metrics)} steps recorded). " + "; ".join(verdict) + "."
    ]
    if facts.summary.note:
        lines.append(f"\nNote: {md(facts.summary.note, 200)}.")
    if facts.alerts:
        body = [
            [
                fmt.DASH if (s := as_num(a.get("step"))) is None else f"{s:.0f}",
                md(a.get("kind"), 20),
                md(a.get("text", ""), 160),
            ]
            for a in spread(facts.alerts, 100)
        ]
        lines += ["", markdown_table(["step", "alert", "text"], body, [True, False, False])]
    if state == "crashed" and facts.log_tail:
        lines += ["", "The end of engine.log:", "", "```text", block(facts.log_tail), "```"]
    if facts.decode_warnings:
        lines += ["", f"Reading metrics.msgpack: {md('; '.join(facts.decode_warnings), 300)}."]
    return "\n".join(lines)


def _utc(t: float | None) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t is not None else fmt.DASH
    except (OverflowError, OSError, ValueError):  # a time no clock reads: the folder is damaged
        return fmt.DASH


def timeline_section(facts: RunFacts) -> str:
    """Starts, resumes, LR ramps, pauses and stops, alerts and the end, in the order they happened."""
    if not facts.events:
        return "_Nothing happened yet._"
    body = []
    for e in spread(facts.events, 100):
        when = _utc(e.time)
        body.append([str(e.step), when, md(e.kind, 30), md(e.text, 200)])
    return markdown_table(["step", "time (UTC)", "event", "what"], body, [True, False, False, False])
