"""What the dialogs and forms accept, as pure functions: validation that says what to fix, checkpoint
rows, config differences, process counts and the ranks' device label. The screens themselves are in
tests/ui/test_screens.py."""

from __future__ import annotations

from pathlib import Path

from support.records import falling_run

from nexus_core.state import ranks_device
from nexus_tui.history.store import MetricStore
from nexus_tui.screens.compare import config_differences, flatten
from nexus_tui.screens.generate import parse_generate
from nexus_tui.screens.launch import next_free_name, parse_launch
from nexus_tui.screens.ramp import checkpoint_rows, parse_ramp


def test_parse_generate_limits() -> None:
    args, err = parse_generate("def ", "50", "0.7", "10")
    assert err == "" and args == {"prompt": "def ", "tokens": 50, "temperature": 0.7, "top_k": 10}
    assert "between 1 and 4096" in parse_generate("x", "0", "1", "1")[1]
    assert "temperature must be a number" in parse_generate("x", "5", "hot", "1")[1]
    assert "top-k" in parse_generate("x", "5", "1", "-1")[1]


def test_parse_launch(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    args, err = parse_launch("tiny", "cpu", "r1", "", "optim.name=muon model.n_layers=2", tmp_path)
    assert err == "" and args == {
        "preset": "tiny",
        "name": "r1",
        "device": "cpu",
        "steps": 0,
        "overrides": ["optim.name=muon", "model.n_layers=2"],
    }
    assert "already exists" in parse_launch("tiny", "cpu", "taken", "", "", tmp_path)[1]
    assert "name:" in parse_launch("tiny", "cpu", "../x", "", "", tmp_path)[1]
    assert "section.key=value" in parse_launch("tiny", "cpu", "r2", "", "lr=3", tmp_path)[1]
    assert "at least 1" in parse_launch("tiny", "cpu", "r2", "0", "", tmp_path)[1]
    (tmp_path / "tiny-1").mkdir()
    assert next_free_name(tmp_path, "tiny") == "tiny-2"


def test_parse_ramp() -> None:
    assert parse_ramp("3e-4", "100", "", 50) == ({"target_lr": 3e-4, "ramp_steps": 100, "total_steps": 0}, "")
    assert "past the resume step" in parse_ramp("3e-4", "100", "40", 50)[1]
    assert "number like 3e-4" in parse_ramp("fast", "100", "", 0)[1]
    assert "ramp steps must be between 0 and" in parse_ramp("1e-3", "-5", "", 0)[1]
    assert "between 1e-12 and 10" in parse_ramp("1e39", "5", "", 0)[1]
    assert "finite" in parse_ramp("nan", "5", "", 0)[1]


def test_checkpoint_rows_carry_the_loss_at_their_step() -> None:
    store = MetricStore()
    store.ingest(
        "a",
        None,
        falling_run("a", 40)
        + [
            {
                "type": "ckpt",
                "seq": 500,
                "time": 1.0,
                "step": 20,
                "path": "checkpoints/step_000020",
                "best": True,
                "val_loss": 1.5,
            },
            {
                "type": "ckpt",
                "seq": 501,
                "time": 2.0,
                "step": 40,
                "path": "checkpoints/step_000040",
                "best": False,
                "val_loss": None,
            },
        ],
    )
    rows = checkpoint_rows(store, store.get("a"))
    assert [r["step"] for r in rows] == [40, 20]
    assert rows[1]["loss"] == store.series("a", "ce")[1][19]


def test_config_differences_name_only_what_changed() -> None:
    a = {"name": "a", "optim": {"name": "adamw", "lr": 1e-3}, "model": {"d_model": 64}}
    b = {"name": "b", "optim": {"name": "muon", "lr": 1e-3}, "model": {"d_model": 64}}
    assert flatten(a)["optim.lr"] == 1e-3
    assert config_differences({"a": a, "b": b}) == [("optim.name", ["'adamw'", "'muon'"])]


def test_parse_launch_processes_and_command(tmp_path: Path) -> None:
    args, err = parse_launch("tiny", "cuda:1", "r1", "", "", tmp_path, nproc="2")
    assert err == "" and args is not None
    assert args["nproc"] == 2 and args["device"] == "cuda"  # torchrun gives each rank cuda:LOCAL_RANK
    assert "nproc" not in parse_launch("tiny", "cpu", "r1", "", "", tmp_path, nproc="1")[0]
    assert (
        "processes must be a whole number"
        in parse_launch("tiny", "cpu", "r1", "", "", tmp_path, nproc="two")[1]
    )
    assert "1 to 64" in parse_launch("tiny", "cpu", "r1", "", "", tmp_path, nproc="0")[1]
    got, err = parse_launch(
        "tiny", "cuda:1", "r1", "", "", tmp_path, command="python 'my train.py' --lr 3e-4"
    )
    assert got == {"command": ["python", "my train.py", "--lr", "3e-4"], "name": "r1", "device": "cuda:1"}, (
        err
    )
    assert "command:" in parse_launch("tiny", "cpu", "r1", "", "", tmp_path, command="python 'oops")[1]
    assert "for presets" in parse_launch("tiny", "cpu", "r1", "10", "", tmp_path, command="python t.py")[1]


def test_ranks_device() -> None:
    assert ranks_device("cuda:0", 1) == "cuda:0"
    assert ranks_device("cuda:0", 2) == "cuda:0,1"
    assert ranks_device("cpu", 2) == "cpu×2"
    assert ranks_device("cuda:0", 16) == "cuda×16"
