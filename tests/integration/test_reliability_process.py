"""Runs survive process faults, each done for real to a real tiny engine: SIGKILL mid-step then
`resume`, SIGINT, SIGTERM while paused, kills in the middle of checkpoint writes, the dashboard's own
death, running out of memory, and no network listener. See docs/RELIABILITY.md."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import ROOT
from support.engine import Engine, engine_env, file_records, metric_steps, run_engine
from support.preset import TINY, TINY_OVERRIDES
from support.wait import wait_until

from engine import checkpoint as ckpt
from nexus_core import protocol as P
from nexus_core.commands import Checkpoint, Generate, Pause, Ramp, Resume, Stop


def test_sigkill_mid_step_keeps_every_whole_record_and_resume_goes_on(runs_root: Path) -> None:
    run = runs_root / "killed"
    eng = Engine(
        run, "train", "--steps", "200", *TINY, "--set", "train.ckpt_every=3", "--set", "train.eval_every=1000"
    )
    try:
        eng.wait_for(lambda r: r["type"] == "ckpt" and r["step"] >= 6)
        time.sleep(random.uniform(0.0, 0.05))  # somewhere inside a later step
        eng.proc.send_signal(signal.SIGKILL)
        assert eng.finish() == -signal.SIGKILL
    finally:
        eng.kill()
    on_file = file_records(run)
    assert on_file.torn_bytes == 0 and on_file.warnings == [], "records are whole: one write() each"
    steps = metric_steps(run)
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= 6
    latest = ckpt.resolve_checkpoint(run)
    good = int(ckpt.read_meta(latest)["step"])
    assert good % 3 == 0 and good <= steps[-1]

    done = run_engine("resume", "--run-dir", str(run), "--stop-at", str(good + 4), "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    records = file_records(run).records
    hellos = [r for r in records if r["type"] == "hello"]
    assert hellos[-1]["start_step"] == good and hellos[-1]["resumed_from"].endswith(ckpt.step_name(good))
    after = [r["step"] for r in records[records.index(hellos[-1]) :] if r["type"] == "metric"]
    assert after == list(range(good + 1, good + 5)), "continues from the latest good checkpoint"
    assert [r["state"] for r in records if r["type"] == "state"][-1] == "stopped"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_while_training_or_paused_checkpoints_and_exits_zero(
    runs_root: Path, sig: signal.Signals
) -> None:
    """SIGINT (Ctrl-C) while training; SIGTERM (preemption) while paused: a checkpoint of the last
    step, the state `killed` naming the signal (as a reported run's), exit 0. Also: the engine listens
    on no network port, only on its owner-only unix socket."""
    run = runs_root / sig.name
    eng = Engine(
        run,
        "train",
        "--steps",
        "100000",
        *TINY,
        "--set",
        "train.ckpt_every=0",
        "--set",
        "train.eval_every=100000",
    )
    try:
        eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= 2)
        import psutil

        proc = psutil.Process(eng.pid)
        assert proc.net_connections(kind="inet") == [], "nothing listens on a network port"
        unix = [c.laddr for c in proc.net_connections(kind="unix")]
        assert str(P.control_socket_path(run)) in unix, "the listing does see the engine's sockets"
        if sig == signal.SIGTERM:
            P.send_command(run, "pause")
            eng.wait_for(lambda r: r["type"] == "state" and r["state"] == "paused")
        sent = time.monotonic()
        eng.proc.send_signal(sig)
        assert eng.finish(timeout=30) == 0, eng.tail()
        seconds = time.monotonic() - sent
    finally:
        eng.kill()
    final = eng.of("state")[-1]
    assert final["state"] == "killed" and final["reason"] == sig.name and final["exit_code"] == 0
    step = eng.of("metric")[-1]["step"]
    assert eng.of("ckpt")[-1]["step"] == step, "checkpointed the last step taken"
    assert ckpt.read_meta(ckpt.resolve_checkpoint(run))["step"] == step
    assert P.read_status(run)["state"] == "killed"
    print(f"{sig.name}: killed with a checkpoint {seconds:.2f} s after the signal")  # a figure, not a test


def _loads(path: Path, model, optimizer) -> int:
    return int(ckpt.load_checkpoint(path, model, optimizer)["step"])


def test_kill_during_checkpoint_writes_never_corrupts_latest_or_best(runs_root: Path) -> None:
    """Checkpoint (and eval, so `best` moves) every step; SIGKILL the engine the moment a temp
    checkpoint folder appears, a few times; every listed checkpoint and both pointers must load."""
    import torch

    from engine.models import build_model
    from engine.optim import build_optimizer
    from nexus_core.config import load_toml

    torch.set_num_threads(1)
    run = runs_root / "ckpt-kill"
    rng = random.Random(7)
    mid_write = 0
    for round_ in range(3):
        args = [
            "--steps",
            "100000",
            *TINY,
            "--set",
            "train.ckpt_every=1",
            "--set",
            "train.eval_every=1",
            "--set",
            "train.eval_batches=1",
            "--set",
            "train.keep_last=2",
        ]
        eng = Engine(run, "train", *args) if round_ == 0 else Engine(run, "resume", "--threads", "1")
        try:
            eng.wait_for(lambda r: r["type"] == "ckpt")
            root = ckpt.checkpoints_root(run)
            skip = rng.randrange(3)  # not always the first temp folder seen
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if any(p.name.startswith(".tmp-") and p.name.endswith(f"-{eng.pid}") for p in root.iterdir()):
                    if skip == 0:
                        if rng.random() < 0.5:
                            time.sleep(rng.uniform(0, 0.001))
                        break
                    skip -= 1
                    wait_until(
                        lambda root=root, pid=eng.pid: (
                            not any(
                                p.name.startswith(".tmp-") and p.name.endswith(f"-{pid}")
                                for p in root.iterdir()
                            )
                        ),
                        10,
                        "the write to end",
                    )
            eng.proc.send_signal(signal.SIGKILL)
            eng.finish()
        finally:
            eng.kill()
        mid_write += any(p.name.startswith(".tmp-") for p in root.iterdir())

        cfg = load_toml(run / P.CONFIG_FILE)
        model = build_model(cfg.model)
        optimizer = build_optimizer(model, cfg.optim)
        listed = ckpt.list_checkpoints(run)
        assert listed and not any(p.name.startswith(".") for p in listed), "temp folders never count"
        for p in listed:
            _loads(p, model, optimizer)
        latest = ckpt.resolve_checkpoint(run, "latest")
        assert latest == listed[-1].resolve() and _loads(latest, model, optimizer) >= 1
        best = ckpt.resolve_checkpoint(run, "best")
        assert ckpt.read_meta(best)["best"] is True and ckpt.read_meta(best)["finite"] is True
        _loads(best, model, optimizer)
    print(f"killed 3 engines during checkpoint writes; {mid_write} left a temp folder behind")
    assert mid_write >= 1, "the kills did land inside checkpoint writes"
    leftovers = [p.name for p in ckpt.checkpoints_root(run).iterdir() if p.name.startswith(".")]
    done = run_engine(
        "resume",
        "--run-dir",
        str(run),
        "--stop-at",
        str(int(ckpt.read_meta(latest)["step"]) + 1),
        "--threads",
        "1",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not any(p.name in leftovers for p in ckpt.checkpoints_root(run).iterdir()), (
        "a later save sweeps the temp folders of dead writers"
    )


DASHBOARD = textwrap.dedent("""
    import sys, time
    from nexus_tui.live.supervisor import Supervisor
    sup = Supervisor(sys.argv[1], lambda *a: None, lambda *a: None, lambda *a: None)
    sup.launch("tiny", name="lives", steps=100000, overrides=sys.argv[2:])
    print(sup.processes()["lives"], flush=True)
    time.sleep(600)
""")


def _rate(run: Path, since: float, until: float) -> float:
    times = [
        r["time"] for r in file_records(run).records if r["type"] == "metric" and since <= r["time"] < until
    ]
    return len(times) / (until - since)


async def test_runs_outlive_a_killed_dashboard_and_the_next_one_takes_full_control(
    runs_root: Path, tmp_path: Path
) -> None:
    """A real dashboard process (the Supervisor that launched the run) is SIGKILLed with its whole
    process group, as a closed terminal would; the run trains on at full speed; a new app
    (Textual, Pilot) re-attaches it with its full history and can pause, checkpoint, generate, ramp."""
    from nexus_tui.app import NexusApp

    overrides = [*TINY_OVERRIDES, "train.eval_every=100000", "train.ckpt_every=0"]
    dash = subprocess.Popen(
        [sys.executable, "-c", DASHBOARD, str(runs_root), *overrides],
        env=engine_env(),
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    pid = int(dash.stdout.readline())
    run = runs_root / "lives"
    try:
        wait_until(lambda: (run / P.METRICS_FILE).exists() and len(metric_steps(run)) >= 20, 60, "training")
        time.sleep(2.0)
        killed = time.time()
        os.killpg(dash.pid, signal.SIGKILL)  # the dashboard and anything in its group: a closed terminal
        dash.wait()
        before = _rate(run, killed - 2.0, killed)
        time.sleep(2.5)
        after = _rate(run, killed + 0.5, killed + 2.5)
        print(f"steps/s with the dashboard {before:.1f}, after it died {after:.1f}")
        assert P.pid_alive(pid) and after > 0.4 * before, (before, after)
        killed_step = max(metric_steps(run))

        app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
        async with app.run_test(size=(120, 40)) as pilot:

            async def until(check, what: str, timeout: float = 30.0) -> None:
                deadline = time.monotonic() + timeout
                while not check():
                    assert time.monotonic() < deadline, f"timed out waiting for {what}"
                    await pilot.pause(0.1)

            await until(
                lambda: app.store.get("lives") is not None and app.store.get("lives").step > killed_step,
                "the re-attached run's live records",
            )
            xs, _ = app.store.series("lives", "loss")
            assert list(xs[:killed_step]) == list(range(1, killed_step + 1)), "full history"
            sup = app.services.supervisor
            await until(lambda: "lives" in sup.live_runs(), "the supervisor to follow the live process")
            sup.send("lives", Pause())
            await until(lambda: app.store.get("lives").state == "paused", "paused")
            path = sup.send("lives", Checkpoint())["path"]
            assert ckpt.read_meta(path)["step"] == app.store.get("lives").step
            sup.send("lives", Generate(prompt="def ", tokens=8, temperature=0.0))
            await until(lambda: any(s.get("requested") for s in app.store.get("lives").samples), "a sample")
            answer = sup.send("lives", Ramp(target_lr=2e-3, ramp_steps=5))
            assert "LR ramp" in answer["text"]
            sup.send("lives", Resume())
            held = app.store.get("lives").step
            await until(lambda: app.store.get("lives").step >= held + 6, "training after the ramp")
            xs, lrs = app.store.series("lives", "lr")
            assert lrs[-1] == pytest.approx(2e-3), "the ramp reached its target"
            sup.send("lives", Stop())
            await until(lambda: app.store.get("lives").state == "stopped", "stopped")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dash.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        dash.wait()


def test_out_of_memory_is_one_line_with_the_figures_and_the_dashboard_shows_it(runs_root: Path) -> None:
    """A CPU allocation that really fails: an address-space limit and a batch far too big for it."""
    from nexus_tui.history.store import MetricStore
    from nexus_tui.live.supervisor import Supervisor

    wrapper = runs_root.parent / "python-with-2gb"
    wrapper.write_text(f'#!/bin/sh\nulimit -v {2 * 2**20}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    store, exits, warnings = MetricStore(), {}, []
    sup = Supervisor(
        runs_root,
        store.ingest_batch,
        lambda n, c, t: exits.setdefault(n, (c, t)),
        lambda n, t: warnings.append(t),
        python=str(wrapper),
    )
    overrides = [*TINY_OVERRIDES, "train.batch_size=65536", "train.eval_batches=1"]
    try:
        sup.launch("tiny", name="oom", steps=10, overrides=overrides)
        wait_until(lambda: "oom" in exits, 90, "the engine to exit")
    finally:
        sup.shutdown(stop_runs=False)
    code, tail = exits["oom"]
    run = store.get("oom")
    assert code == 1 and run.state == "failed", (code, tail)  # an exception in the loop, said by the run
    assert "Traceback" not in tail, tail
    for part in ("out of memory in run 'oom'", "batch_size 65536", "MiB", "lower train.batch_size"):
        assert part in run.reason, run.reason
    assert run.alerts[-1]["kind"] == "oom"
    errors = [ln for ln in tail.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "out of memory" in errors[0]
    print(run.reason)


def test_nan_skip_policy_moves_past_bad_batches_and_never_saves_a_nan_best(runs_root: Path) -> None:
    """nan_policy=skip (pause and rollback are tested in test_trainer.py): an LR of 1e30 breaks every
    step after the first; none is applied, the first is an alert (the rest are counted, not one alert
    each: see test_trainer.py), the run ends, `best` stays finite."""
    run = runs_root / "nan-skip"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        *TINY,
        "--set",
        "optim.lr=1e30",
        "--set",
        "schedule.name=constant",
        "--set",
        "schedule.warmup_steps=0",
        "--set",
        "train.nan_policy=skip",
        "--set",
        "train.eval_every=1",
        "--set",
        "train.ckpt_every=1",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = file_records(run).records
    nan_steps = [r["step"] for r in records if r["type"] == "alert" and r["kind"] == "nan"]
    taken = metric_steps(run)
    skipped = [s for s in range(1, 7) if s not in taken]
    assert skipped and nan_steps == skipped[:1], (nan_steps, taken)
    assert [r["state"] for r in records if r["type"] == "state"][-1] == "finished"
    for p in ckpt.list_checkpoints(run):
        meta = ckpt.read_meta(p)
        assert not meta["best"] or meta["finite"], p.name
    with contextlib.suppress(ckpt.CheckpointError):
        assert ckpt.read_meta(ckpt.resolve_checkpoint(run, "best"))["finite"] is True
