"""`nexus export`: a real tiny engine run (trained, then resumed from an earlier checkpoint) and a real
reporter run, exported to CSV and Parquet and checked point for point against their records."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.engine import run_engine_ok
from support.preset import TINY
from support.reporter import Script

from nexus_core import protocol as P
from nexus_tui.__main__ import main

STANDARD = {
    "metric": ("loss", "ce", "lr", "gnorm", "tok_s", "step_s", "mem"),
    "eval": ("val_loss", "val_ppl"),
}


def expected_points(
    run: str, records: list[Any]
) -> dict[tuple[str, str, int, str], tuple[float, int, float]]:
    """(run, kind, step, key) -> (value, tokens, time), straight from a list of records."""
    out = {}
    for rec in records:
        if rec.type not in STANDARD:
            continue
        values = {k: getattr(rec, k) for k in STANDARD[rec.type] if getattr(rec, k) is not None}
        values.update(rec.extra)
        for key, value in values.items():
            out[(run, rec.type, rec.step, key)] = (float(value), rec.tokens, rec.time)
    return out


def csv_points(text: str) -> dict[tuple[str, str, int, str], tuple[float, int, float]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    points = {
        (r["run"], r["kind"], int(r["step"]), r["key"]): (
            float(r["value"]),
            int(r["tokens"]),
            float(r["time"]),
        )
        for r in rows
    }
    assert len(points) == len(rows), "a point appears twice"
    return points


def parquet_points(path: Path) -> dict[tuple[str, str, int, str], tuple[float, int, float]]:
    table = pq.read_table(path)
    assert table.column_names == ["run", "kind", "step", "tokens", "time", "key", "value"]
    rows = table.to_pylist()
    points = {(r["run"], r["kind"], r["step"], r["key"]): (r["value"], r["tokens"], r["time"]) for r in rows}
    assert len(points) == len(rows), "a point appears twice"
    return points


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 steps (evals every 2, checkpoints every 3), then a resume from step 3 that stops at 5: the
    file holds metric steps 1..6 then 4, 5 again; steps 4-6 of the first run no longer stand."""
    root = tmp_path_factory.mktemp("export") / "runs"
    run = root / "res"
    run_engine_ok(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        *TINY,
        "--set",
        "train.ckpt_every=3",
        "--set",
        "train.eval_every=2",
    )
    run_engine_ok("resume", "--run-dir", str(run), "--from", "step_000003", "--stop-at", "5")
    return run


