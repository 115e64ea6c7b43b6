"""The one reducer: RunState.apply folds records and the dashboard's own events into a run's standing."""

from __future__ import annotations

import signal

from nexus_core.recordtypes import Eval, Hello, Metric, State, to_record
from nexus_core.state import Exited, Launched, RunState


def test_records_fold_into_state_step_total_and_best_val() -> None:
    run = RunState()
    run.apply(Launched(pid=42))
    assert run.state == "starting" and run.pid == 42
    run.apply(Hello(total_steps=100, model="transformer", device="cpu", pid=43, time=1.0))
    run.apply(Metric(step=10, tokens=640, loss=3.0, ce=2.9, lr=1e-3, time=2.0))
    assert (run.state, run.step, run.total_steps, run.model) == ("running", 10, 100, "transformer")
    run.apply(Eval(step=10, val_loss=2.5))
    run.apply(Eval(step=20, val_loss=2.7))
    run.apply(Eval(step=5, val_loss=2.4), late=True)  # a backfill: may set the best, not the current
    assert run.best_val_loss == 2.4 and run.val_loss == 2.7
    run.apply(State(state="paused", step=12, reason="asked"))
    assert run.state == "paused" and run.step == 12 and run.updated == 2.0


def test_exit_events_decide_what_a_silent_end_means() -> None:
    run = RunState()
    run.apply(Hello(total_steps=10))
    run.apply(Metric(step=10))
    run.apply(Exited(0))
    assert run.state == "finished"
    crashed = RunState()
    crashed.apply(Hello(total_steps=10))
    crashed.apply(Exited(1, "Traceback ...\nValueError: boom"))
    assert crashed.state == "crashed" and "status 1" in crashed.reason and "boom" in crashed.crash_tail
    early = RunState()
    early.apply(Launched())
    early.apply(Exited(-signal.SIGTERM))
    assert early.state == "stopped" and "before training started" in early.reason
    resumed = RunState()
    resumed.apply(State(state="finished", step=10, exit_code=0))
    resumed.apply(Hello(total_steps=20, start_step=10))
    resumed.apply(Metric(step=11))
    assert resumed.state == "running" and resumed.exit_code is None


def test_plain_maps_become_records_or_nothing() -> None:
    assert to_record({"type": "metric", "step": 1, "loss": 2}) == Metric(step=1, loss=2.0)
    assert to_record({"type": "metric", "step": True}) is None
    assert to_record({"type": "newer-kind"}) is None and to_record([1]) is None


def test_a_stopped_run_stays_stopped_whatever_its_exit_code() -> None:
    """A reported script stopped from the dashboard dies of the KeyboardInterrupt it was sent; it said
    `stopped` first, and that stands (it was shown crashed)."""
    run = RunState()
    run.apply(Hello(total_steps=100))
    run.apply(Metric(step=5))
    run.apply(State(state="stopped", step=5, reason="stop command (KeyboardInterrupt at log())", exit_code=0))
    run.apply(Exited(-signal.SIGINT))
    assert run.state == "stopped" and run.reason.startswith("stop command")


def test_tokens_without_a_rate_give_a_derived_tok_s() -> None:
    """A writer that logs tokens but not tok_s (a C or Rust loop) had no Tok/s in the run table."""
    run = RunState()
    run.apply(Hello(total_steps=100, time=0.0))
    run.apply(Metric(step=1, tokens=1000, time=10.0))
    assert run.tok_s is None
    run.apply(Metric(step=2, tokens=3000, time=10.5))
    assert run.tok_s == 4000.0
    run.apply(Metric(step=3, tokens=5000, tok_s=123.0, time=11.0))
    assert run.tok_s == 123.0  # the writer's own figure wins
