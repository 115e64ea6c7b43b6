"""MetricStore: folding real records (written by protocol.RecordWriter), dedup by seq across two
feeds, gaps backfilled in order, resumes that go back in steps, and garbage that must never raise."""

from __future__ import annotations

import math
import shutil
import signal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_core.protocol import METRICS_FILE, RecordWriter, read_records
from nexus_core.state import Exited
from nexus_tui.history.store import MetricStore


def _write_run(
    run_dir: Path, steps: range, start_step: int = 0, total: int = 100, t0: float = 0.0, pid: int = 4242
) -> list[dict]:
    """Append a hello and one metric per step (eval every 10) with the engine's own writer."""
    run_dir.mkdir(parents=True, exist_ok=True)
    w = RecordWriter(run_dir / METRICS_FILE)
    out = [
        w.write(
            {
                "type": "hello",
                "run": run_dir.name,
                "protocol": 1,
                "config": {"model": {"d_model": 32}},
                "pid": pid,
                "device": "cpu",
                "params": 1234,
                "total_steps": total,
                "start_step": start_step,
                "model": "transformer",
                "resumed_from": None,
            }
        )
    ]
    for s in steps:
        rec = w.write(
            {
                "type": "metric",
                "step": s,
                "tokens": s * 512,
                "loss": 5.0 / (s + 1) + 1,
                "ce": 4.0 / (s + 1) + 1,
                "lr": 1e-3,
                "gnorm": 0.5,
                "tok_s": 1000.0,
                "step_s": 0.5,
                "mem": 1e6,
            }
        )
        rec["time"] = t0 + s * 0.5  # a deterministic clock for the ETA
        out.append(rec)
        if s % 10 == 0:
            out.append(
                w.write(
                    {
                        "type": "eval",
                        "step": s,
                        "tokens": s * 512,
                        "val_loss": 3.0 - s / 100,
                        "val_ppl": math.exp(3.0 - s / 100),
                        "best": True,
                    }
                )
            )
    w.close()
    return out


def test_ingest_builds_the_view(tmp_path: Path) -> None:
    recs = _write_run(tmp_path / "a", range(1, 41))
    store = MetricStore()
    changed = store.ingest("a", tmp_path / "a", recs)
    assert changed == {"hello", "metrics", "eval"}
    run = store.get("a")
    assert run is not None and run.color == 0
    assert (run.model, run.device, run.pid, run.total_steps, run.params) == (
        "transformer",
        "cpu",
        4242,
        100,
        1234,
    )
    assert run.config == {"model": {"d_model": 32}}
    assert run.step == 40 and run.tokens == 40 * 512 and run.state == "running"
    assert math.isclose(run.loss, 5.0 / 41 + 1) and math.isclose(run.ce, 4.0 / 41 + 1)
    assert math.isclose(run.best_val_loss, 3.0 - 0.4)
    assert math.isclose(run.steps_per_s, 2.0) and math.isclose(run.eta_s, 60 / 2.0)
    xs, ys = store.series("a", "loss")
    assert list(xs) == list(range(1, 41)) and math.isclose(ys[-1], run.loss)
    xs, _ = store.series("a", "loss", x="tokens")
    assert xs[-1] == 40 * 512
    assert len(store.series("a", "val_loss")[0]) == 4
    assert store.series("nope", "loss") == store.series("a", "no-such-series")


def test_the_same_records_from_pipe_and_file_count_once(tmp_path: Path) -> None:
    recs = _write_run(tmp_path / "a", range(1, 31))
    from_file = read_records(tmp_path / "a" / METRICS_FILE).records
    store = MetricStore()
    store.ingest("a", tmp_path / "a", recs[:20])
    assert store.ingest("a", tmp_path / "a", from_file[:10]) == set()  # all already seen
    store.ingest("a", tmp_path / "a", from_file)
    store.ingest("a", tmp_path / "a", recs)
    assert list(store.series("a", "loss")[0]) == list(range(1, 31))


def test_a_pipe_gap_is_backfilled_in_step_order(tmp_path: Path) -> None:
    recs = _write_run(tmp_path / "a", range(1, 31))
    store = MetricStore()
    gap = [r for r in recs if r["type"] == "metric" and 10 <= r["step"] < 15]
    store.ingest("a", None, [r for r in recs if r not in gap])  # the pipe dropped five records
    assert 12 not in store.series("a", "loss")[0]
    assert store.ingest("a", tmp_path / "a", recs) == {"metrics"}  # the file fills the gap
    assert list(store.series("a", "loss")[0]) == list(range(1, 31))
    run = store.get("a")
    assert run.step == 30 and run.run_dir == tmp_path / "a"  # a late record does not move "now" back


