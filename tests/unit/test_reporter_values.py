"""The reporter never raises into the user's loop and never stops filing: whatever a script passes to
log(), it costs at most that key (with one warning), never the step and never the writer thread.
Real runs into real folders, read back with the protocol's reader."""

from __future__ import annotations

from pathlib import Path

import pytest

import nexus
from nexus_core import protocol as P


def _records(run_dir: Path, kind: str | None = None) -> list[dict]:
    return [
        r.to_dict()
        for r in P.read_records(run_dir / P.METRICS_FILE).records
        if kind is None or r.type == kind
    ]


def _warnings(run_dir: Path) -> list[str]:
    return [r["text"] for r in _records(run_dir, P.LOG) if r.get("level") == "warning"]


def test_a_step_past_64_bits_is_refused_and_the_writer_files_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """log(step=2**64) used to kill the writer thread: every later record, `finished` included, was
    lost and `nexus runs` called the finished script crashed."""
    run = nexus.init(root=tmp_path, name="huge-step")
    run.log({"loss": 1.0}, step=1)
    for bad in (2**64, -(2**70), float("nan"), float("inf"), "ten", True):
        run.log({"loss": 9.0}, step=bad)
    run.log({"loss": 0.5}, step=2)
    run.finish()
    assert [(m["step"], m["loss"]) for m in _records(run.dir, P.METRIC)] == [(1, 1.0), (2, 0.5)]
    assert _records(run.dir, P.STATE)[-1]["state"] == P.FINISHED
    assert P.read_status(run.dir)["state"] == P.FINISHED
    said = [w for w in _warnings(run.dir) if "refused" in w]
    assert said and "64 bits" in said[0] and len(said) <= 6
    assert "Traceback" not in capsys.readouterr().err


def test_a_value_past_64_bits_costs_only_that_key(tmp_path: Path) -> None:
    """10**400 or 2**64 among a step's keys used to lose the whole batch of records, `loss` with it."""
    run = nexus.init(root=tmp_path, name="huge-value")
    for step in range(1, 4):
        run.log({"loss": 1.0 / step, "huge": 10**400, "u64": 2**64, "neg": -(2**80), "fine": 2**63 - 1})
    run.log({"val_loss": 10**400, "val/acc": 0.5})
    run.finish()
    metrics = _records(run.dir, P.METRIC)
    assert [m["loss"] for m in metrics] == [1.0, 0.5, 1.0 / 3]
    assert all("huge" not in m for m in metrics)
    assert metrics[0]["u64"] == float(2**64) and metrics[0]["neg"] == float(-(2**80))
    assert metrics[0]["fine"] == pytest.approx(2**63 - 1)
    evals = _records(run.dir, P.EVAL)
    assert evals and evals[0]["val/acc"] == 0.5 and evals[0].get("val_loss") is None
    said = _warnings(run.dir)
    assert len([w for w in said if "'huge'" in w]) == 1, said  # once, not once a step
    assert any("'u64'" in w and "past 64 bits" in w for w in said)
    assert _records(run.dir, P.STATE)[-1]["state"] == P.FINISHED


def test_deep_and_self_containing_dicts_never_raise(tmp_path: Path) -> None:
    """A 1000-deep dict and a dict that contains itself raised RecursionError into the loop."""
    deep: dict = {"x": 1.0}
    for _ in range(1000):
        deep = {"d": deep}
    loop: dict = {"acc": 0.75}
    loop["self"] = loop
    run = nexus.init(
        root=tmp_path, name="deep", config={"nested": deep, "loop": loop, "big": 2**64, "bigger": 10**400}
    )
    run.log({"loss": 1.0, "deep": deep, "train": loop, "ok": {"a": {"b": 2.0}}})
    run.config.update({"more": loop})
    run.log({"loss": 0.5})
    run.finish()
    first, second = _records(run.dir, P.METRIC)
    assert first["loss"] == 1.0 and first["train/acc"] == 0.75 and first["ok/a/b"] == 2.0
    assert second["loss"] == 0.5
    said = _warnings(run.dir)
    assert any("train/self" in w and "containing itself" in w for w in said), said
    assert any("deep/d" in w for w in said)
    hello = _records(run.dir, P.HELLO)[-1]
    assert hello["config"]["big"] == float(2**64) and "past 64 bits" in hello["config"]["bigger"]
    assert (run.dir / P.CONFIG_FILE).exists() and (run.dir / "summary.json").exists()
    assert _records(run.dir, P.STATE)[-1]["state"] == P.FINISHED


def test_anything_else_log_is_handed_is_a_warning_not_an_exception(tmp_path: Path) -> None:
    class Loud:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    run = nexus.init(root=tmp_path, name="odd")
    run.log("loss=1.0")  # type: ignore[arg-type]
    run.log(None)  # type: ignore[arg-type]
    run.log({Loud(): 1.0, "loss": 2.0})
    run.log({"loss": 3.0, "text": "abc", "obj": object(), "flag": True})
    run.finish()
    assert [m["loss"] for m in _records(run.dir, P.METRIC)] == [3.0]
    assert _records(run.dir, P.STATE)[-1]["state"] == P.FINISHED
    assert len(_warnings(run.dir)) >= 3
