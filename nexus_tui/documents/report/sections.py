"""One run's sections of the report: config, checkpoint table, charts, samples, forecast, loss columns.

Each function takes a RunFacts and returns markdown. Numbers come from the run's records, never from
what a person typed; every string from the folder goes through `safe` first.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from nexus_core.checkpoints import existing_steps
from nexus_core.config import SHARED_MODEL_OPTIONS
from nexus_core.families import FAMILY_OPTIONS
from nexus_core.units import as_int, as_num
from nexus_tui import format as fmt
from nexus_tui.curves.downsample import ema
from nexus_tui.documents.comparison import markdown_table
from nexus_tui.documents.report.backtest import MIN_POINTS, backtests, forecast_at
from nexus_tui.documents.report.facts import RunFacts
from nexus_tui.documents.report.safe import code, md
from nexus_tui.documents.report.textchart import Line, chart

EMA_WEIGHT = 0.6
"""Smoothing of the train H curve, the dashboard's default: raw per-step loss is mostly noise."""
SAMPLE_CHARS = 120
MAX_ROWS = 40
"""A table longer than this shows rows spread evenly over the run (first, last and best kept): a long
run evaluates thousands of times, and a report is read, not searched."""


def spread(items: list[Any], limit: int = MAX_ROWS, keep: frozenset[int] = frozenset()) -> list[Any]:
    """At most about `limit` items evenly spaced from first to last, plus the indices in `keep`."""
    if len(items) <= limit:
        return items
    picked = {round(i * (len(items) - 1) / (limit - 1)) for i in range(limit)} | set(keep)
    return [items[i] for i in sorted(picked)]


def _shown(total: int, shown: int, what: str) -> str:
    return "" if shown == total else f"\n\n_{shown} of {total} {what} shown, spread evenly over the run._"


def _value(v: Any) -> str:
    """A config value as code; a value the run's config does not have is a dash, not `None`."""
    if v is None:
        return fmt.DASH
    return code(v if isinstance(v, str) else repr(v), 60)


def _opts(facts: RunFacts, section: str, keys: list[str]) -> str:
    """'key=value, ...' of the keys the run has; a dotted key ('hybrid.ssm_state') shows its last part."""
    got = [(k.rsplit(".", 1)[-1], v) for k in keys if (v := facts.option(section, k)) is not None]
    return ", ".join(f"{k}={_value(v)}" for k, v in got) or fmt.DASH


def config_section(facts: RunFacts) -> str:
    """The resolved config that decides what a run is: model, size, tokenizer, optimizer, schedule,
    batch and steps (the whole config is in the run's config.toml)."""
    hello = facts.hello
    family = facts.option("model", "family")
    model_keys = sorted(set(SHARED_MODEL_OPTIONS) - {"family"})
    if isinstance(family, str) and family in FAMILY_OPTIONS:
        model_keys += [f"{family}.{key}" for key in sorted(FAMILY_OPTIONS[family])]
    optim = facts.option("optim", "name")
    optim_keys = ["name", "lr", "weight_decay", "grad_clip"]
    if optim == "muon":
        optim_keys += ["muon_lr", "muon_momentum", "fallback"]
    tokenizer = facts.option("data", "tokenizer")
    rows = [
        ["model", f"{md(family or fmt.DASH)}, {fmt.count(as_int(hello.get('params')))} parameters"],
        ["model options", _opts(facts, "model", model_keys)],
        [
            "data",
            _opts(
                facts,
                "data",
                [
                    "source",
                    "tokenizer",
                    *(["bpe_vocab"] if tokenizer == "bpe" else []),
                    "val_fraction",
                    "max_bytes",
                ],
            ),
        ],
        ["corpus", md(hello.get("corpus") or fmt.DASH, 100)],
        ["optimizer", _opts(facts, "optim", optim_keys)],
        ["schedule", _opts(facts, "schedule", ["name", "warmup_steps", "min_lr_ratio", "decay_fraction"])],
        [
            "batch",
            _opts(facts, "train", ["batch_size", "grad_accum", "label_smoothing"])
            + f"; {fmt.count(as_int(hello.get('tokens_per_step')))} tokens a step"
            + f" over {as_int(hello.get('world_size')) or 1} process(es)",
        ],
        [
            "steps",
            f"{facts.total_steps} (eval every {_value(facts.option('train', 'eval_every'))}, "
            f"checkpoint every {_value(facts.option('train', 'ckpt_every'))})",
        ],
        ["device", md(hello.get("device_name") or hello.get("device") or fmt.DASH, 80)],
    ]
    return "\n".join(f"- **{what}**: {text}" for what, text in rows)