def test_resume_from_an_earlier_step_keeps_the_new_trajectory(tmp_path: Path) -> None:
    first = _write_run(tmp_path / "a", range(1, 51))
    store = MetricStore()
    store.ingest("a", tmp_path / "a", first)
    store.apply_event("a", Exited(0, ""))
    second = _write_run(tmp_path / "a", range(31, 61), start_step=30, total=60, t0=100.0)
    assert second[0]["seq"] > first[-1]["seq"]  # same file, appended
    changed = store.ingest("a", tmp_path / "a", second)
    assert {"hello", "metrics"} <= changed
    xs, ys = store.series("a", "loss")
    assert list(xs) == list(range(1, 61))  # steps 31..50 of the first leg were replaced
    assert math.isclose(ys[40], 5.0 / 42 + 1)
    run = store.get("a")
    assert run.state == "running" and run.exit_code is None and run.start_step == 30 and run.total_steps == 60
    # Re-reading the whole file (a dashboard restart) gives the same picture.
    again = MetricStore()
    again.ingest("a", tmp_path / "a", read_records(tmp_path / "a" / METRICS_FILE).records)
    assert list(again.series("a", "loss")[0]) == list(range(1, 61))


def test_samples_ckpts_states_logs_alerts(tmp_path: Path) -> None:
    store = MetricStore()
    recs = [
        {"type": "hello", "seq": 0, "total_steps": 10},
        {"type": "sample", "seq": 1, "step": 5, "prompt": "def ", "text": "def f(x):"},
        {"type": "ckpt", "seq": 2, "step": 5, "path": "checkpoints/step_000005", "best": False},
        {"type": "state", "seq": 3, "state": "paused", "step": 5, "reason": "asked"},
        {"type": "log", "seq": 4, "level": "info", "text": "hello"},
        {"type": "alert", "seq": 5, "kind": "spike", "step": 5, "text": "loss spiked"},
    ]
    assert store.ingest("r", None, recs) == {"hello", "samples", "ckpt", "state", "logs", "alerts"}
    run = store.get("r")
    assert run.state == "paused" and run.samples[0]["text"] == "def f(x):"
    assert run.ckpts[0]["path"].endswith("000005") and run.alerts[0]["kind"] == "spike"
    assert run.logs[-1]["text"] == "hello" and run.eta_s is None


def test_ingest_hands_back_exactly_the_news_it_added(tmp_path: Path) -> None:
    """The app shows what `ingest` returns (typed Changes), not what it finds again in the run's
    lists: records seen before give nothing back, a backfilled sample comes back once, and a crash
    on exit comes back as its alert."""
    store = MetricStore()
    first = [
        {"type": "hello", "seq": 0, "total_steps": 10},
        {"type": "log", "seq": 1, "level": "info", "text": "one"},
        {"type": "sample", "seq": 3, "step": 7, "prompt": "p", "text": "late"},
        {"type": "alert", "seq": 4, "kind": "spike", "step": 7, "text": "spiked"},
    ]
    got = store.ingest("r", None, first)
    assert [r.text for r in got.logs] == ["one"] and [r.text for r in got.samples] == ["late"]
    assert [r.kind for r in got.alerts] == ["spike"]
    again = store.ingest("r", None, first)  # the same records from the file after the pipe
    assert not again and not again.logs and not again.samples and not again.alerts
    backfill = store.ingest(
        "r",
        None,
        [
            {"type": "sample", "seq": 2, "step": 3, "prompt": "p", "text": "early"},
            {"type": "log", "seq": 5, "level": "warning", "text": "two"},
        ],
    )
    assert [r.text for r in backfill.samples] == ["early"] and [r.text for r in backfill.logs] == ["two"]
    assert [r.text for r in store.get("r").samples] == ["early", "late"]  # the run's list is in step order
    exited = store.apply_event("r", Exited(-9, "Killed"))
    assert [a.kind for a in exited.alerts] == ["crash"] and exited.alerts[0].time is not None


