"""`nexus report` built from real tiny runs: one finished, one resumed with an LR ramp (and MTP heads,
so its loss is not the comparable column), one killed with SIGKILL (with label smoothing). Every
section is checked against the run's own records; a folder full of escape sequences and markup gives
a report that is safe to print; the dashboard's R key writes the report beside the runs."""

from __future__ import annotations

import math
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import ROOT
from support.engine import engine_env
from support.markdown import CONTROL, column, section, table
from support.preset import sets

from nexus_core.protocol import METRICS_FILE, RecordWriter, read_records
from nexus_tui import format as fmt
from nexus_tui.__main__ import main
from nexus_tui.curves.forecast import forecast_final
from nexus_tui.documents.comparison import comparison_markdown, load_runs
from nexus_tui.documents.report.document import build_report
from nexus_tui.documents.report.safe import md

SIDE_WORK = [
    "train.eval_every=3",
    "train.eval_batches=2",
    "train.sample_every=3",
    "train.sample_tokens=16",
    "train.ckpt_every=12",
]
"""Over the test preset: evals, samples and checkpoints often enough that every section has rows."""
STEPS, STOP_AT, RAMP_LR, RAMP_STEPS = 30, 15, 1e-2, 6


def _engine(root: Path, name: str, *args: str, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`python -m engine ARGS` with its output in the run folder's engine.log, as the dashboard does."""
    run_dir = root / name
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = sets(*SIDE_WORK, *extra) if args[0] == "train" else []
    with open(run_dir / "engine.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "engine", *args, "--run-dir", str(run_dir), "--threads", "1", *overrides],
            env=engine_env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _evals(run_dir: Path) -> int:
    try:
        return sum(r["type"] == "eval" for r in read_records(run_dir / METRICS_FILE).records)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report") / "runs"
    procs = {
        "fin": _engine(root, "fin", "train", "--preset", "tiny", "--steps", str(STEPS)),
        "ramp": _engine(
            root,
            "ramp",
            "train",
            "--preset",
            "tiny",
            "--steps",
            str(STEPS),
            "--stop-at",
            str(STOP_AT),
            extra=("model.mtp_heads=1",),
        ),
        "crash": _engine(
            root,
            "crash",
            "train",
            "--preset",
            "tiny",
            "--steps",
            "100000",
            extra=("train.label_smoothing=0.1",),
        ),
    }
    try:
        deadline = time.monotonic() + 180
        while _evals(root / "crash") < 5:  # killed mid-run, with enough evals for a forecast
            assert procs["crash"].poll() is None and time.monotonic() < deadline, (
                root / "crash/engine.log"
            ).read_text()
            time.sleep(0.1)
        procs["crash"].send_signal(signal.SIGKILL)
        procs["crash"].wait(30)
        for name in ("fin", "ramp"):
            assert procs[name].wait(180) == 0, (root / name / "engine.log").read_text()[-2000:]
        resume = _engine(root, "ramp", "resume", "--lr", str(RAMP_LR), "--ramp-steps", str(RAMP_STEPS))
        assert resume.wait(180) == 0, (root / "ramp/engine.log").read_text()[-2000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    return root


# -- reading the report back ---------------------------------------------------------------------


def records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [r.to_dict() for r in read_records(run_dir / METRICS_FILE).records if r.type == kind]


def by_step(run_dir: Path, kind: str) -> dict[int, dict[str, Any]]:
    """step -> the last record of that kind there (a resume re-writes the steps it re-trains)."""
    return {r["step"]: r for r in records(run_dir, kind)}


def chart_block(text: str) -> str:
    match = re.search(r"```text\n(.*?)\n```", text, re.S)
    assert match, f"no chart in {text[:300]!r}"
    return match.group(1)


# -- one run -------------------------------------------------------------------------------------


def test_finished_run_every_section_from_its_records(root: Path) -> None:
    run = root / "fin"
    text = build_report(root, ["fin"])
    metrics, evals, ckpts = by_step(run, "metric"), by_step(run, "eval"), by_step(run, "ckpt")
    hello = records(run, "hello")[-1]

    config = section(text, "Config", "fin")
    assert f"transformer, {fmt.count(hello['params'])} parameters" in config
    assert "name=`adamw`" in config and f"lr=`{hello['config']['optim']['lr']!r}`" in config
    assert f"{STEPS} (eval every `3`" in config

    rows = table(section(text, "Checkpoints", "fin"))
    steps = sorted(set(evals) | set(ckpts))
    assert [int(s) for s in column(rows, "step")] == steps
    assert column(rows, "val loss") == [fmt.loss(evals[s]["val_loss"]) for s in steps]
    assert column(rows, "train loss") == [fmt.loss(metrics[s]["loss"]) for s in steps]
    assert column(rows, "train PPL") == [fmt.ppl(metrics[s]["ce"]) for s in steps]
    assert column(rows, "val PPL") == [f"{math.exp(evals[s]['val_loss']):.2f}" for s in steps]
    assert column(rows, "LR") == [f"{metrics[s]['lr']:.2e}" for s in steps]
    assert column(rows, "best") == ["**best**" if evals[s]["best"] else "" for s in steps]

    chart = chart_block(section(text, "Loss", "fin"))
    assert "train H" in chart and "val loss" in chart and "\x1b" not in chart
    assert "pure cross-entropy" in section(text, "Which loss to compare", "fin")

    samples = records(run, "sample")
    rows = table(section(text, "Samples", "fin"))
    assert column(rows, "step") == [str(s["step"]) for s in samples]
    assert column(rows, "sample") == [md(s["text"], 120).strip() for s in samples]

    forecast = section(text, "Forecast", "fin")
    vsteps, vals = sorted(evals), [evals[s]["val_loss"] for s in sorted(evals)]
    assert f"final val loss **{fmt.loss(vals[-1])}** at step {STEPS}" in forecast
    rows = table(forecast)
    for frac, made, used, value in zip(
        (0.25, 0.5, 0.75), *[column(rows, c) for c in ("made at", "evals", "forecast")], strict=True
    ):
        upto = int(frac * STEPS)
        assert made == f"{frac:.0%} (step {upto})"
        seen = [(s, v) for s, v in zip(vsteps, vals, strict=True) if s <= upto]
        assert int(used) == len(seen)
        got = forecast_final([s for s, _ in seen], [v for _, v in seen], STEPS)
        assert value == (fmt.loss(got[0]) if got else fmt.DASH)
    assert column(rows, "final") == [fmt.loss(vals[-1])] * 3

    recs = records(run, "metric")
    rows = table(section(text, "Throughput and memory", "fin"))
    values = dict(zip(column(rows, "measure"), column(rows, "value"), strict=True))
    assert values["tokens seen"] == fmt.count(max(r["tokens"] for r in recs))
    assert values["peak memory (process RSS)"] == fmt.mib(max(r["mem"] for r in recs))
    assert values["step time (median)"] == f"{statistics.median(r['step_s'] for r in recs) * 1000:.1f} ms"
    assert not any({"gpu_temp", "temp_c", "power_w", "gpu_power"} & set(r) for r in recs)
    assert "GPU temperature and power: not recorded" in section(text, "Throughput and memory", "fin")

    stability = section(text, "Stability", "fin")
    assert stability.startswith(f"Final state: **finished** at step {STEPS} of {STEPS}")
    assert "NaN/inf loss: none; OOM: none; crash: none; alerts: 0" in stability
    assert not records(run, "alert")
    events = table(section(text, "Timeline", "fin"))
    assert column(events, "what") == ["started", f"finished: trained {STEPS} steps"]


def test_resumed_run_shows_its_ramp_and_the_comparable_loss(root: Path) -> None:
    run = root / "ramp"
    text = build_report(root, ["ramp"])
    metrics = by_step(run, "metric")
    assert [h.get("start_step") for h in records(run, "hello")] == [0, STOP_AT]

    events = table(section(text, "Timeline", "ramp"))
    what = column(events, "what")
    assert what[:2] == ["started", f"stopped: reached --stop-at {STOP_AT}"]
    assert what[2].startswith(f"resumed from checkpoints/step\\_{STOP_AT:06d} at step {STOP_AT}")
    ramp_row = events[1 + 3]
    assert ramp_row[0] == str(STOP_AT) and ramp_row[3].startswith(
        f"LR ramp from {metrics[STOP_AT + 1]['lr']:.4g} to {RAMP_LR:.4g} over {RAMP_STEPS} steps"
    )
    assert what[-1] == f"finished: trained {STEPS} steps"

    lr = section(text, "Learning rate", "ramp")
    assert "LR by step (1 ramp)" in chart_block(lr)
    first, last = metrics[STOP_AT + 1]["lr"], metrics[STOP_AT + RAMP_STEPS]["lr"]
    assert (
        f"the records show LR {first:.2e} at step {STOP_AT + 1} and {last:.2e} at step {STOP_AT + RAMP_STEPS}"
    ) in lr
    assert last > 2 * first, "the ramp raised the LR"

    gaps = [r["loss"] - r["ce"] for r in metrics.values()]
    loss_note = section(text, "Which loss to compare", "ramp")
    assert "1 MTP head(s)" in loss_note and f"{statistics.median(gaps):+.4f} nats" in loss_note
    assert "Compare **train CE** (H) and **val loss**" in loss_note
    rows = table(section(text, "Checkpoints", "ramp"))
    evals = by_step(run, "eval")
    assert [int(s) for s in column(rows, "step")] == sorted(set(evals) | set(by_step(run, "ckpt")))
    assert column(rows, "train CE") == [fmt.loss(metrics[int(s)]["ce"]) for s in column(rows, "step")]


def test_crashed_run_says_so_with_its_step_and_log(root: Path) -> None:
    run = root / "crash"
    text = build_report(root, ["crash"])
    metrics, evals = by_step(run, "metric"), by_step(run, "eval")
    last = max(metrics)
    stability = section(text, "Stability", "crash")
    assert stability.startswith(f"Final state: **crashed** at step {last} of 100000")
    assert "crash: yes" in stability and "its process" in stability
    assert "The end of engine.log:" in stability
    assert column(table(section(text, "Timeline", "crash")), "step")[-1] == str(last)
    assert "label smoothing 0.1" in section(text, "Which loss to compare", "crash")

    forecast = section(text, "Forecast", "crash")
    steps = sorted(evals)
    got = forecast_final(steps, [evals[s]["val_loss"] for s in steps], 100000)
    assert got is not None, "five falling evals give a forecast"
    assert (
        f"at step 100000: **{fmt.loss(got[0])}** (band {fmt.loss(got[1])} – {fmt.loss(got[2])})" in forecast
    )
    assert "|" not in forecast, "no backtest before the run has finished"


# -- several runs --------------------------------------------------------------------------------


def test_several_runs_reuse_compare_and_read_at_equal_steps_and_tokens(root: Path) -> None:
    names = ["fin", "ramp", "crash"]
    text = build_report(root, names)
    store, shown = load_runs(root, names)
    assert comparison_markdown(store, shown).rstrip("\n") in text, "nexus compare's tables, word for word"
    overlaid = section(text, "Curves overlaid")
    for title in ("val loss by step", "val loss by tokens", "train H (EMA 0.6) by step"):
        assert title in overlaid
    evals = {n: by_step(root / n, "eval") for n in names}
    for heading, key in (("At equal steps", "step"), ("At equal tokens", "tokens")):
        mark = min(max(e[key] for e in evals[n].values()) for n in names)
        rows = table(section(text, heading))
        assert column(rows, "run") == names
        for name, step, val in zip(names, column(rows, "eval step"), column(rows, "val loss"), strict=True):
            want = max((e for e in evals[name].values() if e[key] <= mark), key=lambda e: e["step"])
            assert int(step) == want["step"] and val.strip("*") == fmt.loss(want["val_loss"])
        bold = [n for n, v in zip(names, column(rows, "val loss"), strict=True) if v.startswith("**")]
        assert len(bold) == 1
    for name in names:
        assert f"\n## Run {name}\n" in text


# -- the command line ----------------------------------------------------------------------------


def _body(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("_Written by"))


def test_cli_writes_the_report_without_torch_or_textual(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    check = (
        "import sys; from nexus_tui.__main__ import main; rc = main(sys.argv[1:]); "
        "assert not {'torch', 'textual'} & set(sys.modules), 'imported torch or textual'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, "report", "fin", "ramp", "--root", str(root), "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _body(out.read_text()) == _body(build_report(root, ["fin", "ramp"]))
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "--root", str(root), "report", str(root / "fin")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and _body(done.stdout) == _body(build_report(root, ["fin"]))


def test_cli_unknown_run_or_folder_is_one_error_line(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(root), "report", "fin", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and "nope" in err
    assert main(["--root", str(root), "report", "fin", "-o", str(tmp_path / "no" / "such" / "r.md")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: cannot write") and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--root", str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1


# -- untrusted text ------------------------------------------------------------------------------

EVIL = "\x1b]52;c;aGk=\x07\x1b[2J[bold red]boom[/] | cell\nnext\r\x9b31m\u202e`tick` *em* <b>x</b>"


def test_escape_sequences_and_markup_in_a_run_folder_are_made_safe(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil_root = tmp_path / "runs"
    name = "evil\x1b[31m[b]|x"
    shutil.copytree(root / "fin", evil_root / name)
    shutil.copytree(root / "fin", evil_root / "plain")
    writer = RecordWriter(evil_root / name / METRICS_FILE)
    hello = {
        **records(root / "fin", "hello")[-1],
        "device": EVIL,
        "corpus": EVIL,
        "start_step": STEPS,
        "resumed_from": EVIL,
    }
    hello["config"] = {**hello["config"], "data": {**hello["config"]["data"], "source": EVIL}}
    for rec in (
        hello,
        {"type": "sample", "step": STEPS, "prompt": EVIL, "text": EVIL, "requested": True},
        {"type": "alert", "kind": EVIL, "step": STEPS, "text": EVIL},
        {"type": "log", "level": "warning", "text": EVIL},
        {"type": "log", "text": "LR ramp " + EVIL},
        {"type": "metric", "step": STEPS + 1, "tokens": 1, "loss": 1.0, "ce": 1.0, "lr": 1e-3, "mem": 1.0},
        {"type": "state", "state": "stopped", "step": STEPS + 1, "reason": EVIL},
    ):
        writer.write({k: v for k, v in rec.items() if k not in ("seq", "time")})
    writer.close()
    assert main(["--root", str(evil_root), "report", name, "plain"]) == 0
    text = capsys.readouterr().out
    assert "boom" in text and not CONTROL.search(text), "every escape sequence and control character is gone"
    outside_code = re.sub(r"`[^`\n]*`", "", re.sub(r"```text\n.*?\n```", "", text, flags=re.S))
    assert "[bold red]" not in outside_code and "\\[bold red\\]" in outside_code, "markup is escaped"
    assert "<b>" not in outside_code
    for block in re.split(r"\n\n", outside_code):  # every table keeps its shape: one cell per column
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        cells = {len(re.split(r"(?<!\\)\|", ln)) for ln in lines}
        assert len(cells) <= 1, block


# -- the dashboard -------------------------------------------------------------------------------


async def test_report_key_writes_the_selected_or_marked_runs(root: Path, tmp_path: Path, monkeypatch) -> None:
    from nexus_tui.app import NexusApp
    from nexus_tui.widgets.run_table import RunTable

    runs = tmp_path / "runs"
    for name in ("fin", "ramp"):
        shutil.copytree(root / name, runs / name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    app = NexusApp(runs, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(RunTable)
        deadline = time.monotonic() + 60
        while table.row_count < 2 or not table.selected:
            assert time.monotonic() < deadline, "the runs never showed in the table"
            await pilot.pause(0.1)
        assert any(b.key == "R" and b.show for b in app.BINDINGS), "R is shown in the footer"
        highlighted = table.selected[0]
        await pilot.press("R")
        found = await _wait_file(pilot, runs, 1)
        text = found[0].read_text()
        assert f"\n## Run {highlighted}\n" in text and "## Comparing" not in text
        assert any(str(found[0]) in str(n.message) for n in app._notifications)

        table.marked.update({"fin", "ramp"})
        await pilot.press("R")
        found = await _wait_file(pilot, runs, 2)
        both = next(p.read_text() for p in found if "## Comparing" in p.read_text())
        assert "\n## Run fin\n" in both and "\n## Run ramp\n" in both


async def _wait_file(pilot, folder: Path, count: int) -> list[Path]:
    deadline = time.monotonic() + 60
    while len(found := sorted(folder.glob("report-*.md"))) < count:
        assert time.monotonic() < deadline, "no report file appeared"
        await pilot.pause(0.1)
    return found
