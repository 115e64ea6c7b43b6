"""The `n` form beyond one engine process: one run over two torchrun ranks (gloo on the CPU), and any
command that reports with `nexus`. Real processes, the real form driven by Pilot, real control socket.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import psutil
import pytest
from support.pilot import FORM_OVERRIDES, type_into
from support.reporter import SCRIPT
from support.wait import pilot_wait_until

from nexus_core.protocol import LOG_FILE, read_status
from nexus_tui.live.supervisor import LaunchError, Supervisor
from nexus_tui.screens.confirm import ConfirmScreen
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.telemetry.sampler import rank_processes
from nexus_tui.widgets.alert_bar import AlertBar
from nexus_tui.widgets.run_table import RunTable

LOOP = SCRIPT


def test_command_gets_its_folder_gpu_and_log_without_a_shell(runs_root: Path, tmp_path: Path) -> None:
    exits: list[tuple[str, int | None, str]] = []
    done = threading.Event()
    sup = Supervisor(
        runs_root, lambda *a: None, lambda n, c, t: (exits.append((n, c, t)), done.set()), lambda *a: None
    )
    script = (
        "import os, pathlib; d = pathlib.Path(os.environ['NEXUS_RUN_DIR']); "
        "import sys; (d / 'seen').write_text('|'.join([os.environ['CUDA_VISIBLE_DEVICES'], os.getcwd(), *sys.argv[1:]])); "
        "print('to the log'); raise SystemExit(3)"
    )
    run_dir = sup.launch_command([sys.executable, "-c", script, "$HOME;", "*"], "cmd", "cuda:1", cwd=tmp_path)
    assert done.wait(60), "the command's exit"
    assert (run_dir / "seen").read_text() == f"1|{tmp_path}|$HOME;|*"  # no shell expanded them
    assert exits == [("cmd", 3, exits[0][2])] and "to the log" in exits[0][2]
    with pytest.raises(LaunchError, match="command not found"):
        sup.launch_command(["no-such-program-here"], "cmd2")
    with pytest.raises(LaunchError, match="already exists"):
        (run_dir / "metrics.msgpack").write_bytes(b"x")
        sup.launch_command([sys.executable, "-c", "pass"], "cmd")
    sup.shutdown(stop_runs=False)


@pytest.mark.slow
async def test_two_cpu_ranks_from_the_form(app) -> None:  # noqa: F811
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, LaunchScreen)
        await type_into(pilot, "#name", "ranks")
        await type_into(pilot, "#steps", "100000")
        await type_into(pilot, "#overrides", FORM_OVERRIDES)
        await type_into(pilot, "#nproc", "2")
        await pilot.click("#go")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("ranks")) is not None and r.step > 3 and r,
            180,
            "the two-rank run's metrics (from its folder)",
        )
        table = app.query_one(RunTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 1, 10, "one row for the run")
        await pilot_wait_until(
            pilot, lambda: str(table.get_cell("ranks", "device")) == "cpu×2", 10, "both ranks' devices"
        )
        assert run.hello is not None and run.hello.world_size == 2

        # Telemetry counts both ranks: rank 0 reported its pid; its launcher's children are the ranks.
        ranks = [p.pid for p in rank_processes(psutil.Process(run.pid))]
        assert len(ranks) == 2 and run.pid in ranks
        await pilot_wait_until(
            pilot,
            lambda: set(app.services.telemetry.snapshot().processes.get("ranks", _NONE).pids) == set(ranks),
            20,
            "both ranks in the telemetry",
        )

        # Pause reaches the run (rank 0's socket; every rank holds at the same step), then stop ends every rank.
        await pilot.press("p")
        await pilot_wait_until(pilot, lambda: run.state == "paused", 60, "state paused")
        assert (read_status(app.root / "ranks") or {}).get("state") == "paused"
        assert all(psutil.pid_exists(p) for p in ranks)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#yes")
        await pilot_wait_until(
            pilot, lambda: run.state == "stopped" and not app.services.live_runs(), 120, "the run stopped"
        )
        await pilot_wait_until(pilot, lambda: not any(_running(p) for p in ranks), 30, "every rank gone")
        assert run.exit_code in (None, 0)


@pytest.mark.slow
async def test_command_from_the_form_streams_and_stops(app, runs_root: Path) -> None:  # noqa: F811
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await type_into(pilot, "#name", "loop")
        await type_into(pilot, "#command", f"'{sys.executable}' {LOOP} steer")
        await pilot.click("#go")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("loop")) is not None and r.step > 5 and r,
            90,
            "the script's records",
        )
        table = app.query_one(RunTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 1, 10, "the run in the table")
        assert run.loss is not None

        # A second dashboard's supervisor re-attaches to it as to an engine run.
        other = Supervisor(runs_root, lambda *a: None, lambda *a: None, lambda *a: None)
        assert other.attach(runs_root / "loop", feed_history=False)
        other.shutdown(stop_runs=False)

        await pilot.press("s")
        await pilot.click("#yes")
        await pilot_wait_until(
            pilot,
            lambda: not app.services.live_runs() and run.state in ("stopped", "finished"),
            60,
            "the script stopped",
        )
        assert (runs_root / "loop" / "loop-ended").exists()


@pytest.mark.slow
async def test_command_crash_is_reported(app, runs_root: Path) -> None:  # noqa: F811
    async with app.run_test(size=(120, 40)) as pilot:
        app.launch(name="bad", device="cpu", command=[sys.executable, str(LOOP), "fail"])
        table = app.query_one(RunTable)
        await pilot_wait_until(
            pilot,
            lambda: (
                "bad" in table.rows
                and table.get_cell("bad", "state").plain.startswith("failed")
                and not app.services.live_runs()
            ),
            90,
            "the failed state (the reporter's excepthook)",
        )
        bar = app.query_one(AlertBar)
        await pilot_wait_until(
            pilot,
            lambda: any("bad: crash" in a and "bad batch shape" in a for a in bar.alerts),
            10,
            "the crash alert",
        )
        assert "bad batch shape" in (runs_root / "bad" / LOG_FILE).read_text()


class _NoProcess:
    pids: tuple[int, ...] = ()


_NONE = _NoProcess()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
