"""Bad input never crashes anything and never overwrites anything: garbage on a real metrics pipe into
a running app, a damaged metrics file re-attached, bad names, paths, corpora and checkpoints given
to the CLI (one `error:` line, exit 2, every existing byte unchanged), and pickles beside a
checkpoint that must never be unpickled."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from support import ROOT
from support.engine import run_engine
from support.preset import TINY
from support.runfolder import snapshot

from nexus_core import protocol as P


def _one_line_error(done, pattern: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert re.search(pattern, lines[0]), lines[0]


def _rec(kind: str, seq: int, **fields) -> bytes:
    return P.pack({"type": kind, "seq": seq, "time": time.time(), **fields})


# -- the dashboard side ------------------------------------------------------------------------------

FAKE_ENGINE = """#!{python}
# Stands in for `python -m engine`: writes a hostile record stream to the real --metrics-fd pipe.
import os, sys, time
sys.path.insert(0, {root!r})
from nexus_core import protocol as P
if "--check" in sys.argv:  # the launch's validation before it starts (launch_args.check_train): accepted
    print("ok: would train")
    sys.exit(0)
fd = int(sys.argv[sys.argv.index("--metrics-fd") + 1])
def rec(kind, seq, **f):
    return P.pack({{"type": kind, "seq": seq, "time": time.time(), **f}})
chunks = [
    rec("hello", 0, run="hostile", protocol=99, pid=os.getpid(), device="cpu", params=1, total_steps=9,
        start_step=0, model="transformer", config={{}}),
    b"\\x00\\xff garbage that is not msgpack \\xc1\\xc1",
    rec("metric", 1, step=1, tokens=8, loss=3.0, ce=3.0, lr=1e-3, gnorm=1.0, tok_s=1.0, step_s=0.1, mem=1),
    rec("telepathy", 2, step=1),
    b"\\xdb\\x7f\\xff\\xff\\xff",  # a str header claiming 2 GiB
    rec("metric", 3, step=2, tokens=16, loss="not a number", ce=None, lr=1e-3),
    rec("metric", 4, step=3, tokens=24, loss=2.5, ce=2.5, lr=1e-3, gnorm=1.0, tok_s=1.0, step_s=0.1, mem=1),
    b"\\xcf" * 70000,  # oversized junk
    rec("state", 5, state="finished", step=3, reason="done", exit_code=0)[:-3],  # torn at the end
]
for c in chunks:
    os.write(fd, c)
    time.sleep(0.02)
"""


async def test_garbage_on_a_real_pipe_leaves_the_app_up_with_warnings(
    runs_root: Path, tmp_path: Path
) -> None:
    from nexus_tui.app import NexusApp
    from nexus_tui.widgets.log_pane import LogPane

    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_ENGINE.format(python=sys.executable, root=str(ROOT)))
    fake.chmod(0o755)
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(120, 40)) as pilot:
        app.services.supervisor.python = str(fake)
        app.services.supervisor.launch("tiny", name="hostile", steps=9)
        deadline = time.monotonic() + 30
        while "hostile" in app.services.supervisor.live_runs() or app.store.get("hostile") is None:
            assert time.monotonic() < deadline, "the fake engine never finished"
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        assert app.is_running
        run = app.store.get("hostile")
        xs, ys = app.store.series("hostile", "loss")
        assert list(xs) == [1, 3] and list(ys) == [3.0, 2.5], "good records around the garbage all arrived"
        text = "\n".join(str(line) for line in app.query_one(LogPane).lines_written)
        for warning in (
            "bytes that were not records",
            "unknown type 'telepathy'",
            "protocol 99",
            "ended inside a record",
        ):
            assert warning in text, (warning, text[-2000:])
        assert not run.live and run.state != "running", "its end is shown from the exit status"
        await pilot.press("a")  # the app still answers keys
        assert app.is_running


def test_a_damaged_metrics_file_is_reattached_with_every_whole_record(runs_root: Path) -> None:
    from nexus_tui.history.store import MetricStore
    from nexus_tui.live.supervisor import Supervisor

    run = runs_root / "damaged"
    run.mkdir()
    good = [
        _rec(
            "hello",
            0,
            run="damaged",
            protocol=1,
            pid=1,
            device="cpu",
            params=1,
            total_steps=9,
            start_step=0,
            model="transformer",
            config={},
        )
    ]
    good += [
        _rec(
            "metric",
            i,
            step=i,
            tokens=8 * i,
            loss=3.0 - 0.1 * i,
            ce=3.0,
            lr=1e-3,
            gnorm=1.0,
            tok_s=1.0,
            step_s=0.1,
            mem=1,
        )
        for i in range(1, 6)
    ]
    data = good[0] + good[1] + b"\x92\x01" + os.urandom(300) + b"".join(good[2:]) + good[1][:7]
    (run / P.METRICS_FILE).write_bytes(data)
    store, warnings = MetricStore(), []
    sup = Supervisor(runs_root, store.ingest_batch, lambda *a: None, lambda n, t: warnings.append(t))
    assert sup.attach(run, feed_history=True) is False  # no live process behind it
    assert list(store.series("damaged", "loss")[0]) == [1, 2, 3, 4, 5]
    assert any("not records" in w for w in warnings) and any("torn" in w for w in warnings), warnings
    assert (run / P.METRICS_FILE).read_bytes() == data, "reading never rewrites the file"
    sup.shutdown(stop_runs=False)


# -- the CLI side ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "kept"
    done = run_engine("train", "--run-dir", str(run), "--steps", "4", *TINY, "--set", "train.eval_every=4")
    assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "copy"
    shutil.copytree(trained, run, symlinks=True)
    return run


def test_bad_names_and_paths_are_one_line_and_touch_nothing(tmp_path: Path, copy: Path) -> None:
    runs = copy.parent
    for name, pattern in (
        ("../escape", r"--name '\.\./escape'"),
        ("a/b", r"--name 'a/b'"),
        ("..", r"--name '\.\.'"),
    ):
        before = snapshot(tmp_path)
        done = run_engine("train", "--name", name, *TINY)
        _one_line_error(done, pattern)
        assert snapshot(tmp_path) == before
    a_file = runs / "notes.txt"
    a_file.write_text("my notes")
    _one_line_error(run_engine("train", "--run-dir", str(a_file), *TINY), r"is a file, not a folder")
    _one_line_error(run_engine("resume", "--run-dir", str(a_file)), r"not a run folder")
    assert a_file.read_text() == "my notes"


@pytest.mark.parametrize("corpus", ["empty-file", "empty-folder", "binary-file"])
def test_an_empty_or_unusable_corpus_is_one_line(tmp_path: Path, corpus: str) -> None:
    source = tmp_path / corpus
    if corpus == "empty-file":
        source.write_text("")
    elif corpus == "empty-folder":
        source.mkdir()
    else:
        source.write_bytes(b"\x00\x01\x02" * 100)
    run = tmp_path / "r"
    done = run_engine("train", "--run-dir", str(run), "--set", f"data.source={source}", *TINY)
    _one_line_error(done, r"data\.source|empty|binary|text")
    assert not (run / P.METRICS_FILE).exists()


def _truncate_weights(run: Path) -> str:
    weights = run / "checkpoints" / "latest" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    return r"corrupt: model\.safetensors unreadable"


def _other_model(run: Path) -> str:
    config = run / P.CONFIG_FILE
    config.write_text(config.read_text().replace("n_layers = 1", "n_layers = 2"))
    return r"does not match this run's config: model\.n_layers: checkpoint 1, config 2"


def _foreign_checkpoint(run: Path) -> str:
    """A checkpoint folder of another model dropped into this run: the weights' keys are listed."""
    import json

    meta_path = run / "checkpoints" / "latest" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["model"]["n_layers"] = 1
    meta_path.write_text(json.dumps(meta))
    from safetensors.torch import load_file, save_file

    weights = run / "checkpoints" / "latest" / "model.safetensors"
    tensors = {k.replace("blocks.0.", "layers.0."): v for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"aliases": "{}", "format": "1"})
    return r"does not fit this model \(missing: .*blocks\.0\..*unexpected: .*layers\.0\."


