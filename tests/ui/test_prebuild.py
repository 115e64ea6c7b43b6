"""A long history with no columnar cache is decoded by a child process while the dashboard starts
(`nexus_tui.live.prebuild_child`), and the real app then opens it from the cache the child wrote; a
child that dies, falls silent or talks nonsense leaves the dashboard to decode the file itself. In
every case the charts hold exactly the file's records."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.runfolder import write_finished
from support.wait import pilot_wait_until, wait_until

from nexus_core.protocol import METRICS_FILE, read_records
from nexus_tui.app import NexusApp
from nexus_tui.history.columnar import cachefile
from nexus_tui.history.columnar.fastdecode import ColumnDecoder
from nexus_tui.live import prebuild as prebuild_module
from nexus_tui.live.prebuild import Prebuild
from nexus_tui.live.watcher import RunsWatcher
from nexus_tui.widgets.log_pane import LogPane
from nexus_tui.widgets.run_table import RunTable

STEPS = 9000
"""~1.3 MB of records: over the size from which a history gets a cache (the child's real threshold)."""


@pytest.fixture
def long_root(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    write_finished(runs_root / "long", STEPS, eval_every=1000)
    assert (runs_root / "long" / METRICS_FILE).stat().st_size >= cachefile.MIN_FILE_BYTES
    return runs_root


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch, long_root: Path) -> list[int]:
    """Bytes of the long run's metrics file that this process (the app) decoded itself: none when
    the child's cache served the open. Only reads of this run count (watcher threads that earlier
    tests left behind go on polling their own folders in this process)."""
    fed: list[int] = []
    ours = (long_root / "long").resolve()
    reading_now = threading.local()
    read, feed = RunsWatcher.read, ColumnDecoder.feed

    def reading(watcher: RunsWatcher, run_dir: Path) -> int:
        reading_now.run = Path(run_dir).resolve()
        try:
            return read(watcher, run_dir)
        finally:
            reading_now.run = None

    def counting(decoder: ColumnDecoder, data: bytes) -> list:
        if getattr(reading_now, "run", None) == ours:
            fed.append(len(data))
        return feed(decoder, data)

    monkeypatch.setattr(RunsWatcher, "read", reading)
    monkeypatch.setattr(ColumnDecoder, "feed", counting)
    return fed


def file_losses(run_dir: Path) -> tuple[list[float], list[float]]:
    """Every metric record's step and loss, by the plain per-record reader."""
    metrics = [r for r in read_records(run_dir / METRICS_FILE).records if r.type == "metric"]
    return [float(r.step) for r in metrics], [r.loss for r in metrics]


async def open_whole(app: NexusApp, name: str = "long") -> tuple[list[float], list[float]]:
    """Open the app until the run shows finished with its whole history; its loss series."""
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(RunTable)

        def whole() -> bool:
            run = app.store.get(name) if app._services is not None else None
            return (
                run is not None
                and run.loading is None
                and table.row_count > 0
                and table.get_cell(name, "state").plain == "finished"
            )

        await pilot_wait_until(pilot, whole, 60, "the whole history")
        series = app.store.get(name).series["loss"]
        await pilot.press("q")  # quitting stops the child, had it anything left to do
        await pilot_wait_until(
            pilot,
            lambda: app.prebuild is None or app.prebuild.proc.poll() is not None,
            30,
            "the child stopped",
        )
        return series.step.view.tolist(), series.value.view.tolist()


async def test_the_child_decodes_a_long_history_and_the_app_opens_it_whole(
    long_root: Path, tmp_path: Path, decoded: list[int]
) -> None:
    pre = Prebuild.start(long_root)  # as `nexus` does before it imports Textual
    assert pre is not None and pre.names == {"long"}
    app = NexusApp(long_root, settings_path=tmp_path / "settings.json", prebuild=pre)
    steps, losses = await open_whole(app)
    assert sum(decoded) == 0  # the app mapped the child's cache: it decoded nothing itself
    assert (steps, losses) == file_losses(long_root / "long")
    assert cachefile.cached_offset(long_root / "long") == (long_root / "long" / METRICS_FILE).stat().st_size
    assert Prebuild.start(long_root) is None  # nothing left worth a child


async def test_the_app_shows_loading_while_it_waits_for_the_child(
    long_root: Path, tmp_path: Path, decoded: list[int]
) -> None:
    """The child starts only once the app shows the run loading, so the app is surely waiting for it."""
    go = tmp_path / "go"
    gated = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "from nexus_tui.live.prebuild_child import main\n"
        f"sys.exit(main([{str(long_root)!r}, 'long']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", gated], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    pre = Prebuild(proc, ["long"])
    app = NexusApp(long_root, settings_path=tmp_path / "settings.json", prebuild=pre)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(RunTable)

        seen: set[str] = set()

        def state() -> str:
            shown = table.get_cell("long", "state").plain if table.row_count else ""
            seen.add(shown)
            return shown

        await pilot_wait_until(pilot, lambda: state().startswith("loading"), 30, "the run shown loading")
        go.touch()
        await pilot_wait_until(pilot, lambda: state() == "finished", 60, "the whole history")
        assert not any(shown.startswith("running") for shown in seen), seen  # finished, never running
        series = app.store.get("long").series["loss"]
        assert (series.step.view.tolist(), series.value.view.tolist()) == file_losses(long_root / "long")
    assert sum(decoded) == 0 and "long" in pre.done


