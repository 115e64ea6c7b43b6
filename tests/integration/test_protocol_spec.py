"""docs/PROTOCOL.md is enough to write a run: run folders built here by hand from that page alone (raw
msgpack bytes, a JSON status file, a raw unix socket; none of Nexus's writers) are read by `nexus
runs`, the dashboard's store, and the dashboard itself, whose keys respect the hello's `commands`."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
from support.reporter import nexus_runs
from support.runfolder import dead_pid

from nexus_tui.app import NexusApp
from nexus_tui.history.store import MetricStore
from nexus_tui.live.watcher import RunsWatcher
from nexus_tui.widgets.run_table import RunTable


class HandRun:
    """A run folder written the way another language would: msgpack maps appended to a file."""

    def __init__(self, run_dir: Path, pid: int) -> None:
        self.dir = run_dir
        self.pid = pid
        run_dir.mkdir(parents=True)
        self.seq = 0

    def record(self, kind: str, **fields: Any) -> None:
        rec = {"type": kind, "seq": self.seq, "time": time.time(), **fields}  # "type" first
        with open(self.dir / "metrics.msgpack", "ab") as f:
            f.write(msgpack.packb(rec))
        self.seq += 1

    def status(self, **fields: Any) -> None:
        tmp = self.dir / ".status.tmp"
        tmp.write_text(json.dumps({"pid": self.pid, "updated": time.time(), **fields}))
        os.rename(tmp, self.dir / "status")


def _write_finished(root: Path) -> None:
    run = HandRun(root / "rust-lstm", dead_pid())
    run.status(state="starting")
    run.record(
        "hello",
        protocol=1,
        pid=run.pid,
        total_steps=20,
        config={"lr": 0.003, "hidden": 512},
        model="lstm",
        device="cuda:0",
        commands=[],
    )
    run.record("state", state="running", step=0, reason="")
    for step in range(1, 21):
        run.record(
            "metric",
            step=step,
            tokens=step * 1024,
            loss=3.0 - step * 0.1,
            lr=0.003,
            **{"train/acc": step / 20},
        )
        if step % 10 == 0:
            run.record("eval", step=step, val_loss=3.2 - step * 0.1, **{"val/acc": step / 25})
    run.record("state", state="finished", step=20, reason="done", exit_code=0)
    run.status(state="finished", step=20, total_steps=20, model="lstm", device="cuda:0", best_val_loss=1.2)


def _write_failed(root: Path) -> None:
    run = HandRun(root / "go-failed", dead_pid())
    run.record("hello", protocol=1, pid=run.pid, total_steps=100)
    run.record("metric", step=1, loss=5.0)
    run.record("state", state="failed", step=1, reason="panic: index out of range", exit_code=1)
    run.status(state="failed", step=1, total_steps=100)


def _socket_path(run_dir: Path) -> Path:
    """Section 5's rule, computed here rather than taken from Nexus."""
    run_dir = run_dir.resolve()
    path = run_dir / "control.sock"
    if len(os.fsencode(path)) <= 100:
        return path
    digest = hashlib.sha1(os.fsencode(run_dir)).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"nexus-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.sock"


class HandServer:
    """Section 5 by hand: one msgpack map in, one out, per connection; refuses what it does not serve."""

    def __init__(self, run_dir: Path, serves: set[str], on_cmd: Any = None) -> None:
        self.serves = serves
        self.on_cmd = on_cmd
        self.received: list[dict[str, Any]] = []
        self.path = _socket_path(run_dir)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(conn.recv(65536))
                cmd = next(unpacker)
                self.received.append(cmd)
                ok = cmd.get("cmd") in self.serves
                conn.sendall(msgpack.packb({"ok": ok, "error": "" if ok else "not served", "step": 3}))
            if ok and self.on_cmd is not None:
                self.on_cmd(cmd["cmd"])

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.sock.close()
        self.path.unlink()


def _write_live(root: Path) -> HandRun:
    run = HandRun(root / "live-rust", os.getpid())  # this (Python) process stands in for the writer
    run.record("hello", protocol=1, pid=run.pid, total_steps=50, commands=["pause", "resume", "stop"])
    run.record("state", state="running", step=0)
    for step in range(1, 4):
        run.record("metric", step=step, loss=2.0, **{"surprise/level1": 0.5 * step})
    run.status(state="running", step=3, total_steps=50)
    return run


