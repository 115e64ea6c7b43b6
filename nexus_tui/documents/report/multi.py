"""Several runs in one report: the results and config differences `nexus compare` makes (built by
`nexus_tui.documents.comparison`, not again here), the curves overlaid, and the runs read at equal steps and at
equal tokens, the two fair ways to say which won (a run with a bigger batch sees more tokens a step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nexus_core.units import as_num
from nexus_tui import format as fmt
from nexus_tui.curves.downsample import ema
from nexus_tui.documents.comparison import comparison_markdown, markdown_table
from nexus_tui.documents.report.facts import RunFacts
from nexus_tui.documents.report.safe import md
from nexus_tui.documents.report.sections import EMA_WEIGHT
from nexus_tui.documents.report.textchart import LINE_MARKERS, POINT_MARKERS, Line, chart
from nexus_tui.history.store import MetricStore


@dataclass(frozen=True)
class Reading:
    """A run's val loss at its last eval at or before a mark (a step, or a token count)."""

    name: str
    step: int | None
    tokens: float | None
    val_loss: float | None
    ce: float | None


def reading(facts: RunFacts, axis: str, mark: float) -> Reading:
    """The last eval at or before `mark` on `axis` ("step" or "tokens"), with that step's train CE."""
    best = None
    for step in sorted(facts.evals):
        ev = facts.evals[step]
        at = step if axis == "step" else as_num(ev.get("tokens"))
        if at is not None and at <= mark and as_num(ev.get("val_loss")) is not None:
            best = step
    if best is None:
        return Reading(facts.name, None, None, None, None)
    ev, metric = facts.evals[best], facts.metrics.at(best) or {}
    return Reading(
        facts.name, best, as_num(ev.get("tokens")), as_num(ev.get("val_loss")), as_num(metric.get("ce"))
    )


def common_mark(runs: Sequence[RunFacts], axis: str) -> float | None:
    """The furthest step (or token count) every run has evaluated at or past: the fair place to read."""
    ends = []
    for f in runs:
        marks = [s if axis == "step" else as_num(f.evals[s].get("tokens")) for s in f.evals]
        found = [m for m in marks if m is not None]
        if not found:
            return None
        ends.append(max(found))
    return min(ends) if ends else None


def equal_table(runs: Sequence[RunFacts], axis: str) -> str:
    mark = common_mark(runs, axis)
    if mark is None:
        return f"_Not every run has an eval: no equal-{axis} reading._"
    got = [reading(f, axis, mark) for f in runs]
    have = [r.val_loss for r in got if r.val_loss is not None]
    best = fmt.loss(min(have)) if have else None
    winner = best if len({fmt.loss(v) for v in have}) > 1 else None
    body = [
        [
            md(r.name),
            fmt.DASH if r.step is None else str(r.step),
            fmt.count(r.tokens),
            f"**{fmt.loss(r.val_loss)}**" if fmt.loss(r.val_loss) == winner else fmt.loss(r.val_loss),
            fmt.loss(r.ce),
        ]
        for r in got
    ]
    what = f"step {mark:.0f}" if axis == "step" else f"{fmt.count(mark)} tokens"
    head = f"At {what} (the last eval every run reached), lowest val loss in bold:\n\n"
    return head + markdown_table(
        ["run", "eval step", "tokens", "val loss", "train CE"], body, [False, True, True, True, True]
    )


def overlay_charts(runs: Sequence[RunFacts]) -> str:
    """Val loss by step and by tokens, and train H by step, every run on the same axes."""
    by_step, by_tokens, train = [], [], []
    for i, f in enumerate(runs):
        point, line = POINT_MARKERS[i % len(POINT_MARKERS)], LINE_MARKERS[i % len(LINE_MARKERS)]
        by_step.append(Line(f.name, *f.series("val_loss"), point))
        by_tokens.append(Line(f.name, *f.series("val_loss", x="tokens"), point))
        xs, ce = f.series("ce")
        train.append(Line(f.name, xs, ema(ce, EMA_WEIGHT) if ce else [], line))
    return "\n\n".join(
        [
            chart("val loss by step", "step", by_step),
            chart("val loss by tokens", "tokens", by_tokens),
            chart(f"train H (EMA {EMA_WEIGHT}) by step", "step", train),
        ]
    )


def comparison_section(runs: Sequence[RunFacts]) -> str:
    """The runs side by side; `nexus compare`'s tables come first, word for word."""
    store = MetricStore()
    for f in runs:
        store.ingest_batch(f.name, f.run_dir, f.pieces)
    compared = comparison_markdown(store, [f.name for f in runs]).rstrip("\n")
    return "\n".join(
        [
            compared,
            "",
            "### Curves overlaid",
            "",
            overlay_charts(runs),
            "",
            "### At equal steps",
            "",
            equal_table(runs, "step"),
            "",
            "### At equal tokens",
            "",
            equal_table(runs, "tokens"),
            "",
        ]
    )
