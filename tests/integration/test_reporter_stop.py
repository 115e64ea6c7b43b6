"""How an unchanged wandb-style script (tests/support/scripts/wandb_loop.py: init and log only) ends, in
a real subprocess: a stop command ends it at its next log() as W&B's stop does (KeyboardInterrupt),
or reaches the script's own SIGINT handler; a closed terminal (SIGHUP) is `killed`. Each end is
read back from the records, the status file and `nexus runs`."""

from __future__ import annotations

import signal
from pathlib import Path

from support.reporter import SCRIPTS, Script, command, nexus_runs
from support.wait import wait_until

from nexus_core import protocol as P

LOOP = SCRIPTS / "wandb_loop.py"


def _logged(run_dir: Path) -> int:
    path = Path(str(run_dir) + ".logged")
    steps = path.read_text().split() if path.exists() else []
    return int(steps[-1]) if steps else 0


def _start(runs_root: Path, name: str, mode: str) -> Script:
    script = Script(runs_root / name, mode, script=LOOP)
    wait_until(
        lambda: _logged(script.run_dir) >= 5,
        120,
        "the loop's first steps",
        proc=script.proc,
        log=script.log_path,
    )
    return script


def test_stop_ends_an_unchanged_script_at_its_next_log(runs_root: Path) -> None:
    script = _start(runs_root, "plain", "plain")
    try:
        hello = script.wait_for(lambda r: r["type"] == P.HELLO)
        assert hello["stop"] == "interrupt" and hello["commands"] == ["pause", "resume", "stop"]
        at = command(script.run_dir, "stop")["step"]
        script.wait(120)
    finally:
        script.kill()
    assert _logged(script.run_dir) <= at + 1, "the loop trained on after the stop"
    end = script.records(P.STATE)[-1]
    assert end["state"] == P.STOPPED and end["exit_code"] == 0 and "stop command" in end["reason"]
    assert P.read_status(script.run_dir)["state"] == P.STOPPED
    assert max(r["step"] for r in script.records(P.METRIC)) <= at + 1
    assert nexus_runs(runs_root)["plain"][1] == "stopped"


def test_a_scripts_own_sigint_handler_gets_the_stop(runs_root: Path) -> None:
    script = _start(runs_root, "own", "own-sigint")
    try:
        command(script.run_dir, "stop")
        assert script.wait(120) == 0  # its handler ended the loop; the script returned normally
    finally:
        script.kill()
    assert Path(str(script.run_dir) + ".handled-sigint").exists()
    end = script.records(P.STATE)[-1]
    assert end["state"] == P.STOPPED and "handled by the script" in end["reason"]


def test_a_closed_terminal_is_killed_not_crashed(runs_root: Path) -> None:
    script = _start(runs_root, "hup", "plain")
    try:
        script.proc.send_signal(signal.SIGHUP)
        assert script.wait(120) == -signal.SIGHUP  # it still dies of it, as it would have
    finally:
        script.kill()
    end = script.records(P.STATE)[-1]
    assert (end["state"], end["reason"], end["exit_code"]) == (P.KILLED, "SIGHUP", -signal.SIGHUP)
    assert P.read_status(script.run_dir)["state"] == P.KILLED
    assert nexus_runs(runs_root)["hup"][1] == "killed"