def test_a_killed_run_becomes_crashed_with_its_log_tail() -> None:
    store = MetricStore()
    store.ingest(
        "r",
        None,
        [
            {"type": "hello", "seq": 0, "total_steps": 10},
            {"type": "metric", "seq": 1, "step": 1, "loss": 2.0},
        ],
    )
    assert store.apply_event("r", Exited(-9, "Traceback...\nKilled")) == {"state", "alerts"}
    run = store.get("r")
    assert run.state == "crashed" and run.exit_code == -9 and "signal 9" in run.reason
    assert run.crash_tail.endswith("Killed") and run.alerts[-1]["kind"] == "crash"
    store.ingest(
        "s",
        None,
        [{"type": "hello", "seq": 0, "total_steps": 3}, {"type": "metric", "seq": 1, "step": 3, "loss": 2.0}],
    )
    store.apply_event("s", Exited(0, ""))
    assert store.get("s").state == "finished"
    assert [r.color for r in store.runs()] == [0, 1]


def test_a_run_folder_deleted_and_recreated_under_the_same_name_starts_over(tmp_path: Path) -> None:
    """The new run's seqs restart at 0: without a reset every one of its records was dropped as seen."""
    run_dir = tmp_path / "r"
    store = MetricStore()
    store.ingest("other", None, _write_run(tmp_path / "other", range(1, 3)))
    store.ingest("r", run_dir, _write_run(run_dir, range(1, 31)))
    assert store.get("r").step == 30 and math.isclose(store.get("r").best_val_loss, 2.7)
    assert store.ingest("r", run_dir, read_records(run_dir / METRICS_FILE).records) == set(), (
        "a replay changes nothing"
    )
    loss = store.get("r").series["loss"]
    edits = loss.edits
    shutil.rmtree(run_dir)
    new = _write_run(run_dir, range(1, 6), pid=5151)
    assert "hello" in store.ingest("r", run_dir, new[:3])  # the pipe, then the file with all of it
    store.ingest("r", run_dir, read_records(run_dir / METRICS_FILE).records)
    run = store.get("r")
    assert run.step == 5 and run.pid == 5151 and run.best_val_loss is None and run.color == 1
    assert list(store.series("r", "loss")[0]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert run.series["loss"] is loss and loss.edits > edits, "chart caches see the series start over"
    assert store.ingest("r", run_dir, new) == set()
    shutil.rmtree(run_dir)
    store.ingest("r", run_dir, _write_run(run_dir, range(1, 3), pid=5151))  # the pid reused, a later start
    assert store.get("r").step == 2 and store.get("other").step == 2


def test_sigterm_before_the_hello_reads_as_stopped_not_crashed() -> None:
    """The dashboard's quit-with-stop SIGTERMs an engine still importing torch: a stop, not a crash."""
    store = MetricStore()
    assert store.apply_event("t", Exited(-signal.SIGTERM, "")) == {"state"}
    run = store.get("t")
    assert run.state == "stopped" and "SIGTERM before training started" in run.reason
    assert run.exit_code == -signal.SIGTERM and run.alerts == [] and run.crash_tail == ""
    store.ingest(
        "f",
        None,
        [
            {"type": "hello", "seq": 0, "total_steps": 3},
            {"type": "state", "seq": 1, "state": "finished", "step": 3, "exit_code": 0},
        ],
    )
    store.apply_event("f", Exited(-signal.SIGTERM, ""))
    assert store.get("f").state == "finished", "a final state the run wrote stands"


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_field = st.sampled_from(
    [
        "type",
        "seq",
        "step",
        "tokens",
        "loss",
        "ce",
        "lr",
        "time",
        "state",
        "text",
        "path",
        "val_loss",
        "config",
        "total_steps",
        "pid",
        "start_step",
        "kind",
        "exit_code",
    ]
)
_type = st.sampled_from(["hello", "metric", "eval", "sample", "ckpt", "state", "log", "alert", "???"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_junk, st.dictionaries(_field, _junk | _type, max_size=8)), max_size=12))
def test_garbage_never_raises(records: list) -> None:
    store = MetricStore()
    store.ingest("g", None, records)
    store.ingest("g", None, records)
    run = store.get("g")
    assert run is not None
    _ = (run.eta_s, run.progress, store.series("g", "loss", "time"))
    store.apply_event("g", Exited(None, ""))
    assert store.ingest("g", None, "not a list") == set()  # type: ignore[arg-type]
