"""Text from a run folder never reaches the terminal raw, and is never parsed as markup.

A planted run folder (written with the real RecordWriter) and a real engine run whose folder name
carries brackets are opened in the real app under Pilot: their names, records and status carry
OSC 0 (retitle), OSC 52 (clipboard), CSI sequences, C1 controls and Textual markup that crashes a
parser. The app must survive every notification, dialog and screen a person reaches with the keys,
and what it renders (the compositor's output, as bytes a terminal would get) must hold no control
sequence but Textual's own colours. `nexus runs` and `nexus compare` are run as subprocesses and
their stdout checked byte by byte.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from support import ROOT
from support.engine import engine_env, run_engine
from support.hostile import BAD_MARKUP, C1, CSI, EVIL, FORBIDDEN, OSC_CLIP, OSC_TITLE, PAYLOADS, SGR
from support.preset import TINY
from support.wait import pilot_wait_until

from nexus_core.protocol import METRICS_FILE, RecordWriter, write_status
from nexus_tui.app import NexusApp
from nexus_tui.screens.compare import CompareScreen
from nexus_tui.screens.confirm import ConfirmScreen
from nexus_tui.screens.generate import GenerateScreen
from nexus_tui.widgets.alert_bar import AlertBar
from nexus_tui.widgets.log_pane import LogPane
from nexus_tui.widgets.run_table import RunTable
from nexus_tui.widgets.samples_pane import SamplesPane

pytestmark = pytest.mark.timeout(240)


def assert_clean(text: str, where: str) -> None:
    bad = FORBIDDEN.search(SGR.sub("", text))
    assert bad is None, (
        f"{where}: control character {bad.group()!r} at {bad.start()}: {text[max(0, bad.start() - 40) : bad.start() + 40]!r}"
    )
    for payload in PAYLOADS:
        assert payload not in text, f"{where}: escape-sequence payload {payload!r} shown"


def rendered(app: NexusApp) -> str:
    """The bytes the terminal would get for the current screen (toasts and dialogs included), as
    App.export_screenshot renders them, but kept as terminal output instead of SVG."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
        safe_box=False,
    )
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.file.getvalue()


# -- the sanitizer -----------------------------------------------------------------------------


# -- a planted run folder in the real app --------------------------------------------------------


def plant_run(root: Path, name: str = EVIL, pid: int = 0) -> Path:
    """A run folder whose name and every string in its records and status are hostile. With `pid` (a
    live process of the test's own) the run is paused, not stopped: live, so the keys that steer a
    run (and their dialogs and failure toasts) are not greyed out on it."""
    final = "paused" if pid else "stopped"
    run_dir = root / name
    run_dir.mkdir(parents=True)
    writer = RecordWriter(run_dir / METRICS_FILE)
    writer.write(
        {
            "type": "hello",
            "run": EVIL,
            "protocol": 1,
            "pid": 0,
            "device": "cpu" + OSC_CLIP,
            "model": BAD_MARKUP + OSC_TITLE,
            "params": 10,
            "total_steps": 10,
            "start_step": 0,
            "config": {
                "name": EVIL,
                "model": {"family": "transformer", "n_layers": 1},
                "data": {"source": BAD_MARKUP + CSI},
                "train": {"sample_prompt": OSC_TITLE + "def "},
            },
        }
    )
    for step in range(1, 4):
        writer.write(
            {
                "type": "metric",
                "step": step,
                "tokens": step * 64,
                "loss": 3.0,
                "ce": 3.0,
                "lr": 1e-3,
                "gnorm": 1.0,
                "tok_s": 100.0,
                "step_s": 0.1,
                "mem": 1,
            }
        )
    writer.write({"type": "eval", "step": 3, "tokens": 192, "val_loss": 2.9, "val_ppl": 18.0, "best": True})
    writer.write(
        {
            "type": "sample",
            "step": 3,
            "prompt": "def " + OSC_TITLE,
            "text": "def " + OSC_TITLE + CSI + C1 + BAD_MARKUP + "\nsecond line",
            "requested": False,
        }
    )
    writer.write(
        {"type": "ckpt", "step": 3, "path": "checkpoints/" + BAD_MARKUP, "best": True, "val_loss": 2.9}
    )
    writer.write({"type": "log", "level": "warning", "text": "warned " + EVIL})
    writer.write(
        {
            "type": "state",
            "state": final,
            "step": 3,
            "reason": f"{final} " + EVIL,
            "exit_code": None if pid else 0,
        }
    )
    writer.close()
    write_status(
        run_dir,
        {
            "state": final,
            "pid": pid,
            "step": 3,
            "total_steps": 10,
            "device": "cpu" + OSC_CLIP,
            "model": BAD_MARKUP,
            "best_val_loss": 2.9,
        },
    )
    return run_dir


