"""RunsWatcher on real files: history at start-up, appends followed live, torn records waiting for
their second half, a file that shrinks, and a real engine run started outside the dashboard."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support import ROOT
from support.preset import sets
from support.records import metric

from nexus_core.protocol import METRICS_FILE, RecordWriter, pack
from nexus_tui.history.columnar.fastdecode import Piece, batch_records
from nexus_tui.history.store import MetricStore
from nexus_tui.live.watcher import RunsWatcher


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.new_runs: list[Path] = []
        self.warnings: list[tuple[str, str]] = []
        self.store = MetricStore()

    def on_batch(self, name: str, run_dir: Path, pieces: list[Piece], loading: float | None = None) -> None:
        """The dashboard's path: pieces folded in bulk (`records` keeps them as records to count)."""
        with self.lock:
            self.records.setdefault(name, []).extend(batch_records(pieces))
            self.store.ingest_batch(name, run_dir, pieces, loading)

    def on_new_run(self, run_dir: Path) -> None:
        with self.lock:
            self.new_runs.append(run_dir)

    def on_warning(self, name: str, text: str) -> None:
        with self.lock:
            self.warnings.append((name, text))

    def wait(self, what, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if what():
                    return
            time.sleep(0.02)
        raise AssertionError(
            f"timed out; seen {[(k, len(v)) for k, v in self.records.items()]} {self.warnings}"
        )

    def count(self, name: str) -> int:
        return len(self.records.get(name, []))


def _watcher(root: Path, seen: Seen, poll_s: float = 2.0) -> RunsWatcher:
    return RunsWatcher(root, seen.on_batch, seen.on_new_run, seen.on_warning, poll_s=poll_s)


def test_existing_history_then_live_appends(runs_root: Path) -> None:
    (runs_root / "old").mkdir()
    w = RecordWriter(runs_root / "old" / METRICS_FILE)
    w.write({"type": "hello", "run": "old", "total_steps": 100})
    for s in range(1, 51):
        w.write(metric(s, tokens=s * 64, tok_s=10.0))
    (runs_root / "not-a-run").mkdir()
    seen = Seen()
    watcher = _watcher(runs_root, seen)
    assert watcher.scan_existing() == [(runs_root / "old").resolve()]
    assert seen.count("old") == 51 and [p.name for p in seen.new_runs] == ["old"]
    watcher.start()
    try:
        for s in range(51, 61):
            w.write(metric(s, tokens=s * 64, tok_s=10.0))
        seen.wait(lambda: seen.count("old") == 61, timeout=60)
        assert [r["seq"] for r in seen.records["old"]] == list(range(61))  # each record exactly once
        assert seen.store.get("old").step == 60
    finally:
        watcher.stop()
        w.close()


def test_a_torn_record_waits_for_its_other_half(runs_root: Path) -> None:
    seen = Seen()
    watcher = _watcher(runs_root, seen)
    watcher.start()
    try:
        run = runs_root / "torn"
        run.mkdir()
        data = pack({**metric(1, tokens=64, tok_s=10.0), "seq": 0, "time": 1.0}) + pack(
            {**metric(2, tokens=128, tok_s=10.0), "seq": 1, "time": 2.0}
        )
        cut = len(data) - 7
        with open(run / METRICS_FILE, "ab", buffering=0) as f:
            f.write(data[:cut])
            seen.wait(lambda: seen.count("torn") == 1)
            time.sleep(0.3)
            assert seen.count("torn") == 1  # the half record is held back, not garbage
            f.write(data[cut:])
        seen.wait(lambda: seen.count("torn") == 2)
        assert [p.name for p in seen.new_runs] == ["torn"] and seen.warnings == []
    finally:
        watcher.stop()


def test_garbage_and_a_shrinking_file_are_warnings_not_errors(runs_root: Path) -> None:
    seen = Seen()
    watcher = _watcher(runs_root, seen, poll_s=0.2)
    run = runs_root / "odd"
    run.mkdir()
    (run / METRICS_FILE).write_bytes(
        b"\xc1\xc1 not msgpack at all " + pack({**metric(1, tokens=64, tok_s=10.0), "seq": 0, "time": 1.0})
    )
    watcher.start()
    try:
        seen.wait(lambda: seen.count("odd") == 1)  # found by the poll (created before the watch)
        assert any("not records" in t for _, t in seen.warnings)
        (run / METRICS_FILE).write_bytes(b"")
        seen.wait(lambda: any("shrank" in t for _, t in seen.warnings))
    finally:
        watcher.stop()


def test_a_real_engine_run_started_outside_is_picked_up(runs_root: Path, engine_env: dict[str, str]) -> None:
    seen = Seen()
    watcher = _watcher(runs_root, seen)
    watcher.start()
    try:
        run_dir = runs_root / "cli"
        args = [
            sys.executable,
            "-m",
            "engine",
            "train",
            "--preset",
            "tiny",
            "--run-dir",
            str(run_dir),
            "--device",
            "cpu",
            "--steps",
            "6",
            *sets("train.eval_every=3", "train.eval_batches=2"),
        ]
        done = subprocess.run(args, env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        seen.wait(lambda: seen.store.get("cli") is not None and seen.store.get("cli").state == "finished")
        assert [p.name for p in seen.new_runs] == ["cli"]
        run = seen.store.get("cli")
        assert run.step == 6 and list(seen.store.series("cli", "loss")[0]) == list(range(1, 7))
        assert run.best_val_loss is not None and run.model == "transformer"
        seqs = [r["seq"] for r in seen.records["cli"]]
        assert seqs == list(range(len(seqs)))  # each record once, in order
    finally:
        watcher.stop()


def test_a_run_whose_records_come_through_its_pipe_is_not_read_again_at_every_write(
    runs_root: Path, tmp_path: Path
) -> None:
    """A run the supervisor launched with a metrics pipe: every record arrives through the pipe, and
    the watcher's file events do not read the file again meanwhile; its poll still does, every
    `poll_s` (the backfill for what a full pipe dropped), to the run's last record."""
    from nexus_core.recordtypes import Metric
    from nexus_tui.live.supervisor import Supervisor

    piped = Seen()
    sup = Supervisor(runs_root, on_batch=piped.on_batch, on_exit=lambda *a: None, on_warning=piped.on_warning)
    seen = Seen()
    watcher = RunsWatcher(
        runs_root, seen.on_batch, seen.on_new_run, seen.on_warning, poll_s=0.2, piped=sup.piping
    )
    by_event: list[str] = []
    in_event = threading.local()
    event, read = watcher._event, watcher.read

    def on_event(path: str) -> None:
        in_event.on = True
        try:
            event(path)
        finally:
            in_event.on = False

    def reading(run_dir: Path) -> int:
        if getattr(in_event, "on", False):
            by_event.append(run_dir.name)
        return read(run_dir)

    watcher._event, watcher.read = on_event, reading  # type: ignore[method-assign]
    go = tmp_path / "go"
    script = (
        "import os, time, nexus\n"
        "run = nexus.init(total_steps=300)\n"
        f"while not os.path.exists({str(go)!r} + '.start'):\n"
        "    time.sleep(0.02)\n"
        "for step in range(1, 301):\n"
        "    nexus.log({'loss': 1.0 / step}, step=step, commit=True)\n"
        "    time.sleep(0.002)\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.02)\n"
        "nexus.finish()\n"
    )
    watcher.start()
    try:
        run_dir = sup.launch_command([sys.executable, "-c", script], "piped", cwd=tmp_path)
        seen.wait(lambda: [d.name for d in seen.new_runs] == ["piped"], 60)  # found, by the poll
        Path(f"{go}.start").touch()
        piped.wait(lambda: sum(isinstance(r, Metric) for r in piped.records.get("piped", [])) == 300, 60)
        assert sup.piping("piped")
        assert by_event == [], "file events read the file again while its pipe delivered every record"
        seen.wait(
            lambda: (
                seen.store.get("piped") is not None and len(seen.store.get("piped").series["loss"]) == 300
            ),
            60,
        )  # the poll read it all the same
        go.touch()
        piped.wait(lambda: not sup.piping("piped"), 60)
        seen.wait(lambda: seen.store.get("piped").state == "finished", 60)  # and the last record, after it
    finally:
        Path(f"{go}.start").touch()
        go.touch()
        sup.shutdown(stop_runs=True)
        watcher.stop()
    assert run_dir.name == "piped"


def test_a_run_made_in_the_root_is_found_by_file_events_without_the_poll(runs_root: Path) -> None:
    """A run folder made after the watcher started (a run started from a terminal): its folder's
    creation is heard, so it is found and followed at once, not at the next poll (none here)."""
    seen = Seen()
    watcher = _watcher(runs_root, seen, poll_s=3600)
    watcher.start()
    try:
        (runs_root / "fresh").mkdir()
        w = RecordWriter(runs_root / "fresh" / METRICS_FILE)
        w.write({"type": "hello", "run": "fresh", "total_steps": 100})
        for s in range(1, 11):
            w.write(metric(s, tokens=s * 64))
        seen.wait(lambda: seen.count("fresh") == 11, 30)
        for s in range(11, 21):  # and followed: appends raise events in its folder
            w.write(metric(s, tokens=s * 64))
        seen.wait(lambda: seen.count("fresh") == 21, 30)
        assert [p.name for p in seen.new_runs] == ["fresh"]
    finally:
        watcher.stop()