@pytest.mark.parametrize("damage", [_truncate_weights, _other_model, _foreign_checkpoint])
def test_a_bad_checkpoint_is_one_line_and_nothing_is_overwritten(copy: Path, damage) -> None:
    pattern = damage(copy)
    before = snapshot(copy)
    for args in (
        ["resume", "--run-dir", str(copy), "--steps", "8", "--threads", "1"],
        ["eval", "--run-dir", str(copy), "--batches", "1"],
    ):
        _one_line_error(run_engine(*args), pattern)
        assert snapshot(copy) == before, f"{args[0]} changed the run folder"


def test_bad_config_and_overrides_on_a_used_folder_touch_nothing(copy: Path, tmp_path: Path) -> None:
    before = snapshot(copy)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[model\nn_layers = ")
    cases = [
        (["--config", str(bad_toml)], r"not valid TOML"),
        (["--set", "model.n_layers=-3"], r"n_layers"),
        (["--set", "optim.nope=1"], r"unknown key optim\.nope"),
        ([], r"already has metrics"),
    ]
    for extra, pattern in cases:
        _one_line_error(run_engine("train", "--run-dir", str(copy), *TINY, *extra), pattern)
        assert snapshot(copy) == before, extra


class _Evil:
    """Unpickling this creates a marker file: proof that something called pickle.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_beside_or_instead_of_a_checkpoint_are_never_loaded(copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    latest = (copy / "checkpoints" / "latest").resolve()
    for name in ("model.pt", "optimizer.pt", "pytorch_model.bin", "training_state.pkl"):
        (latest / name).write_bytes(payload)
    fake = copy / "checkpoints" / "step_000099"
    fake.mkdir()
    (fake / "model.pt").write_bytes(payload)
    from engine import checkpoint as ckpt

    assert [p.name for p in ckpt.list_checkpoints(copy)] == ["step_000004"], (
        "a folder without meta.json is no checkpoint"
    )

    _one_line_error(
        run_engine("eval", "--run-dir", str(copy), "--from", "99"), r"incomplete: meta\.json is missing"
    )
    done = run_engine("resume", "--run-dir", str(copy), "--steps", "8", "--stop-at", "5", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]  # loaded latest, beside four pickles
    assert P.read_status(copy)["step"] == 5
    assert not marker.exists(), "a pickle was loaded"
    engine_src = ROOT / "engine"
    for src in engine_src.rglob("*.py"):
        text = src.read_text()
        assert not re.search(r"\bimport pickle\b|\bpickle\.loads?\(|torch\.load\(", text), src