@pytest.fixture
def app(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NexusApp:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return NexusApp(runs_root, settings_path=tmp_path / "settings.json")


async def visit_everything(pilot, app: NexusApp, name: str) -> None:
    """Every place a person can see the run's text: table, charts line, log and samples tabs, a toast
    from a command on it, the stop/generate dialogs, the compare screen; the screen is checked each
    time, and the app must survive all of it (a markup error would end run_test with an exception)."""
    table = app.query_one(RunTable)
    await pilot_wait_until(pilot, lambda: name in table.rows, 30, "the planted run in the table")
    await pilot_wait_until(pilot, lambda: app.query_one(SamplesPane).count, 30, "the sample")
    table.focus()
    table.select_run(name)
    await pilot.pause(0.5)
    assert_clean(rendered(app), "main screen")

    writer = RecordWriter(app.root / name / METRICS_FILE)
    writer.write(
        {"type": "alert", "kind": "nan" + CSI, "step": 4, "text": "boom " + EVIL}
    )  # live: bar + toast
    writer.close()
    bar = app.query_one(AlertBar)
    await pilot_wait_until(pilot, lambda: bar.alerts, 30, "the live alert")
    await pilot.press(
        "p"
    )  # a command with no engine listening: it fails, and the failure is a toast naming the run
    await pilot_wait_until(
        pilot, lambda: any("failed" in str(n.message) for n in app._notifications), 30, "the failure toast"
    )
    await pilot.pause(0.3)
    for note in app._notifications:
        assert_clean(str(note.message) + str(note.title), "a notification")
    assert_clean(rendered(app), "main screen with toasts and the alert bar")

    for tab in ("tab-log", "tab-samples"):
        app.query_one("#side").active = tab
        await pilot.pause(0.3)
        assert_clean(rendered(app), tab)

    await pilot.press("s")
    await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the stop question")
    assert_clean(rendered(app), "stop dialog")
    await pilot.press("escape")
    await pilot.press("g")
    await pilot_wait_until(pilot, lambda: isinstance(app.screen, GenerateScreen), 10, "the generate dialog")
    assert_clean(rendered(app), "generate dialog")
    await pilot.press("escape")
    await pilot_wait_until(
        pilot, lambda: not isinstance(app.screen, GenerateScreen), 10, "the dialog to close"
    )
    await pilot.press("m")
    await pilot_wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), 10, "the compare screen")
    await pilot.pause(0.5)
    assert_clean(rendered(app), "compare screen")
    await pilot.press("escape")
    await pilot.pause(0.2)
    assert app.is_running


async def test_a_planted_run_folder_cannot_drive_the_terminal_or_crash_the_app(
    app: NexusApp, runs_root: Path
) -> None:
    # A live process stands in for the run's engine (started before the status is written, so
    # pid_alive takes it for the run's); no control socket answers, so every command fails.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        plant_run(runs_root, pid=stand_in.pid)
        async with app.run_test(size=(160, 48)) as pilot:
            await visit_everything(pilot, app, EVIL)
            log = app.query_one(LogPane).lines_written
            assert any("warned" in line for line in log) and any("boom" in line for line in log)
            for line in log + app.query_one(AlertBar).alerts + app.query_one(SamplesPane).texts:
                assert_clean(line.replace("\n", " "), "a widget's text")
            run = app.store.get(EVIL)
            assert run is not None and run.label == BAD_MARKUP  # the markup shown as text, the sequences gone
            assert app.store.get(EVIL).device == "cpu"  # the hello's OSC 52 went with the cleaning
    finally:
        stand_in.kill()
        stand_in.wait()