def checkpoint_rows(facts: RunFacts) -> list[dict[str, Any]]:
    """One row per eval or checkpoint step: the train loss and CE of that step's metric record, the
    LR it trained with, the eval's val loss, whether a checkpoint was saved there and is still on disk
    (`keep_last` deletes old ones; their records stay), and whether it is the best."""
    on_disk = existing_steps(facts.run_dir)
    rows = []
    for step in sorted(set(facts.evals) | set(facts.ckpts)):
        metric, ev, ck = facts.metrics.at(step) or {}, facts.evals.get(step, {}), facts.ckpts.get(step)
        val = as_num(ev.get("val_loss"))
        rows.append(
            {
                "step": step,
                "tokens": as_num(metric.get("tokens")) or as_num(ev.get("tokens")),
                "loss": as_num(metric.get("loss")),
                "ce": as_num(metric.get("ce")),
                "lr": as_num(metric.get("lr")),
                "val_loss": val,
                "ckpt": ck is not None,
                "kept": step in on_disk,
                "best": bool(ev.get("best") is True or (ck is not None and ck.get("best") is True)),
            }
        )
    return rows


def checkpoint_table(facts: RunFacts) -> str:
    every = checkpoint_rows(facts)
    if not every:
        return "_No evals or checkpoints yet._"
    best = [i for i, r in enumerate(every) if r["best"]]
    rows = spread(every, keep=frozenset(best[-1:]))
    body = [
        [
            str(r["step"]),
            fmt.count(r["tokens"]),
            fmt.loss(r["loss"]),
            fmt.loss(r["ce"]),
            fmt.ppl(r["ce"]),
            fmt.loss(r["val_loss"]),
            fmt.ppl(r["val_loss"]),
            fmt.lr(r["lr"]),
            ("yes" if r["kept"] else "deleted") if r["ckpt"] else "",
            "**best**" if r["best"] else "",
        ]
        for r in rows
    ]
    header = [
        "step",
        "tokens",
        "train loss",
        "train CE",
        "train PPL",
        "val loss",
        "val PPL",
        "LR",
        "ckpt",
        "best",
    ]
    return markdown_table(header, body, [True] * 8 + [False, False]) + _shown(len(every), len(rows), "rows")


def loss_chart(facts: RunFacts) -> str:
    steps, ce = facts.series("ce")
    vs, val = facts.series("val_loss")
    return chart(
        f"train H (EMA {EMA_WEIGHT}) and val loss by step",
        "step",
        [
            Line(f"train H, EMA {EMA_WEIGHT}", steps, ema(ce, EMA_WEIGHT) if ce else [], "•"),
            Line("val loss", vs, val, "◆", scatter=True),
        ],
    )


def ramps(facts: RunFacts) -> list[tuple[int, str]]:
    """(step, what the engine said) for each LR ramp: a resume with --lr or a `ramp` command."""
    return [(e.step, e.text) for e in facts.events if e.text.startswith("LR ramp")]


def lr_section(facts: RunFacts) -> str:
    steps, lrs = facts.series("lr")
    found = ramps(facts)
    title = "LR by step" + (f" ({len(found)} ramp{'s' if len(found) > 1 else ''})" if found else "")
    out = [chart(title, "step", [Line("LR", steps, lrs, "•")], height=12), ""]
    for step, text in found:
        span = re.search(r"over (\d+) steps", text)
        end = step + max(1, int(span.group(1))) if span else step + 1
        after = [(s, v) for s, v in zip(steps, lrs, strict=True) if step < s <= end]
        seen = (
            (
                f"; the records show LR {fmt.lr(after[0][1])} at step {after[0][0]:.0f} and "
                f"{fmt.lr(after[-1][1])} at step {after[-1][0]:.0f}"
            )
            if after
            else ""
        )
        out.append(f"- Ramp at step {step}: {md(text, 200)}{seen}.")
    return "\n".join(out).rstrip("\n")


