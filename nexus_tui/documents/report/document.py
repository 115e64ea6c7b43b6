"""The whole report, assembled: what `nexus report` prints and the dashboard's report key saves.

Every name is resolved before any file is read (a typo costs nothing and reads as one line), then
each run folder is read once into RunFacts; sections are plain functions of those facts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nexus_core import safefile
from nexus_tui import format as fmt
from nexus_tui.documents.comparison import run_dir_for
from nexus_tui.documents.report.facts import RunFacts, load_facts
from nexus_tui.documents.report.health import stability_section, throughput_section, timeline_section
from nexus_tui.documents.report.multi import comparison_section
from nexus_tui.documents.report.safe import code, md
from nexus_tui.documents.report.sections import (
    checkpoint_table,
    config_section,
    forecast_section,
    loss_chart,
    loss_columns_section,
    lr_section,
    samples_section,
)

RUN_SECTIONS: tuple[tuple[str, Callable[[RunFacts], str]], ...] = (
    ("Config", config_section),
    ("Checkpoints", checkpoint_table),
    ("Loss", loss_chart),
    ("Which loss to compare", loss_columns_section),
    ("Learning rate", lr_section),
    ("Samples", samples_section),
    ("Forecast", forecast_section),
    ("Throughput and memory", throughput_section),
    ("Stability", stability_section),
    ("Timeline", timeline_section),
)


def load(root: str | Path, names: Sequence[str]) -> list[RunFacts]:
    """The named runs (names under root, or run folder paths), read in the order given. Raises
    comparison.UnknownRunError for a name that is not a run, OSError for a folder it cannot read."""
    root = Path(root)
    dirs = [run_dir_for(root, n) for n in names]
    runs: list[RunFacts] = []
    for d in dirs:
        shown = {f.name for f in runs}
        runs.append(load_facts(d, d.name if d.name not in shown else str(d)))
    return runs


def run_markdown(facts: RunFacts) -> str:
    s = facts.summary
    head = (
        f"## Run {md(facts.name)}\n\n**{md(s.state)}** at step {facts.last_step} of {facts.total_steps}; "
        f"{md(facts.hello.get('model') or s.model or fmt.DASH)} on "
        f"{md(facts.hello.get('device') or s.device or fmt.DASH)}; "
        f"best val loss {fmt.loss(s.best_val_loss)}; folder {code(facts.run_dir)}."
    )
    parts = [head]
    for title, section in RUN_SECTIONS:
        parts += [f"### {title}", section(facts)]
    return "\n\n".join(parts) + "\n"


def report_markdown(runs: Sequence[RunFacts], now: float | None = None) -> str:
    """One GitHub-flavoured markdown document; it reads as plain text too."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() if now is None else now))
    names = ", ".join(md(f.name) for f in runs)
    parts = [
        f"# Training report: {names}",
        f"_Written by `nexus report` on {when} from {len(runs)} run folder(s). Losses are in nats; "
        "PPL = exp(CE)._",
    ]
    if len(runs) > 1:
        parts.append(comparison_section(runs).rstrip("\n"))
    parts += [run_markdown(f).rstrip("\n") for f in runs]
    return "\n\n".join(parts) + "\n"


def build_report(root: str | Path, names: Sequence[str], now: float | None = None) -> str:
    return report_markdown(load(root, names), now)


def write_new(folder: Path, prefix: str, text: str) -> Path:
    """folder/PREFIX-<timestamp>.md, never over an earlier file (two in one second get -2, -3)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = folder / (f"{prefix}-{stamp}.md" if n == 1 else f"{prefix}-{stamp}-{n}.md")
        try:
            safefile.write_new(path, text)  # never over a file, nor through a planted link
            return path
        except FileExistsError:
            continue
    raise OSError(f"too many {prefix} files for {stamp} in {folder}")


def save_report(root: str | Path, names: Sequence[str]) -> Path:
    """The dashboard's report key: root/report-<timestamp>.md, beside the run folders."""
    return write_new(Path(root), "report", build_report(root, names))