# -- the command line ----------------------------------------------------------------------------


def nexus(*args: str, root: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "nexus_tui", "--root", str(root), *args],
        env=engine_env(),
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )


def assert_clean_bytes(data: bytes, where: str, payloads: bool = True) -> None:
    assert b"\x1b" not in data and b"\x07" not in data, f"{where}: {data[:400]!r}"
    text = data.decode("utf-8")  # also proves the output is valid UTF-8 (a C1 byte alone is not)
    assert FORBIDDEN.search(text.replace("\n", "")) is None, f"{where}: {text[:400]!r}"
    for payload in PAYLOADS if payloads else ():
        assert payload not in text, where


def test_nexus_runs_and_compare_print_no_control_bytes(runs_root: Path) -> None:
    plant_run(runs_root)
    plant_run(runs_root, "plain-" + OSC_TITLE)
    listed = nexus("runs", root=runs_root)
    assert listed.returncode == 0, listed.stderr
    assert_clean_bytes(listed.stdout, "nexus runs")
    assert b"[link=" in listed.stdout and b"plain-" in listed.stdout  # shown, just harmless
    compared = nexus("compare", EVIL, "plain-" + OSC_TITLE, root=runs_root)
    assert compared.returncode == 0, compared.stderr
    assert_clean_bytes(compared.stdout, "nexus compare")
    assert b"### Config differences" in compared.stdout
    unknown = nexus("compare", "nope" + OSC_CLIP, root=runs_root)
    assert unknown.returncode == 2
    # The name typed is quoted with repr (its escapes shown as \\x1b, harmless text); the listed runs cleaned.
    assert_clean_bytes(unknown.stderr, "nexus compare's error", payloads=False)
    assert b"PWNED-TITLE" not in unknown.stderr and b"[link=" in unknown.stderr


# -- a real engine run whose folder name has brackets ------------------------------------------


@pytest.mark.slow
async def test_a_real_run_named_with_markup_is_shown_and_steered_safely(
    app: NexusApp, runs_root: Path
) -> None:
    name = '[link="x]y[@click=app.quit]' + OSC_TITLE
    # The engine refuses to name a run so (nexus_core.names); a run folder renamed or copied under
    # that name afterwards is what reaches the dashboard.
    done = run_engine(
        "train",
        "--preset",
        "tiny",
        "--run-dir",
        str(runs_root / "real"),
        "--steps",
        "3",
        *TINY,
        "--set",
        "train.eval_every=3",
        "--set",
        "train.ckpt_every=3",
        timeout=200,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (runs_root / "real").rename(runs_root / name)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(RunTable)
        await pilot_wait_until(pilot, lambda: name in table.rows, 60, "the real run in the table")
        await pilot_wait_until(
            pilot, lambda: app.store.get(name).state in ("finished", "stopped"), 60, "its final state"
        )
        table.select_run(name)
        await pilot.press("p")  # not live: the greyed key's toast names the run (and says r resumes it)
        await pilot_wait_until(
            pilot, lambda: any("resumes it" in str(n.message) for n in app._notifications), 30, "a toast"
        )
        await pilot.pause(0.3)
        assert_clean(rendered(app), "main screen, real run")
        await pilot.press("r")  # the resume dialog names the run and lists its checkpoint
        await pilot.pause(1.0)
        assert_clean(rendered(app), "resume dialog, real run")
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.is_running
    listed = nexus("runs", root=runs_root)
    assert listed.returncode == 0 and b"[link=" in listed.stdout
    assert_clean_bytes(listed.stdout, "nexus runs, real run")
    # The engine's own one-line errors quote the run folder (and list checkpoint names): cleaned too.
    (runs_root / name / "checkpoints" / ("step_000009" + OSC_CLIP)).mkdir()
    refused = run_engine("resume", "--run-dir", str(runs_root / name), "--from", "nope" + OSC_TITLE)
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
    # (the --from typed is quoted with repr: its escapes read as \\x1b, text; the folder's are gone)
    assert_clean_bytes(refused.stderr.encode(), "the engine's error line", payloads=False)
    assert 'in run [link="x]y[@click=app.quit]; available: step_000003' in refused.stderr