def samples_section(facts: RunFacts) -> str:
    """The sample at each step side by side, with the val loss of that step: how the text reads as
    the loss falls. Samples asked for with `generate` are marked."""
    if not facts.samples:
        return "_No samples: the run's train.sample_every is 0 or it never reached one._"
    prompts = {s.get("prompt") for s in facts.samples if isinstance(s.get("prompt"), str)}
    body = []
    shown = spread(facts.samples)
    for s in shown:
        step = as_int(s.get("step")) or 0
        val = as_num(facts.evals.get(step, {}).get("val_loss"))
        mark = " (asked)" if s.get("requested") is True else ""
        body.append([f"{step}{mark}", fmt.loss(val), md(s.get("text", ""), SAMPLE_CHARS)])
    head = f"Prompt: {code(next(iter(prompts)), 80)}." if len(prompts) == 1 else "Prompts differ per row."
    return (
        head
        + "\n\n"
        + markdown_table(["step", "val loss", "sample"], body, [True, True, False])
        + _shown(len(facts.samples), len(shown), "samples")
    )


def forecast_section(facts: RunFacts) -> str:
    steps, val = facts.series("val_loss")
    total = facts.total_steps
    lines = []
    if facts.finished and steps and steps[-1] >= total:
        lines.append(f"Finished: final val loss **{fmt.loss(val[-1])}** at step {steps[-1]:.0f}.")
    elif steps:
        now = forecast_at(steps, val, steps[-1], total)
        if now.value is None:
            lines.append(
                f"No forecast: {len(steps)} eval(s) (at least {MIN_POINTS} needed), or the val "
                "loss is not coming down."
            )
        else:
            lines.append(
                f"Forecast of the val loss at step {total}: **{fmt.loss(now.value)}** "
                f"(band {fmt.loss(now.low)} – {fmt.loss(now.high)}), from {now.points} evals up to "
                f"step {now.upto}."
            )
    else:
        return "_No evals yet: nothing to forecast._"
    tests = backtests(steps, val, total) if facts.finished else []
    if tests:
        body = []
        for b in tests:
            f = b.forecast
            inside = fmt.DASH if b.inside is None else ("yes" if b.inside else "no")
            error = fmt.DASH if b.error is None else f"{b.error:+.4f}"
            band = fmt.DASH if f.low is None else f"{fmt.loss(f.low)} – {fmt.loss(f.high)}"
            body.append(
                [
                    f"{b.fraction:.0%} (step {f.upto})",
                    str(f.points),
                    fmt.loss(f.value),
                    band,
                    fmt.loss(b.truth),
                    error,
                    inside,
                ]
            )
        lines += [
            "",
            "How the forecast made part way through compares with the final val loss:",
            "",
            markdown_table(
                ["made at", "evals", "forecast", "band", "final", "error", "in band"],
                body,
                [False, True, True, False, True, True, False],
            ),
        ]
    return "\n".join(lines)


def loss_columns_section(facts: RunFacts) -> str:
    """Which loss compares across runs: `loss` is what the optimizer minimised (MTP heads and label
    smoothing add to it); `ce` (train H) and the val loss are always the pure next-token CE."""
    mtp = as_int(facts.option("model", "transformer.mtp_heads")) or 0
    smoothing = as_num(facts.option("train", "label_smoothing")) or 0.0
    gaps = facts.metrics.gaps("loss", "ce")
    gap = statistics.median(gaps) if gaps else None
    why = (
        [f"{mtp} MTP head(s) at weight {_value(facts.option('model', 'transformer.mtp_weight'))}"]
        if mtp
        else []
    ) + ([f"label smoothing {smoothing:g}"] if smoothing else [])
    measured = f" (median gap over {len(gaps)} steps: {gap:+.4f} nats)" if gap is not None else ""
    if why or (gap is not None and abs(gap) > 1e-4):
        cause = " and ".join(why) if why else "auxiliary terms of this model family"
        return (
            f"The train **loss** includes {cause}, so it is not comparable across runs{measured}. "
            "Compare **train CE** (H) and **val loss**: both are the pure next-token cross-entropy."
        )
    return (
        f"The train loss is the pure cross-entropy{measured}: train loss, train CE and val loss all compare."
    )
