"""Comparisons leave the terminal as markdown: built from two real finished tiny runs, printed by
`nexus compare`, and copied/saved by the compare screen's y key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT
from support.engine import engine_env
from support.markdown import table_after
from support.preset import sets
from textual.app import App

from nexus_core.protocol import METRICS_FILE, read_records
from nexus_tui.__main__ import main
from nexus_tui.documents.comparison import COLUMNS, comparison_markdown, load_runs
from nexus_tui.screens.compare import CompareScreen
from nexus_tui.themes import PALETTES

SIDE_WORK = ["train.eval_every=3", "train.eval_batches=2", "train.ckpt_every=1000"]
"""Evals every 3 steps (so each 6-step run has a best val loss), no checkpoints until the end."""
RUNS = {"a": [], "b": ["optim.lr=1e-2"]}
"""Two runs that differ in one config key: the diff table must list that key and nothing else."""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished 6-step tiny runs, trained side by side (one torch thread each)."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    procs = []
    for name, extra in RUNS.items():
        cmd = [
            sys.executable,
            "-m",
            "engine",
            "train",
            "--preset",
            "tiny",
            "--steps",
            "6",
            "--run-dir",
            str(root / name),
            *sets(*SIDE_WORK, *extra),
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=engine_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        )
    try:
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return root


def best_val(run_dir: Path) -> float:
    evals = [r["val_loss"] for r in read_records(run_dir / METRICS_FILE).records if r.get("type") == "eval"]
    assert evals, "the run wrote no eval records"
    return min(evals)


def test_markdown_of_two_finished_runs(root: Path) -> None:
    store, names = load_runs(root, ["a", "b"])
    text = comparison_markdown(store, names)
    results = table_after(text, "### Results")
    header, rows = results[0], results[1:]
    assert header[0] == "run" and "best val loss (nats)" in header and "time training" in header
    assert [r[0] for r in rows] == ["a", "b"], "one row per run, in the order asked"
    col = header.index("best val loss (nats)")
    bests = {name: best_val(root / name) for name in ("a", "b")}
    for row in rows:
        assert row[col].strip("*") == f"{bests[row[0]]:.4f}"
    if f"{bests['a']:.4f}" != f"{bests['b']:.4f}":
        winner = min(bests, key=bests.get)
        assert [r[0] for r in rows if r[col].startswith("**")] == [winner], "the lower best val loss is bold"
    steps = header.index("steps")
    assert [r[steps] for r in rows] == ["6", "6"]
    table = text.split("### Results", 1)[1].split("###", 1)[0].strip().splitlines()
    assert len({len(line) for line in table}) == 1, "columns are padded to line up"

    diff = table_after(text, "### Config differences")
    assert diff[0] == ["config key", "a", "b"]
    assert diff[1:] == [["`optim.lr`", "`0.003`", "`0.01`"]], "only the key that differs"
    assert len(COLUMNS) + 1 == len(header)


def test_cli_prints_markdown_without_torch_or_textual(root: Path) -> None:
    check = (
        "import sys; from nexus_tui.__main__ import main; rc = main(sys.argv[1:]); "
        "assert not {'torch', 'textual'} & set(sys.modules), 'imported torch or textual'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, "compare", "a", "b", "--root", str(root), "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    store, names = load_runs(root, ["a", "b"])
    assert done.stdout == comparison_markdown(store, names)


def test_cli_unknown_run_is_one_line_and_exit_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(root), "compare", "a", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "nope" in err and "a, b" in err, err


class Host(App[None]):
    def __init__(self, screen: CompareScreen) -> None:
        super().__init__()
        self.to_push = screen

    def on_mount(self) -> None:
        self.push_screen(self.to_push)


async def test_y_copies_and_saves_the_markdown(root: Path, tmp_path: Path) -> None:
    store, names = load_runs(root, ["a", "b"])
    out = tmp_path / "out"
    screen = CompareScreen(store, PALETTES["nexus-dark"], names, root=out)
    app = Host(screen)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        assert any(b.key == "y" and b.show for b in screen.BINDINGS), "y is shown in the footer"
        await pilot.press("y")
        await pilot.pause()
        files = sorted(out.glob("compare-*.md"))
        assert len(files) == 1
        expected = comparison_markdown(store, names)
        assert files[0].read_text() == expected and app.clipboard == expected
        assert any(str(files[0]) in str(n.message) for n in app._notifications)
        await pilot.press("y")  # a second copy in the same second keeps the first file
        await pilot.pause()
        assert len(list(out.glob("compare-*.md"))) == 2


def test_nexus_compare_of_long_runs_reads_them_as_columns_and_says_what_the_records_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nexus compare` reads a run the dashboard's way (columnar decode, the cache where it matches):
    the same markdown as folding every record one by one, on a clean long run and on one with garbage
    in the middle, the first time and again from the cache it left."""
    from support.runfolder import write_finished

    from nexus_tui.history.columnar import cachefile
    from nexus_tui.history.store import MetricStore

    root = tmp_path / "runs"
    write_finished(root / "clean", 9000, eval_every=1000)
    write_finished(root / "damaged", 9000, spike_at=4321, eval_every=700)
    path = root / "damaged" / METRICS_FILE
    data = path.read_bytes()
    middle = data.index(b"\xa4type\xa6metric", len(data) // 2) - 1
    path.write_bytes(data[:middle] + b"\xc1not a record\xc1" + data[middle:])
    per_record = MetricStore()
    for name in ("clean", "damaged"):
        per_record.ingest(name, root / name, read_records(root / name / METRICS_FILE).records)
    expected = comparison_markdown(per_record, ["clean", "damaged"])
    for time_ in ("first", "again"):
        assert main(["compare", "clean", "damaged", "--root", str(root)]) == 0
        assert capsys.readouterr().out == expected, time_
        assert all(cachefile.cached_offset(root / n) for n in ("clean", "damaged"))


def test_nexus_compare_names_every_run_asked_for_and_says_what_it_could_not_read(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run with no whole record yet (just started, or only garbage) still has its row, by name, and
    stderr says why it is empty; what a damaged run's reading skipped is said there too, one line each,
    while stdout stays the pasteable markdown."""
    (root / "fresh").mkdir()
    (root / "fresh" / METRICS_FILE).write_bytes(b"")
    (root / "junk").mkdir()
    (root / "junk" / METRICS_FILE).write_bytes(b"\xc1\x1b[31m" * 40)
    assert main(["--root", str(root), "compare", "a", "fresh", "junk"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("## Comparing a, fresh, junk\n"), out
    rows = [
        line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert rows[:4] == ["run", "a", "fresh", "junk"], out
    lines = err.splitlines()
    assert any(line.startswith("warning: fresh: ") and "no whole record" in line for line in lines), err
    assert any(line.startswith("warning: junk: ") and "no whole record" in line for line in lines), err
    assert any(line.startswith("warning: junk: ") and "no whole record" not in line for line in lines), err
    assert "\x1b" not in err and not any("warning: a:" in line for line in lines), err


def test_a_loop_that_logs_only_loss_has_its_wall_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Most runs are people's own loops, which log `loss` and no pure CE: compare times them by their loss
    records (its wall time read '–')."""
    import nexus

    root = tmp_path / "runs"
    run = nexus.init(root=root, name="own", total_steps=3)
    for step in range(1, 4):
        run.log({"loss": 2.0 / step}, step=step)
    run.finish(quiet=True)
    assert main(["compare", "own", "--root", str(root)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| own "))
    wall = row.strip("|").split("|")[-1].strip()
    assert wall not in ("–", "") and wall.endswith("s"), row
