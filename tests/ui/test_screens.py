"""Dialogs and the compare screen on their own: validation says what to fix, answers come back."""

from __future__ import annotations

from pathlib import Path

from support.records import falling_run
from textual.app import App
from textual.widgets import DataTable, Input

from nexus_tui.history.store import MetricStore
from nexus_tui.screens.compare import CompareScreen
from nexus_tui.screens.confirm import QuitScreen
from nexus_tui.screens.generate import GenerateScreen
from nexus_tui.screens.launch import LaunchScreen
from nexus_tui.screens.ramp import RampScreen, checkpoint_rows
from nexus_tui.themes import PALETTES


class Host(App[None]):
    """An empty app that pushes one screen and keeps what it was dismissed with."""

    def __init__(self, screen) -> None:
        super().__init__()
        self.to_push = screen
        self.answers: list = []

    def on_mount(self) -> None:
        self.push_screen(self.to_push, self.answers.append)


def linear_ramp(
    target: float, ramp: int, total: int, ckpt: str | None = None
) -> tuple[list[float], list[float]]:
    """A stand-in for the engine's schedule in the preview: a straight ramp, then flat."""
    xs = [float(x) for x in range(0, total, max(1, total // 50))]
    return xs, [target * min(1.0, x / max(ramp, 1)) for x in xs]


async def test_ramp_dialog_buttons_stay_on_screen_at_small_sizes() -> None:
    """At 80x24 and 100x30 Resume and Cancel are inside the screen and the dialog (not clipped by it),
    the table and the chart keep their minimum rows, and clicking Resume answers with the checkpoint."""
    store = MetricStore()
    ckpts = [
        {
            "type": "ckpt",
            "seq": 500 + s,
            "time": 1000.0 + s,
            "step": s,
            "path": f"checkpoints/step_{s:06d}",
            "best": s == 20,
            "val_loss": 2.0,
        }
        for s in range(4, 44, 4)
    ]
    store.ingest("a", None, falling_run("a", 40) + ckpts)
    rows = checkpoint_rows(store, store.get("a"))
    for size in ((80, 24), (100, 30)):
        app = Host(RampScreen("a", False, rows, 40, 1e-3, 200, linear_ramp))
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            screen = app.screen
            dialog = screen.query_one("RampScreen > Vertical")
            for button in ("#go", "#cancel"):
                region = screen.query_one(button).region
                assert region.area > 0 and screen.region.contains_region(region), (size, button, region)
                assert dialog.content_region.contains_region(region), (
                    size,
                    button,
                    region,
                    dialog.content_region,
                )
                widget, _ = screen.get_widget_at(*region.center)
                assert widget is screen.query_one(button), f"{button} is covered at {size}"
            assert screen.query_one("#ckpts").region.height >= 3
            assert screen.query_one("#preview").region.height >= 6
            await pilot.click("#go")
            await pilot.pause()
            assert app.answers == [
                {
                    "target_lr": 1e-3,
                    "ramp_steps": 40,
                    "total_steps": 0,
                    "from_ckpt": "checkpoints/step_000040",
                }
            ], size


async def test_ramp_dialog_by_keys_alone() -> None:
    """A person who never touches the mouse: the resume dialog opens on the checkpoints (down picks an
    older one), Tab goes straight to the target LR, then the ramp, then the total (no stop on the
    scrolling body between them), and Enter resumes; a live run's dialog opens on the target LR."""
    store = MetricStore()
    ckpts = [
        {
            "type": "ckpt",
            "seq": 500 + s,
            "time": 1000.0 + s,
            "step": s,
            "path": f"checkpoints/step_{s:06d}",
            "best": False,
            "val_loss": 2.0,
        }
        for s in (20, 40)
    ]
    store.ingest("a", None, falling_run("a", 40) + ckpts)
    rows = checkpoint_rows(store, store.get("a"))
    app = Host(RampScreen("a", False, rows, 40, 1e-3, 200, linear_ramp))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert app.screen.focused is app.screen.query_one("#ckpts")
        await pilot.press("down", "tab", "ctrl+u", *"2e-3", "tab", "ctrl+u", *"50", "tab", *"400", "enter")
        await pilot.pause()
        assert app.answers == [
            {"target_lr": 2e-3, "ramp_steps": 50, "total_steps": 400, "from_ckpt": "checkpoints/step_000020"}
        ]
    app = Host(RampScreen("a", True, rows, 40, 1e-3, 200, linear_ramp))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert app.screen.focused is app.screen.query_one("#target")


async def test_generate_dialog_shows_error_then_returns_args() -> None:
    app = Host(GenerateScreen("alpha", "To be"))
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#tokens", Input).value = "lots"
        await pilot.click("#go")
        assert "tokens must be a whole number" in str(app.screen.query_one("#error").render())
        assert not app.answers
        await pilot.pause(0.3)  # a button ignores a second click within its 0.2 s press effect
        app.screen.query_one("#tokens", Input).value = "12"
        await pilot.click("#go")
        await pilot.pause()
        assert app.answers == [{"prompt": "To be", "tokens": 12, "temperature": 0.8, "top_k": 40}]


async def test_launch_form_defaults_to_tiny_and_returns_launch_args(tmp_path: Path) -> None:
    screen = LaunchScreen(
        tmp_path, ["gpt-275m", "small", "tiny"], [("cpu", "cpu (2 cores)"), ("cuda:0", "cuda:0 X")]
    )
    app = Host(screen)
    async with app.run_test(size=(100, 40)) as pilot:
        assert screen.query_one("#name", Input).value == "tiny-1"
        screen.query_one("#overrides", Input).value = "optim.lr=1e-3"
        await pilot.click("#go")
        await pilot.pause()
        assert app.answers == [
            {"preset": "tiny", "name": "tiny-1", "device": "cpu", "steps": 0, "overrides": ["optim.lr=1e-3"]}
        ]
    app = Host(LaunchScreen(tmp_path, ["gpt-275m", "tiny"], [("cpu", "cpu (2 cores)")]))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # n, then Enter: the safe default launches
        await pilot.pause()
        assert app.answers == [
            {"preset": "tiny", "name": "tiny-1", "device": "cpu", "steps": 0, "overrides": []}
        ]


async def test_launch_form_names_a_command_run_after_its_script(tmp_path: Path) -> None:
    """Typing a command renames the suggested run as nexus.init would name it (train.py -> train-N,
    the next free); clearing it goes back to the preset's; a name the person typed is kept."""
    (tmp_path / "train-1").mkdir()
    screen = LaunchScreen(tmp_path, ["tiny"], [("cpu", "cpu (2 cores)")])
    app = Host(screen)
    async with app.run_test(size=(100, 40)) as pilot:
        name, command = screen.query_one("#name", Input), screen.query_one("#command", Input)
        assert name.value == "tiny-1"
        command.focus()
        await pilot.press(*"torchrun train.py --lr 3e-4")
        assert name.value == "train-2"
        await pilot.press(*["backspace"] * len("torchrun train.py --lr 3e-4"))
        assert command.value == "" and name.value == "tiny-1"
        name.focus()
        await pilot.press(*["backspace"] * 6, *"mine")
        command.focus()
        await pilot.press(*"python -m pkg.finetune")
        assert name.value == "mine"
        await pilot.press("enter")
        await pilot.pause()
        assert app.answers == [{"command": ["python", "-m", "pkg.finetune"], "name": "mine", "device": "cpu"}]


async def test_quit_dialog_answers() -> None:
    for button, answer in (("#leave", "leave"), ("#stop", "stop"), ("#cancel", None)):
        app = Host(QuitScreen(["a", "b"]))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.click(button)
            await pilot.pause()
            assert app.answers == [answer]


async def test_quit_dialog_text_is_whole_at_80x24() -> None:
    """The question wraps inside the dialog instead of being cut ("stop them (ea")."""
    from textual.widgets import Label

    app = Host(QuitScreen(["demo-baseline-1", "demo-contrast-1"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = ""
        for label in app.screen.query(Label):
            assert label.region.right <= 80
            shown += " ".join(strip.text.strip() for strip in label.render_lines(label.region.reset_offset))
        shown = " ".join(shown.split())
        assert "demo-baseline-1, demo-contrast-1" in shown
        assert "or stop them (each saves a checkpoint first)?" in shown


async def test_compare_screen_tables_and_axis_toggle() -> None:
    store = MetricStore()
    store.ingest("a", None, falling_run("a", 60))
    other = falling_run("b", 30)
    other[0] = {**other[0], "config": {"optim": {"lr": 3e-3}}}
    store.ingest("b", None, other)
    screen = CompareScreen(store, PALETTES["nexus-dark"], [])
    app = Host(screen)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        results = screen.query_one("#results", DataTable)
        assert results.row_count == 2
        assert str(results.get_row("a")[4]) == "60"  # steps column
        diff = screen.query_one("#diff", DataTable)
        assert diff.row_count == 1 and str(diff.get_row_at(0)[0]) == "optim.lr"
        chart = screen.query_one("#compare-chart")
        assert max(chart.spec.curves[0].xs) == 60
        await pilot.press("x")
        assert max(chart.spec.curves[0].xs) == 60 * 512  # by tokens now


async def test_compare_follows_a_live_run_beside_a_finished_one() -> None:
    """No key pressed: the curves and the results row of the live run move on by themselves, and
    the finished run stays as it was."""
    store = MetricStore()
    done = falling_run("done", 80, total=80) + [
        {"type": "state", "seq": 10_000, "state": "finished", "step": 80}
    ]
    store.ingest("done", None, done)
    store.ingest("live", None, falling_run("live", 20, total=200))
    screen = CompareScreen(store, PALETTES["nexus-dark"], ["done", "live"])
    screen.REFRESH_S = 0.1
    app = Host(screen)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        results = screen.query_one("#results", DataTable)
        assert str(results.get_row("live")[4]) == "20" and str(results.get_row("done")[4]) == "80"
        chart = screen.query_one("#compare-chart")
        assert len(chart.spec.curves) == 4, "two runs: an H curve and val diamonds each"
        more = [
            {
                "type": "metric",
                "seq": 1000 + s,
                "time": 2000.0 + s,
                "step": s,
                "tokens": s * 512,
                "loss": 1.0,
                "ce": 1.0,
            }
            for s in range(21, 41)
        ]
        store.ingest("live", None, more)
        await pilot.pause(0.4)
        assert str(results.get_row("live")[4]) == "40" and str(results.get_row("done")[4]) == "80"
        live_x = max(max(c.xs) for c in chart.spec.curves if not c.scatter and max(c.xs) != 80)
        assert live_x == 40, "the live curve grew without pressing r"


async def test_ramp_dialog_defaults_leave_room_after_the_ramp_and_every_field_has_a_label() -> None:
    """A run stopped at step 12 of 40: the default ramp is a quarter of what is left (not every
    remaining step: flat LR, then a one-step drop), and each field says what it is on screen."""
    store = MetricStore()
    ckpts = [
        {
            "type": "ckpt",
            "seq": 500 + s,
            "time": 1000.0 + s,
            "step": s,
            "path": f"checkpoints/step_{s:06d}",
            "best": False,
            "val_loss": 2.0,
        }
        for s in (6, 12)
    ]
    store.ingest("a", None, falling_run("a", 12) + ckpts)
    app = Host(RampScreen("a", False, checkpoint_rows(store, store.get("a")), 12, 1e-3, 40, linear_ramp))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#ramp", Input).value == "7"
        labels = [str(w.render()) for w in app.screen.query(".field > Label")]
        assert labels == ["target LR", "ramp steps", "total (blank = keep)"], labels
    app = Host(GenerateScreen("alpha", "To be"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        labels = [str(w.render()) for w in app.screen.query(".field > Label")]
        assert labels == ["prompt", "tokens", "temperature", "top-k (0 = off)"], labels


async def test_every_form_dialog_puts_cancel_first_and_its_action_on_the_right() -> None:
    """One button order everywhere (the filter dialog had it the other way round)."""
    from nexus_tui.screens.charts import ChartFilterScreen

    for screen in (ChartFilterScreen(""), GenerateScreen("alpha", "To be")):
        app = Host(screen)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            buttons = list(app.screen.query(".buttons Button"))
            assert [b.id for b in buttons] == ["cancel", "go"], (
                type(screen).__name__,
                [b.id for b in buttons],
            )
            assert buttons[0].region.x < buttons[1].region.x
