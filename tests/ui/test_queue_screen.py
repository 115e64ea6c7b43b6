"""The queue from the dashboard, pressed as a person presses it: the new-run form's "when a slot is
free", the runner the dashboard starts working on after it is closed, the queue screen (J) after it
is reopened, and its keys (hold, top, cancel)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.pilot import FORM_OVERRIDES, type_into
from support.wait import pilot_wait_until, wait_until
from textual.widgets import DataTable, Select

from nexus_core.commands import Stop
from nexus_tui.app import NexusApp
from nexus_tui.jobs import ops, queuefile
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.screens.queue import QueueScreen


def jobs(root: Path) -> dict[str, object]:
    return {j.name: j for j in queuefile.read(root).jobs}


async def queue_from_form(pilot, app: NexusApp, name: str, *, command: str = "", steps: str = "") -> None:
    await pilot.press("n")
    assert isinstance(app.screen, LaunchScreen)
    await type_into(pilot, "#name", name)
    if command:
        await type_into(pilot, "#command", command)
    else:
        await type_into(pilot, "#steps", steps)
        await type_into(pilot, "#overrides", FORM_OVERRIDES)
    app.screen.query_one("#when", Select).value = "queue"
    await pilot.pause()
    await pilot.click("#go")
    await pilot_wait_until(pilot, lambda: name in jobs(app.root), 120, f"job {name} in the queue")


def most_at_once(root: Path) -> int:
    """The most jobs that ran at once, from the times the runner wrote (each start after the reaps
    of its tick): no clock of the test's own."""
    spans = [(j.started, j.ended) for j in queuefile.read(root).jobs if j.started is not None]
    return max(sum(1 for s, e in spans if s <= start and (e is None or e > start)) for start, _ in spans)


@pytest.mark.slow
async def test_four_jobs_on_two_slots_go_on_with_the_dashboard_closed(
    app: NexusApp, runs_root: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "GATE"
    hold_until_gate = f"sh -c 'while [ ! -e {gate} ]; do sleep 0.2; done'"
    ops.set_slots(runs_root, 2)
    async with app.run_test(size=(160, 48)) as pilot:
        await queue_from_form(pilot, app, "gate-a", command=hold_until_gate)
        await queue_from_form(pilot, app, "gate-b", command=hold_until_gate)
        await queue_from_form(pilot, app, "tiny-a", steps="6")
        await queue_from_form(pilot, app, "tiny-b", steps="6")
        # The runner the dashboard started takes two jobs (its two slots) and leaves two waiting.
        await pilot_wait_until(
            pilot,
            lambda: all(jobs(runs_root)[n].state == "running" for n in ("gate-a", "gate-b")),
            120,
            "both gate jobs running",
        )
        assert jobs(runs_root)["tiny-a"].state == jobs(runs_root)["tiny-b"].state == "queued"
        await pilot.press("J")
        assert isinstance(app.screen, QueueScreen)
        table = app.screen.query_one(DataTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 4, 10, "four jobs on the queue screen")
        await pilot.press("escape")
    # The dashboard is closed; the gates open; the box works through the rest of the queue alone.
    assert queuefile.runner_alive(runs_root), "the runner outlives the dashboard"
    gate.touch()
    wait_until(
        lambda: all(j.state == "done" for j in jobs(runs_root).values()),
        300,
        "every job done with the dashboard closed",
    )
    assert most_at_once(runs_root) == 2
    assert {jobs(runs_root)[n].outcome for n in ("tiny-a", "tiny-b")} == {"finished"}

    again = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with again.run_test(size=(160, 48)) as pilot:
        await pilot_wait_until(
            pilot,
            lambda: all(
                (r := again.store.get(n)) is not None and r.state == "finished" for n in ("tiny-a", "tiny-b")
            ),
            60,
            "the queued runs in the table",
        )
        await pilot.press("J")
        table = again.screen.query_one(DataTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 4, 10, "the queue as it is")
        states = {str(table.get_row_at(i)[1]): str(table.get_row_at(i)[2]) for i in range(4)}
        assert states == {"gate-a": "done", "gate-b": "done", "tiny-a": "done", "tiny-b": "done"}


async def test_queue_keys_hold_top_cancel(app: NexusApp, runs_root: Path) -> None:
    for name in ("one", "two", "three"):
        ops.add(runs_root, "command", ["true"], name=name, check=False)
    ops.hold(runs_root, ["one", "two", "three"])  # nothing starts while the keys are tried
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("J")
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        table = screen.query_one(DataTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 3, 10, "three jobs")
        table.move_cursor(row=2)  # 'three'
        await pilot.press("t")
        await pilot_wait_until(pilot, lambda: [j.name for j in screen.jobs][0] == "three", 10, "three on top")
        await pilot.press("x")
        await pilot_wait_until(
            pilot, lambda: jobs(runs_root)["three"].state == "cancelled", 10, "three cancelled"
        )
        await pilot_wait_until(
            pilot,
            lambda: [j.name for j in screen.jobs] == ["one", "two", "three"],
            10,
            "the cancelled job below the waiting ones",
        )
        table.move_cursor(row=1)  # 'two'
        await pilot.press("u")
        await pilot_wait_until(
            pilot, lambda: [j.name for j in screen.jobs][:2] == ["two", "one"], 10, "two moved up"
        )
        await pilot_wait_until(
            pilot,
            lambda: (c := screen.current()) is not None and c.name == "two",
            10,
            "the cursor stays on its job",
        )
        await pilot.press("plus")
        await pilot_wait_until(
            pilot, lambda: jobs(runs_root)["two"].priority == 1, 10, "two's priority raised"
        )
        table.move_cursor(row=1)
        first = screen.current()
        assert first is not None and first.name == "one"
        await pilot_wait_until(
            pilot, lambda: app._queue_seen is not None, 30, "the dashboard's first look at the queue"
        )
        await pilot.press("h")  # held -> released: the dashboard starts a runner, which runs it
        await pilot_wait_until(pilot, lambda: jobs(runs_root)["one"].state != "held", 10, "one released")
        said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
        await pilot_wait_until(
            pilot,
            lambda: any("queue drained" in m for m in said()),
            60,
            "the drain told (two is still held: held jobs do not keep the queue busy)",
        )
        assert jobs(runs_root)["one"].state == "done"
        await pilot.press("escape")
        assert not isinstance(app.screen, QueueScreen)


@pytest.mark.slow
async def test_p_parks_a_live_run_and_p_again_resumes_it(app: NexusApp, runs_root: Path) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("n")
        await type_into(pilot, "#name", "parkme")
        await type_into(pilot, "#steps", "100000")
        await type_into(pilot, "#overrides", FORM_OVERRIDES)
        await pilot.click("#go")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("parkme")) is not None and r.step > 3 and r,
            120,
            "the run training",
        )
        await pilot.press("P")
        await pilot_wait_until(
            pilot,
            lambda: run.state == "parked" and not app.services.live_runs(),
            120,
            "the run parked (checkpointed, process ended)",
        )
        parked_at = run.step
        assert (runs_root / "parkme" / "checkpoints" / f"step_{parked_at:06d}").is_dir()
        await pilot.press("P")  # unpark: queued first, resumed by the runner as a slot is free
        await pilot_wait_until(
            pilot,
            lambda: run.state == "running" and run.step > parked_at + 2,
            180,
            "the run resumed from where it was parked",
        )
        assert run.start_step == parked_at
        await pilot.press("s")
        await pilot.press("y")
        await pilot_wait_until(pilot, lambda: run.state == "stopped", 120, "the resumed run stopped")


