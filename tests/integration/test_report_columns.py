"""`nexus report` and `nexus export` read a long run's metric records as columns (the columnar cache
where it matches the file and decoded clean, else the column decoder): the same markdown and the
same CSV as reading and folding every record one by one, on a clean run, a resumed one and a
damaged one (garbage in the middle, a torn tail), the first time and again from the cache."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from support.records import evaluation, finished, hello, metric, state
from support.runfolder import write_finished, write_run

from nexus_core.protocol import METRICS_FILE
from nexus_tui.__main__ import main
from nexus_tui.documents.export import rows, write_csv
from nexus_tui.documents.report.document import load, report_markdown
from nexus_tui.documents.report.facts import load_facts
from nexus_tui.history.columnar import cachefile
from nexus_tui.history.reader import read_each_record

NAMES = ("clean", "resumed", "damaged")


def _resumed(run_dir: Path) -> None:
    """5000 steps, a resume from 2000 that re-draws to 3000 and stops, one from 2500 that writes no
    metric, one from 2200 that finishes at 6000 (with a writer's own key on some steps, a NaN loss
    and steps without ce)."""
    recs = [hello("resumed", 6000)]
    for s in range(1, 5001):
        recs.append(metric(s, 2 + 1 / math.sqrt(s), tokens=s * 4096))
        if s % 500 == 0:
            recs.append(evaluation(s, 2.5 - s / 10000, tokens=s * 4096))
            recs.append({"type": "ckpt", "step": s, "path": f"checkpoints/step_{s:06d}"})
    recs.append(hello("resumed", 6000, start_step=2000, resumed_from="checkpoints/step_002000", pid=2))
    recs += [metric(s, 1.9 + 1 / math.sqrt(s), lr=1e-4, tokens=s * 4096) for s in range(2001, 3001)]
    recs.append(state("stopped", 3000, "asked"))
    recs.append(hello("resumed", 6000, start_step=2500, resumed_from="checkpoints/step_002500", pid=3))
    recs.append(hello("resumed", 6000, start_step=2200, resumed_from="checkpoints/step_002200", pid=4))
    for s in range(2201, 6001):
        m = metric(
            s,
            math.nan if s == 4000 else 1.8 + 1 / math.sqrt(s),
            tokens=s * 4096,
            **({"train/acc": s / 6000} if s % 3 == 0 else {}),
        )
        if s % 11 == 0:
            del m["ce"]
        recs.append(m)
        if s % 500 == 0:
            recs.append(evaluation(s, 2.3 - s / 10000, tokens=s * 4096, best=True))
    recs.append(finished(6000))
    write_run(run_dir, recs, status={"pid": 1, "state": "finished", "step": 6000, "total_steps": 6000})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_finished(root / "clean", 9000, eval_every=500)
    _resumed(root / "resumed")
    write_finished(root / "damaged", 9000, spike_at=4321, eval_every=700)
    path = root / "damaged" / METRICS_FILE
    data = path.read_bytes()
    middle = data.index(b"\xa4type\xa6metric", len(data) // 2) - 1
    path.write_bytes(data[:middle] + b"\xc1not a record\xc1" * 20 + data[middle:-9])
    for name in NAMES:
        assert (root / name / METRICS_FILE).stat().st_size >= cachefile.MIN_FILE_BYTES
    return root


def _csv(runs: list) -> str:
    out = io.StringIO()
    write_csv(out, rows(runs))
    return out.getvalue()


def test_report_and_export_of_long_runs_say_what_every_record_says(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    each = [load_facts(root / n, n, read_each_record) for n in NAMES]
    want_md, want_csv = report_markdown(each, now=0), _csv(each)
    assert "bytes that were not records" in want_md and "last record is torn" in want_md
    redrawn = [
        line for line in want_csv.splitlines() if line.startswith("resumed,metric,2900,") and ",loss," in line
    ]
    assert len(redrawn) == 1 and redrawn[0].endswith(
        f",loss,{1.8 + 1 / math.sqrt(2900)!r}"
    )  # the last resume's
    for time_ in ("first", "again"):
        runs = load(root, NAMES)
        assert report_markdown(runs, now=0) == want_md, time_
        assert _csv(runs) == want_csv, time_
        assert main(["export", *NAMES, "--csv", "--root", str(root)]) == 0
        assert capsys.readouterr().out == want_csv, time_
        # Each left a cache behind; only the clean ones are read from it (a damaged file is decoded
        # whole, so its warnings are told again).
        assert all(cachefile.cached_offset(root / n) for n in NAMES), time_
    from nexus_tui.history.columnar import colcache

    assert colcache.load(root / "clean", clean_only=True) is not None
    assert colcache.load(root / "resumed", clean_only=True) is not None
    assert colcache.load(root / "damaged", clean_only=True) is None