async def test_a_child_that_dies_leaves_the_app_to_decode_the_file(
    long_root: Path, tmp_path: Path, decoded: list[int]
) -> None:
    pre = Prebuild.start(long_root)
    assert pre is not None
    pre.proc.kill()
    app = NexusApp(long_root, settings_path=tmp_path / "settings.json", prebuild=pre)
    steps, losses = await open_whole(app)
    assert "long" not in pre.done
    assert sum(decoded) == (long_root / "long" / METRICS_FILE).stat().st_size
    assert (steps, losses) == file_losses(long_root / "long")
    assert cachefile.cached_offset(long_root / "long") is not None  # built by the app instead


async def test_a_silent_or_babbling_child_is_stopped_and_the_app_decodes(
    long_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoded: list[int]
) -> None:
    """Lines that are not the child's (not JSON, wrong shapes, a `done` for another run, a progress
    that is no number) are ignored; silence past STALL_S stops the child."""
    monkeypatch.setattr(prebuild_module, "STALL_S", 0.5)
    babble = (
        "print('not json'); print('[\"done\"]'); print('[\"done\", 5]'); print('{\"done\": \"long\"}');"
        'print(\'["progress", "long", "half"]\'); print(\'["done", "other"]\');'
        "import sys, time; sys.stdout.flush(); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", babble], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    pre = Prebuild(proc, ["long"])
    app = NexusApp(long_root, settings_path=tmp_path / "settings.json", prebuild=pre)
    steps, losses = await open_whole(app)
    assert (steps, losses) == file_losses(long_root / "long")
    assert "long" not in pre.done and "other" in pre.done
    assert sum(decoded) == (long_root / "long" / METRICS_FILE).stat().st_size
    assert proc.wait(timeout=30) is not None  # stopped, not left sleeping


async def test_garbage_in_a_long_history_is_reported_once_and_every_whole_record_kept(
    long_root: Path, tmp_path: Path, decoded: list[int]
) -> None:
    path = long_root / "long" / METRICS_FILE
    data = path.read_bytes()
    middle = data.index(b"\xa4type\xa6metric", len(data) // 2) - 1  # a record's map header
    path.write_bytes(data[:middle] + b"\xc1garbage\xc1" + data[middle:])
    pre = Prebuild.start(long_root)
    assert pre is not None
    wait_until(
        lambda: "long" in pre.done, 60, "the child done"
    )  # its warning is not lost though nobody waited
    app = NexusApp(long_root, settings_path=tmp_path / "settings.json", prebuild=pre)
    async with app.run_test(size=(160, 48)) as pilot:

        def whole() -> bool:
            run = app.store.get("long") if app._services is not None else None
            return run is not None and run.loading is None and run.state == "finished"

        await pilot_wait_until(pilot, whole, 60, "the whole history")
        log = app.query_one(LogPane)
        await pilot_wait_until(
            pilot,
            lambda: any("skipped 9 bytes" in line for line in log.lines_written),
            30,
            "the garbage warning",
        )
        series = app.store.get("long").series["loss"]
        assert (series.step.view.tolist(), series.value.view.tolist()) == file_losses(long_root / "long")
        assert sum("skipped 9 bytes" in line for line in log.lines_written) == 1
    assert sum(decoded) == 0


def test_the_nexus_command_starts_the_child_before_the_dashboard_and_stops_it_after(
    long_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nexus --root R` (the CLI's own entry point): the app it runs was handed a child already at
    work on the long history, and the child is gone when the command returns."""
    from nexus_tui.__main__ import main

    seen: list[Prebuild | None] = []

    def run_instead_of_a_terminal(app: NexusApp) -> None:
        seen.append(app.prebuild)
        if app.prebuild is not None:
            wait_until(lambda: "long" in app.prebuild.done, 60, "the child done")

    monkeypatch.setattr(NexusApp, "run", run_instead_of_a_terminal)
    assert main(["--root", str(long_root)]) == 0
    pre = seen[0]
    assert pre is not None and pre.names == {"long"} and pre.proc.returncode is not None
    assert cachefile.cached_offset(long_root / "long") == (long_root / "long" / METRICS_FILE).stat().st_size
    assert main(["--root", str(long_root)]) == 0 and seen[1] is None  # cached now: no child


async def test_an_app_that_ends_without_q_stops_its_child_and_threads(
    long_root: Path, tmp_path: Path
) -> None:
    """However the dashboard ends (here a test closing it, as a signal would), its service threads
    stop and a child still at work is stopped: nothing of it keeps running in the background."""
    never = tmp_path / "never"
    quiet = f"import os, time\nwhile not os.path.exists({str(never)!r}):\n    time.sleep(0.05)\n"
    proc = subprocess.Popen([sys.executable, "-c", quiet], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    app = NexusApp(long_root, settings_path=tmp_path / "settings.json", prebuild=Prebuild(proc, ["long"]))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_wait_until(
            pilot,
            lambda: app._services is not None and app.services.watcher._poller is not None,
            30,
            "the services",
        )
        poller = app.services.watcher._poller
        assert poller is not None and poller.is_alive() and proc.poll() is None
    assert proc.wait(timeout=30) is not None
    poller.join(timeout=30)
    assert not poller.is_alive()
