"""`parked` is decided in one place (nexus_core.state): an engine writes `stopped` with the park
reason; the reducer and the status file's reader both show `parked`, and the process's clean exit
after it does not turn it into `stopped`."""

from __future__ import annotations

import json
from pathlib import Path

from nexus_core.protocol import PARK_REASON, PARKED, STOPPED
from nexus_core.recordtypes import Hello, State
from nexus_core.state import Exited, RunState, decided_state
from nexus_tui.documents.runs_index import summarize_run


def test_a_park_is_parked_and_stays_so_after_the_exit() -> None:
    run = RunState()
    run.apply(
        Hello(run="r", protocol=1, config={}, pid=1, device="cpu", params=1, total_steps=10, start_step=0)
    )
    run.apply(State(state=STOPPED, step=4, reason=PARK_REASON, exit_code=0))
    assert run.state == PARKED and not run.live
    run.apply(Exited(0))
    assert run.state == PARKED
    run.apply(
        Hello(run="r", protocol=1, config={}, pid=2, device="cpu", params=1, total_steps=10, start_step=4)
    )
    assert run.state == "starting", "unparked: it resumes"


def test_a_plain_stop_is_still_stopped() -> None:
    assert decided_state(STOPPED, "stop command") == STOPPED
    assert decided_state("finished", PARK_REASON) == "finished"


def test_the_status_file_reader_says_parked(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "status").write_text(
        json.dumps(
            {
                "state": STOPPED,
                "reason": PARK_REASON,
                "step": 4,
                "pid": 1,
                "total_steps": 10,
                "model": "m",
                "best_val_loss": 1.0,
            }
        )
    )
    assert summarize_run(run).state == PARKED
