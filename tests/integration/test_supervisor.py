"""Supervisor against the REAL engine (`python -m engine train --preset tiny`, shrunk by overrides):
records through a real pipe, commands over the real socket, a SIGKILLed engine reported crashed,
a run started from a terminal attached and followed, lr-preview, and resume appending to the file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import ROOT
from support.preset import TINY_OVERRIDES
from support.reporter import SCRIPTS

from nexus_core.commands import Generate, Pause, Resume, Stop
from nexus_core.protocol import METRICS_FILE, ControlError, read_records, read_status
from nexus_core.state import Exited
from nexus_tui.history.columnar.fastdecode import Piece
from nexus_tui.history.store import MetricStore
from nexus_tui.live.supervisor import LaunchError, Supervisor

OVERRIDES = [
    *(o for o in TINY_OVERRIDES if not o.startswith("train.threads=")),
    "train.eval_every=5",
    "train.eval_batches=2",
    "train.ckpt_every=1000",
]
"""The test preset as the supervisor's overrides, with an eval every 5 steps and no checkpoints until the
end. Without its thread count: the supervisor shares the cores among CPU runs itself, as tested here."""


class Feed:
    """Collects the supervisor's callbacks (from its threads) into a MetricStore, like the app."""

    def __init__(self) -> None:
        self.store = MetricStore()
        self.lock = threading.Lock()
        self.calls: list[tuple[str, int]] = []
        self.exits: dict[str, tuple[int | None, str, float]] = {}
        self.warnings: list[tuple[str, str]] = []

    def on_batch(self, name: str, run_dir: Path, pieces: list[Piece]) -> None:
        """The dashboard's path: decoded pieces folded in bulk; `calls` counts records per call."""
        with self.lock:
            self.calls.append((name, sum(len(p) for p in pieces)))
            self.store.ingest_batch(name, run_dir, pieces)

    def on_exit(self, name: str, code: int | None, tail: str) -> None:
        with self.lock:
            self.exits[name] = (code, tail, time.monotonic())
            self.store.apply_event(name, Exited(code, tail))

    def on_warning(self, name: str, text: str) -> None:
        with self.lock:
            self.warnings.append((name, text))

    def wait(self, what, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if what():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out; exits={self.exits} warnings={self.warnings}")

    def step(self, name: str) -> int:
        run = self.store.get(name)
        return run.step if run else -1


@pytest.fixture
def feed() -> Feed:
    return Feed()


@pytest.fixture
def sup(runs_root: Path, feed: Feed):
    s = Supervisor(runs_root, feed.on_batch, feed.on_exit, feed.on_warning)
    yield s
    for name in s.live_runs():  # never leave engines behind
        pid = s.processes().get(name)
        if pid:
            os.kill(pid, signal.SIGKILL)
    s.shutdown(stop_runs=False)


def test_train_to_the_end_then_preview_and_resume_with_a_ramp(
    sup: Supervisor, feed: Feed, runs_root: Path
) -> None:
    run_dir = sup.launch("tiny", name="a", steps=10, overrides=OVERRIDES)
    assert run_dir == runs_root.resolve() / "a"
    assert sup.live_runs() == ["a"] and sup.processes()["a"] > 0
    with pytest.raises(LaunchError, match="already exists"):
        sup.launch("tiny", name="a", overrides=OVERRIDES)
    feed.wait(lambda: "a" in feed.exits)
    code, _, _ = feed.exits["a"]
    assert code == 0, feed.exits["a"][1]
    run = feed.store.get("a")
    assert run.state == "finished" and run.step == 10 and run.total_steps == 10
    assert list(feed.store.series("a", "loss")[0]) == list(range(1, 11))
    assert len(feed.store.series("a", "val_loss")[0]) == 2
    # Everything the pipe delivered is what the file holds, in fewer calls than records.
    on_file = read_records(run_dir / METRICS_FILE).records
    assert sum(n for _, n in feed.calls) == len(on_file) and len(feed.calls) < len(on_file)
    assert "hello" in (run_dir / "engine.log").read_text()
    assert sup.live_runs() == [] and sup.processes() == {}

    steps, lrs = sup.lr_preview("a", target_lr=1e-3, ramp_steps=4, steps=16)
    assert steps[0] == 10 and steps[-1] == 16 and len(steps) == len(lrs)
    assert min(lrs) > 0
    with pytest.raises(LaunchError, match="lr"):
        sup.lr_preview("a", target_lr=-1.0, ramp_steps=4, steps=16)

    sup.resume("a", lr=1e-3, ramp_steps=4, steps=16)
    feed.wait(
        lambda: (
            feed.exits["a"][0] is not None
            and feed.store.get("a").state == "finished"
            and feed.store.get("a").step == 16
        )
    )
    xs, _ = feed.store.series("a", "loss")
    assert list(xs) == list(range(1, 17))
    assert feed.store.get("a").start_step == 10 and feed.warnings == []


def test_pause_generate_resume_and_stop_on_shutdown(sup: Supervisor, feed: Feed) -> None:
    sup.launch("tiny", name="p", steps=100_000, overrides=OVERRIDES)
    feed.wait(lambda: feed.step("p") >= 3)
    sup.send("p", Pause())
    feed.wait(lambda: feed.store.get("p").state == "paused", timeout=120)
    held = feed.step("p")
    time.sleep(1.5)
    assert feed.step("p") == held  # paused: no steps
    sup.send("p", Generate(prompt="def ", tokens=8, temperature=0.0))
    feed.wait(lambda: any(s.get("requested") for s in feed.store.get("p").samples), timeout=120)
    sup.send("p", Resume())
    feed.wait(lambda: feed.step("p") > held + 2, timeout=120)
    left = sup.shutdown(stop_runs=True, timeout=60)
    assert left == []
    code, _, _ = feed.exits["p"]
    assert code == 0 and feed.store.get("p").state == "stopped"
    with pytest.raises(ControlError, match="not listening"):
        sup.send("p", Pause())


def test_quit_with_stop_waits_for_a_busy_engine_to_read_its_stop(sup: Supervisor, tmp_path: Path) -> None:
    """Leaving with stop: an engine busy for longer than a command's usual 5 s (an eval, a sample and a
    checkpoint on a loaded CPU) still gets the stop command, not SIGTERM (its run would read `killed`)."""
    run_dir = sup.launch_command([sys.executable, str(SCRIPTS / "busy_engine.py")], "busy", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (run_dir / "listening").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (run_dir / "listening").exists()
    assert sup.shutdown(stop_runs=True, timeout=60) == []
    assert (run_dir / "got-stop").exists() and not (run_dir / "got-sigterm").exists()


def test_quit_with_stop_right_after_a_launch_reads_as_stopped(sup: Supervisor, feed: Feed) -> None:
    """Stopping an engine still starting (no control socket yet) SIGTERMs it: the run shows stopped,
    with no crash alert. On a loaded machine the SIGTERM may land before the engine's handler is in
    (it dies of it: -15) or after (it stops cleanly at its first step: 0); both must read as stopped."""
    sup.launch("tiny", name="q", steps=100_000, overrides=OVERRIDES)
    started = time.monotonic()
    left = sup.shutdown(stop_runs=True, timeout=240)
    log = sup.root / "q" / "engine.log"
    assert left == [], (
        f"after {time.monotonic() - started:.1f}s; warnings {feed.warnings}; status "
        f"{read_status(sup.root / 'q')}; log: {log.read_text()[-1500:] if log.exists() else None}"
    )
    code, _, _ = feed.exits["q"]
    assert code in (-signal.SIGTERM, 0), code
    run = feed.store.get("q")
    assert run.state == "stopped", (run.state, run.reason)
    assert not any(a.get("kind") == "crash" for a in run.alerts)


def test_a_killed_engine_is_reported_crashed(sup: Supervisor, feed: Feed) -> None:
    """Seen from the pipe's end (at once, not by a poll); no timing is asserted: a loaded box may be slow."""
    sup.launch("tiny", name="k", steps=100_000, overrides=OVERRIDES)
    feed.wait(lambda: feed.step("k") >= 2)
    pid = sup.processes()["k"]
    os.kill(pid, signal.SIGKILL)
    feed.wait(lambda: "k" in feed.exits, timeout=60)
    code, tail, _ = feed.exits["k"]
    assert code == -signal.SIGKILL
    assert "hello" in tail  # the engine.log tail
    run = feed.store.get("k")
    assert run.state == "crashed" and "signal 9" in run.reason and run.alerts[-1]["kind"] == "crash"
    assert sup.live_runs() == []


def test_bad_input_is_one_clear_line(sup: Supervisor, feed: Feed) -> None:
    with pytest.raises(LaunchError, match="run name"):
        sup.launch("tiny", name="../escape")
    # The engine's own rules refuse this before any folder exists (4 kv heads do not divide 3 heads).
    with pytest.raises(LaunchError, match="n_heads"):
        sup.launch("tiny", name="refused", steps=5, overrides=["model.n_heads=3"])
    assert not (sup.root / "refused").exists()
    # A config the engine accepts but cannot train (an empty corpus): a failed run, the engine's one line why.
    empty = sup.root.parent / "empty.txt"
    empty.write_text("")
    sup.launch("tiny", name="bad", steps=5, overrides=[f"data.source={empty}"])
    feed.wait(lambda: "bad" in feed.exits, timeout=60)
    code, tail, _ = feed.exits["bad"]
    assert code not in (0, None) and "error:" in tail and "Traceback" not in tail
    bad = feed.store.get("bad")
    assert bad.state == "failed" and "binary or empty" in bad.reason, (bad.state, bad.reason)
    assert any(a.kind == "crash" and "binary or empty" in a.text for a in bad.alerts)
    with pytest.raises(ControlError, match="no run named"):
        sup.send("nobody", Pause())


def test_attach_follows_a_run_started_from_a_terminal(
    sup: Supervisor, feed: Feed, runs_root: Path, engine_env: dict[str, str]
) -> None:
    run_dir = runs_root / "outside"
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
        "100000",
        "--threads",
        "1",
    ]
    for o in OVERRIDES:
        args += ["--set", o]
    proc = subprocess.Popen(
        args, env=engine_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            recs = read_records(run_dir / METRICS_FILE).records if (run_dir / METRICS_FILE).exists() else []
            if sum(r["type"] == "metric" for r in recs) >= 2 and (run_dir / "status").exists():
                break
            time.sleep(0.2)
        assert sup.attach(run_dir) is True
        assert feed.step("outside") >= 2 and sup.processes() == {"outside": proc.pid}
        sup.send("outside", Pause())  # commands work for runs this supervisor did not launch
        feed_state = read_records(run_dir / METRICS_FILE).records
        deadline = time.monotonic() + 30
        while not any(r["type"] == "state" and r.get("state") == "paused" for r in feed_state):
            assert time.monotonic() < deadline
            time.sleep(0.1)
            feed_state = read_records(run_dir / METRICS_FILE).records
        proc.kill()
        proc.wait()
        feed.wait(lambda: "outside" in feed.exits, timeout=60)  # its pid is polled about once a second
        code, tail, _ = feed.exits["outside"]
        assert code is None
        assert feed.store.get("outside").state == "crashed"
    finally:
        proc.kill()
        proc.wait()


def _cmdline(pid: int, timeout: float = 30.0) -> list[str]:
    """The engine's command line once the kernel has set it up. Popen returns when the child's
    exec closes its close-on-exec error pipe, which comes before the new argv pages exist: for a
    moment (long on a loaded machine) /proc/PID/cmdline is empty, or still the parent's."""
    deadline = time.monotonic() + timeout
    while True:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "engine" in cmd or time.monotonic() > deadline:
            return cmd
        time.sleep(0.02)


def test_runs_survive_the_dashboard_and_are_reattached(runs_root: Path, feed: Feed) -> None:
    first = Supervisor(runs_root, feed.on_batch, feed.on_exit, feed.on_warning)
    first.launch("tiny", name="s1", steps=100_000, overrides=OVERRIDES)
    first.launch("tiny", name="s2", steps=100_000, overrides=OVERRIDES)
    pids = first.processes()
    cores = os.cpu_count() or 1
    threads = [_cmdline(pids[n])[_cmdline(pids[n]).index("--threads") + 1] for n in ("s1", "s2")]
    assert threads == [str(cores), str(max(1, cores // 2))]  # CPU runs share the cores
    try:
        feed.wait(lambda: feed.step("s1") >= 1 and feed.step("s2") >= 1)
        assert first.shutdown(stop_runs=False) == ["s1", "s2"]  # the dashboard quits, runs keep training
        left_at = {n: feed.step(n) for n in ("s1", "s2")}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            on_file = [
                r for r in read_records(runs_root / "s1" / METRICS_FILE).records if r["type"] == "metric"
            ]
            if on_file[-1]["step"] > left_at["s1"] + 2:
                break
            time.sleep(0.2)
        assert on_file[-1]["step"] > left_at["s1"] + 2 and feed.exits == {}

        second = Feed()
        again = Supervisor(runs_root, second.on_batch, second.on_exit, second.on_warning)
        assert sorted(again.attach_all(feed_history=True)) == ["s1", "s2"]
        assert again.processes() == pids and second.step("s1") > left_at["s1"]
        again.send("s1", Stop())
        again.send("s2", Stop())
        second.wait(lambda: len(second.exits) == 2, timeout=60)
        assert second.exits["s1"][0] == 0 and second.exits["s2"][0] == 0  # from their last state records
        assert again.live_runs() == [] and again.shutdown(stop_runs=True) == []
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_an_explicit_thread_count_is_not_overridden(runs_root: Path, feed: Feed) -> None:
    """The demo asks for one thread per run; the automatic share must not outvote it."""
    sup = Supervisor(runs_root, feed.on_batch, feed.on_exit, feed.on_warning)
    sup.launch("tiny", name="one", steps=100_000, overrides=[*OVERRIDES, "train.threads=1"])
    try:
        pid = sup.processes()["one"]
        cmd = _cmdline(pid)
        assert "--threads" not in cmd and "train.threads=1" in cmd
    finally:
        # Still starting (no control socket yet): stopping it must not wait out the timeout.
        started = time.monotonic()
        assert sup.shutdown(stop_runs=True, timeout=240) == []
        assert time.monotonic() - started < 200, "stopped, not left to run out the shutdown's timeout"
