"""Comparisons leave the terminal as markdown: built from two real finished tiny runs, printed by
`nexus compare`, and copied/saved by the compare screen's y key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual.app import App

from nexus_core.protocol import METRICS_FILE, read_records
from nexus_tui.__main__ import main
from nexus_tui.screens.compare import CompareScreen
from nexus_tui.services.comparison import (
    COLUMNS,
    FAMILY_OPTIONS,
    SHARED_MODEL_OPTIONS,
    comparison_markdown,
    load_runs,
)
from nexus_tui.services.store import MetricStore
from nexus_tui.themes import PALETTES

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.n_kv_heads=1", "model.seq_len=32",
        "train.batch_size=4", "train.eval_every=3", "train.eval_batches=2", "train.sample_every=1000",
        "train.ckpt_every=1000", "data.max_bytes=200000"]
RUNS = {"a": [], "b": ["optim.lr=1e-2"]}
"""Two runs that differ in one config key: the diff table must list that key and nothing else."""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished 6-step tiny runs, trained side by side (one torch thread each)."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = []
    for name, extra in RUNS.items():
        sets = [arg for kv in TINY + extra for arg in ("--set", kv)]
        cmd = [sys.executable, "-m", "engine", "train", "--preset", "tiny", "--steps", "6", "--threads", "1",
               "--run-dir", str(root / name), *sets]
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
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


def table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the markdown table under a heading (header row first, the --- rule dropped)."""
    lines = text.split(heading, 1)[1].strip().splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return [rows[0], *rows[2:]] if rows else []


def test_markdown_of_two_finished_runs(root: Path) -> None:
    store, names = load_runs(root, ["a", "b"])
    text = comparison_markdown(store, names)
    results = table_after(text, "### Results")
    header, rows = results[0], results[1:]
    assert header[0] == "run" and "best val loss (nats)" in header and "wall time" in header
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
    check = ("import sys; from nexus_tui.__main__ import main; rc = main(sys.argv[1:]); "
             "assert not {'torch', 'textual'} & set(sys.modules), 'imported torch or textual'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", check, "compare", "a", "b", "--root", str(root), "--markdown"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
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


def test_bold_marks_the_best_shown_value_and_missing_values_are_dashes() -> None:
    """Through the real store: a run without evals reads as a dash and takes no part in the bold;
    two runs whose best val loss rounds to the same text are both bold."""
    from nexus_tui.services.comparison import results, results_markdown
    from nexus_tui.services.store import MetricStore

    store = MetricStore()
    for seq_base, (name, val) in enumerate((("x", 2.00001), ("y", 2.00002), ("z", None), ("w", 3.5))):
        recs = [{"type": "hello", "seq": 0, "time": 1.0, "config": {"optim": {"lr": 1e-3}}},
                {"type": "metric", "seq": 1, "time": 2.0, "step": 1, "tokens": 64, "ce": 4.0 + seq_base, "tok_s": 100.0}]
        if val is not None:
            recs.append({"type": "eval", "seq": 2, "time": 3.0, "step": 1, "tokens": 64, "val_loss": val})
        store.ingest(name, None, recs)
    rows = table_after("#\n" + results_markdown(results(store, ["x", "y", "z", "w"])), "#")
    col = rows[0].index("best val loss (nats)")
    assert [r[col] for r in rows[1:]] == ["**2.0000**", "**2.0000**", "–", "3.5000"]
    h = rows[0].index("final H (nats)")
    assert [r[h] for r in rows[1:]] == ["**4.0000**", "5.0000", "6.0000", "7.0000"]
    tok = rows[0].index("tok/s")
    assert all(not r[tok].startswith("**") for r in rows[1:]), "all equal: nothing wins"


# -- family options: a key only counts among the runs whose model family reads it ----------------


def preset_store(runs: dict[str, tuple[str, list[str]]]) -> MetricStore:
    """A store of runs whose hello records carry real validated configs (preset + overrides), the
    same dicts an engine writes, so the diff sees every default a real run would have."""
    from nexus_core.config import apply_override, load_preset

    store = MetricStore()
    for name, (preset, overrides) in runs.items():
        cfg = load_preset(preset)
        cfg.name = name
        for text in overrides:
            apply_override(cfg, text)
        hello = {"type": "hello", "seq": 0, "time": 1.0, "config": cfg.validate().to_dict()}
        store.ingest(name, None, [hello])
    return store


def diff_rows(store: MetricStore, names: list[str]) -> dict[str, list[str]]:
    rows = table_after(comparison_markdown(store, names), "### Config differences")
    assert rows[0] == ["config key", *names]
    return {r[0].strip("`"): r[1:] for r in rows[1:]}


def test_every_model_field_is_shared_or_read_by_exactly_one_family() -> None:
    """Fails when engine/config.py gains (or loses) a ModelConfig field the table does not classify."""
    from dataclasses import fields

    from nexus_core.config import Config, ModelConfig

    names = {f.name for f in fields(ModelConfig)}
    family_sets = list(FAMILY_OPTIONS.values())
    unclassified = names - SHARED_MODEL_OPTIONS - set().union(*family_sets)
    assert not unclassified, f"add these ModelConfig fields to nexus_tui/services/comparison.py: {sorted(unclassified)}"
    stale = (SHARED_MODEL_OPTIONS | set().union(*family_sets)) - names
    assert not stale, f"no longer ModelConfig fields: {sorted(stale)}"
    assert sum(map(len, family_sets)) + len(SHARED_MODEL_OPTIONS) == len(names), "a field is in two sets"
    for family in FAMILY_OPTIONS:  # each table family is one the engine accepts
        Config(model=ModelConfig(family=family)).validate()


def test_transformer_vs_hybrid_lists_family_not_the_options_only_one_reads() -> None:
    store = preset_store({"t": ("tiny", []), "h": ("hybrid-tiny", [])})
    rows = diff_rows(store, ["t", "h"])
    assert rows["model.family"] == ["`'transformer'`", "`'hybrid'`"]
    assert rows["preset"] == ["`'tiny'`", "`'hybrid-tiny'`"]
    family_keys = {k for k in rows if k.startswith("model.") and k[6:] not in SHARED_MODEL_OPTIONS}
    assert not family_keys, f"options only one of the runs reads: {sorted(family_keys)}"
    assert "model.d_model" not in rows or len(set(rows["model.d_model"])) == 2, "shared keys still compare"


def test_hybrids_with_different_ssm_state_show_it_and_a_transformer_reads_dash() -> None:
    store = preset_store({"h8": ("hybrid-tiny", []), "h16": ("hybrid-tiny", ["model.ssm_state=16"]),
                          "t": ("tiny", ["model.mtp_heads=2"])})
    rows = diff_rows(store, ["h8", "h16"])
    assert rows == {"model.ssm_state": ["`8`", "`16`"]}, "the one key that differs, nothing else"
    rows = diff_rows(store, ["h8", "h16", "t"])
    assert rows["model.ssm_state"] == ["`8`", "`16`", "–"], "not applicable to the transformer"
    assert "model.ssm_chunk" not in rows, "the same in both hybrids; the transformer ignores it"
    assert "model.mtp_heads" not in rows, "only the transformer reads it"
    assert rows["model.family"] == ["`'hybrid'`", "`'hybrid'`", "`'transformer'`"]