async def test_p_on_a_script_that_cannot_resume_says_so(app: NexusApp, runs_root: Path) -> None:
    import sys

    from support import ROOT

    script = ROOT / "tests" / "support" / "scripts" / "reported_loop.py"
    async with app.run_test(size=(160, 48)) as pilot:
        app.launch(command=[sys.executable, str(script), "steer"], name="script", device="cpu")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("script")) is not None and r.hello is not None and r.live and r,
            120,
            "the script reporting",
        )
        app.query_one("#runs").move_cursor(row=0)
        await pilot.press("P")
        said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
        await pilot_wait_until(pilot, lambda: any("cannot be parked" in m for m in said()), 10, "the refusal")
        assert run.live, "nothing was sent to it"
        app.services.supervisor.send("script", Stop())
        await pilot_wait_until(pilot, lambda: not run.live, 60, "the script stopped")


async def test_a_run_that_ends_is_told_to_the_users_service(
    app: NexusApp, runs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import json
    import threading

    got: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("NEXUS_NOTIFY", f"json://127.0.0.1:{server.server_address[1]}/told")
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("n")
            await type_into(pilot, "#name", "short")
            await type_into(pilot, "#steps", "3")
            await type_into(pilot, "#overrides", FORM_OVERRIDES)
            await pilot.click("#go")
            await pilot_wait_until(
                pilot,
                lambda: any("short: finished" in m.get("message", "") for m in got),
                180,
                "the run's end told to the local endpoint",
            )
            said = [str(n.message) for n in app._notifications]
            assert any("short: finished" in m for m in said), "and as a toast"
    finally:
        server.shutdown()


async def test_the_sweep_view_ranks_a_sweep_and_compares_it(app: NexusApp, runs_root: Path) -> None:
    import subprocess
    import sys

    from support import ROOT
    from support.engine import engine_env, run_nexus
    from support.preset import TINY

    from nexus_tui.screens.compare import CompareScreen
    from nexus_tui.screens.sweep import SweepScreen

    made = run_nexus(
        "sweep",
        "--root",
        str(runs_root),
        "--name",
        "sw",
        "--steps",
        "3",
        "--grid",
        "optim.lr=1e-4,1e-2",
        *TINY,
        "--set",
        "train.eval_every=3",
        "--set",
        "train.ckpt_every=0",
        "--no-start",
    )
    assert made.returncode == 0, made.stderr
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
        env=engine_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("J")
        queue = app.screen
        assert isinstance(queue, QueueScreen)
        await pilot_wait_until(
            pilot, lambda: queue.query_one(DataTable).row_count == 2, 10, "the sweep's jobs"
        )
        await pilot.press("w")
        assert isinstance(app.screen, SweepScreen)
        table = app.screen.query_one(DataTable)
        await pilot_wait_until(pilot, lambda: table.row_count == 2, 10, "the ranked runs")
        header = [str(c.label) for c in table.columns.values()]
        assert header[:3] == ["#", "run", "optim.lr"]
        best = [float(str(table.get_row_at(i)[3])) for i in range(2)]
        assert best == sorted(best)
        await pilot_wait_until(
            pilot,
            lambda: all(app.store.get(n) is not None for n in app.screen.runs),
            60,
            "the sweep's runs in the store",
        )
        await pilot.press("m")
        assert isinstance(app.screen, CompareScreen)