def test_nexus_runs_and_the_store_read_hand_written_runs(runs_root: Path) -> None:
    _write_finished(runs_root)
    _write_failed(runs_root)
    _write_live(runs_root)
    # A writer that is no Python process (here `sleep` stands in for a Rust binary) is alive by its pid
    # and start time; a pid recycled by a process started after the status's `updated` is not the run.
    native = subprocess.Popen(["sleep", "300"])
    try:
        rust = HandRun(runs_root / "native", native.pid)
        rust.record("hello", protocol=1, pid=native.pid, total_steps=9)
        rust.status(state="running", step=2, total_steps=9)
        recycled = HandRun(runs_root / "recycled", native.pid)
        recycled.record("hello", protocol=1, pid=native.pid)
        tmp = recycled.dir / ".status.tmp"
        tmp.write_text(json.dumps({"pid": native.pid, "state": "running", "updated": time.time() - 3600}))
        os.rename(tmp, recycled.dir / "status")
        rows = nexus_runs(runs_root)
    finally:
        native.kill()
        native.wait()
    assert rows["native"][1:3] == ["running", "2/9"]
    assert rows["recycled"][1] == "crashed"
    assert rows["rust-lstm"][1:4] == ["finished", "20/20", "1.2000"]
    assert rows["go-failed"][1:3] == ["failed", "1/100"]
    assert rows["live-rust"][1:3] == ["running", "3/50"]

    store = MetricStore()
    watcher = RunsWatcher(
        runs_root, on_batch=store.ingest_batch, on_new_run=lambda d: None, on_warning=lambda n, t: None
    )
    assert len(watcher.scan_existing()) == 5
    lstm = store.get("rust-lstm")
    assert lstm.state == "finished" and lstm.step == 20 and lstm.total_steps == 20 and lstm.model == "lstm"
    assert list(lstm.series["loss"].value) == [3.0 - s * 0.1 for s in range(1, 21)]
    assert list(lstm.series["val_loss"].step) == [10.0, 20.0]
    assert lstm.best_val_loss == 3.2 - 2.0 and lstm.config == {"lr": 0.003, "hidden": 512}
    assert lstm.metric["train/acc"] == 1.0  # extra numeric keys reach the reader untouched
    failed = store.get("go-failed")
    assert failed.state == "failed" and failed.reason == "panic: index out of range" and failed.exit_code == 1


async def test_the_dashboard_steers_a_hand_written_run_only_with_what_it_serves(
    runs_root: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    run = _write_live(runs_root)

    def act(cmd: str) -> None:  # section 5's results: a state record, and the status says it too
        state = {"pause": "paused", "resume": "running"}.get(cmd)
        if state:
            run.record("state", state=state, step=3)
            run.status(state=state, step=3, total_steps=50)

    server = HandServer(run.dir, {"pause", "resume", "stop"}, act)
    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            table = app.query_one(RunTable)
            deadline = time.monotonic() + 60
            while table.highlighted != "live-rust" and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert app.store.get("live-rust").hello["commands"] == ["pause", "resume", "stop"]
            await pilot.press("c")  # not served: refused in the dashboard, never sent
            await pilot.pause(0.2)
            said = [n.message for n in app._notifications]
            assert any("does not take checkpoint" in m for m in said), said
            await pilot.press("p")
            deadline = time.monotonic() + 30
            while not server.received and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert [c["cmd"] for c in server.received] == ["pause"]
            # Paused, p asks the writer to go on by the spec's one name, `resume` (the dashboard sent
            # `unpause`, and refused this writer for not listing it).
            deadline = time.monotonic() + 30
            while app.store.get("live-rust").state != "paused" and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert app.store.get("live-rust").state == "paused"
            await pilot.press("p")
            deadline = time.monotonic() + 30
            while len(server.received) < 2 and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert [c["cmd"] for c in server.received] == ["pause", "resume"], [
                n.message for n in app._notifications
            ]
    finally:
        server.close()