def test_resumed_engine_run_exports_every_point_of_the_fold(
    resumed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = P.read_records(resumed / P.METRICS_FILE).records
    second = max(i for i, r in enumerate(records) if r.type == "hello")
    first_part = [r for r in records[:second] if r.type in STANDARD and r.step <= 3]
    later_part = records[second:]
    assert [r.step for r in records if r.type == "metric"] == [1, 2, 3, 4, 5, 6, 4, 5]
    want = expected_points("res", first_part + later_part)
    assert {k[2] for k in want if k[1] == "metric"} == {1, 2, 3, 4, 5}
    assert {k[2] for k in want if k[1] == "eval"} >= {2, 4}
    assert ("res", "metric", 6, "loss") not in want

    assert main(["--root", str(resumed.parent), "export", "res", "--csv"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    got = csv_points(out)
    assert got == want  # every point, exactly (floats round-trip through repr), nothing more
    for step in (4, 5):  # the re-trained steps carry the resumed run's numbers
        newer = next(r for r in later_part if r.type == "metric" and r.step == step)
        assert got[("res", "metric", step, "loss")][0] == newer.loss

    pq_path = tmp_path / "res.parquet"
    assert main(["--root", str(resumed.parent), "export", "res", "--parquet", "-o", str(pq_path)]) == 0
    assert capsys.readouterr().err == f"wrote {len(want)} points to {pq_path}\n"
    assert parquet_points(pq_path) == want


def test_export_of_a_reporter_run_keeps_its_extra_keys(tmp_path: Path, resumed: Path) -> None:
    root = tmp_path / "runs"
    run = root / "rep"
    run.mkdir(parents=True)
    script = Script(run, "wandb")  # logs train/loss and val/acc for 30 steps, then exits
    assert script.wait() == 0, script.output()
    records = P.read_records(run / P.METRICS_FILE).records
    want = expected_points("rep", records)
    assert {k[3] for k in want if k[1] == "eval"} == {"val/acc"}
    assert len([k for k in want if k[3] == "val/acc"]) == 30

    # Two runs in one file, through the console script, torch-free and textual-free.
    out = tmp_path / "both.csv"
    check = (
        "import sys; from nexus_tui.__main__ import main; rc = main(sys.argv[1:]); "
        "assert not {'torch', 'textual'} & set(sys.modules), 'imported torch or textual'; sys.exit(rc)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            check,
            "--root",
            str(root),
            "export",
            "rep",
            str(resumed),
            "--csv",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = csv_points(out.read_text())
    assert {k: v for k, v in got.items() if k[0] == "rep"} == want
    assert {k[0] for k in got} == {"rep", "res"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            check,
            "--root",
            str(root),
            "export",
            "rep",
            "--parquet",
            "-o",
            str(tmp_path / "rep.parquet"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert parquet_points(tmp_path / "rep.parquet") == want


def test_untrusted_names_and_keys_are_made_safe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "evil\x1b]52;c;aGk=\x07\x1b[2Jname"
    run.mkdir()
    writer = P.RecordWriter(run / P.METRICS_FILE)
    writer.write({"type": "hello", "run": "x"})
    writer.write({"type": "metric", "step": 1, "loss": 2.5, '=HYPERLINK("http://x")': 1.0, "@sum": 2.0})
    writer.close()
    assert main(["export", str(run), "--csv", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["key"] for r in rows] == ["loss", '\'=HYPERLINK("http://x")', "'@sum"]
    assert rows[0]["run"].startswith("evil") and rows[0]["run"].endswith("name")


def test_bad_requests_are_one_error_line(
    tmp_path: Path, resumed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(resumed.parent)
    cases = [
        (["export", "nope", "--csv"], "no run named 'nope'"),
        (["export", "res", "--parquet"], "-o PATH"),
        (["export", "res", "--csv", "-o", str(tmp_path / "no" / "such.csv")], "cannot write"),
    ]
    for argv, words in cases:
        assert main(["--root", root, *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "no").exists()

    # Without pyarrow: one line that says what to install (pyarrow made unimportable in a real child).
    block = (
        "import sys; sys.modules['pyarrow'] = None; from nexus_tui.__main__ import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            block,
            "--root",
            root,
            "export",
            "res",
            "--parquet",
            "-o",
            str(tmp_path / "x.parquet"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and "pip install 'nexus[export]'" in done.stderr
    assert not list(tmp_path.glob("*parquet*"))


def test_the_fast_csv_and_parquet_are_the_row_by_row_tables_point_for_point(
    tmp_path: Path, resumed: Path
) -> None:
    """`nexus export --csv` writes lines straight from the folded columns (a 1e6-step run is 7 million
    points); its text is exactly what csv.writer writes of every Row: on a resumed engine run, and on a
    hand-written run with what quoting and ordering can trip on (commas, quotes, a formula, an empty
    key, a non-finite value and time, evals before the first and after the last metric, extra keys)."""
    from nexus_tui.documents.export import csv_chunks, parquet_table, rows, runs_parquet_table, write_csv
    from nexus_tui.documents.report.document import load

    def comparable(row: dict[str, Any]) -> dict[str, Any]:
        return {k: "nan" if isinstance(v, float) and v != v else v for k, v in row.items()}  # NaN != NaN

    odd = tmp_path / "odd,run"
    odd.mkdir()
    writer = P.RecordWriter(odd / P.METRICS_FILE)
    writer.write({"type": "hello", "run": "x", "total_steps": 9})
    writer.write({"type": "eval", "step": 0, "tokens": 0, "val_loss": 3.0, "val_ppl": 20.0, "time": 5.0})
    for step in range(1, 8):
        writer.write(
            {
                "type": "metric",
                "step": step,
                "tokens": step * 64,
                "loss": 3.0 / step,
                "lr": 1e-3,
                "time": float("nan") if step == 3 else 100.0 + step / 3,
                'a,"b"': step / 7,
                "=cmd": 1.0,
                "": 2.0,
                "gnorm": float("inf") if step == 5 else 0.5,
            }
        )
        if step % 3 == 0:
            writer.write(
                {
                    "type": "eval",
                    "step": step,
                    "tokens": step * 64,
                    "val_loss": 2.0 + 1 / step,
                    "val/acc": step / 10,
                }
            )
    writer.write({"type": "eval", "step": 12, "val_loss": 1.5})
    writer.close()
    for names in (["res"], [str(odd)], ["res", str(odd)]):
        runs = load(resumed.parent, names)
        expected = io.StringIO()
        count = write_csv(expected, rows(runs))
        fast = "".join(csv_chunks(runs))
        assert fast == expected.getvalue(), names
        assert fast.count("\n") == count + 1
        # Parquet from the columns: the same rows, in the same order, as from one Row per point.
        table, reference = runs_parquet_table(runs), parquet_table(rows(runs))
        assert table.schema == reference.schema and table.num_rows == count
        assert [comparable(r) for r in table.to_pylist()] == [comparable(r) for r in reference.to_pylist()], (
            names
        )


def test_wide_export_is_wandbs_shape_with_config_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--wide: one row per step, one column per key, the same values as the long table and as
    nexus.Api's history(); --meta: config and summary per run."""
    import json

    import nexus

    root = tmp_path / "runs"
    run = nexus.init(root=root, name="wide", config={"lr": 0.1, "model": "mlp"})
    for step in range(1, 5):
        run.log({"train/loss": 1.0 / step, "acc": step / 10})
        if step % 2 == 0:
            run.log({"val/loss": 2.0 / step}, step=step + 1, commit=False)
    run.summary["best"] = 0.25
    run.finish()
    out, meta = tmp_path / "wide.csv", tmp_path / "meta.json"
    assert (
        main(["--root", str(root), "export", "wide", "--csv", "--wide", "-o", str(out), "--meta", str(meta)])
        == 0
    )
    import csv

    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0])[:6] == ["run", "step", "tokens", "time", "loss", "acc"] and "val_loss" in rows[0]
    history = nexus.Api(root).run("wide").history(pandas=False)
    assert [int(r["step"]) for r in rows] == [h["_step"] for h in history]
    for row, h in zip(rows, history, strict=True):
        for key in ("loss", "acc", "val_loss"):
            assert (float(row[key]) if row[key] else None) == h.get(key)
    got = json.loads(meta.read_text())["wide"]
    assert got["config"] == {"lr": 0.1, "model": "mlp"} and got["summary"]["best"] == 0.25
    assert got["summary"]["acc"] == pytest.approx(0.4)
    capsys.readouterr()
