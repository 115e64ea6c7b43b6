"""The chart grid in the real app, driven by Pilot with the keys a person presses, on a run written by
the real `nexus` reporter that logged its own keys (`train/acc`, `val/f1`, `custom/x`): they show as
charts grouped by section, `/` filters them by regex, `f` chooses them (saved beside the run, so the
choice survives a restart), and zoom applies to them as to the standard four."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support.wait import pilot_wait_until
from textual.widgets import Input, SelectionList

import nexus
from nexus_tui.app import NexusApp
from nexus_tui.curves import chartgrid
from nexus_tui.widgets.charts_panel import ChartsPanel
from nexus_tui.widgets.run_table import RunTable

STEPS = 200
EXTRAS = ["custom/x", "train/acc", "val/f1"]


def write_run(root: Path) -> Path:
    run = nexus.init(root=root, name="own", total_steps=STEPS)
    for step in range(1, STEPS + 1):
        run.log(
            {"train/loss": 3.0 / step**0.5, "train/acc": step / STEPS, "custom/x": float(step % 7)}, step=step
        )
        if step % 20 == 0:
            run.log({"val/f1": step / (2 * STEPS)}, step=step)
    run.finish(quiet=True)
    return run.dir


def make_app(root: Path, tmp_path: Path) -> NexusApp:
    return NexusApp(root, settings_path=tmp_path / "settings.json")


def shown(panel: ChartsPanel) -> list[str]:
    """The chart keys on the page shown that actually have curves drawn."""
    return [k for k in panel.page if panel.chart(k).spec.curves]


@pytest.fixture
def run_dir(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return write_run(runs_root)


async def test_own_keys_show_grouped_filtered_chosen_and_zoomed(
    runs_root: Path, run_dir: Path, tmp_path: Path
) -> None:
    app = make_app(runs_root, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot, lambda: len(panel.all_keys) > 4 and panel.extent is not None, 30, "the run's keys"
        )
        extras = [k for k in panel.all_keys if k not in chartgrid.STANDARD]
        assert set(EXTRAS) <= set(extras), panel.all_keys
        assert extras == sorted(extras, key=lambda k: (chartgrid.section(k), k)), "grouped by section"
        assert panel.pages[0] == list(chartgrid.STANDARD), "the standard four come first, as before"
        await pilot.press("v")
        assert all(k not in chartgrid.STANDARD for k in panel.page)
        assert set(shown(panel)) == set(panel.page), "every chart on the page is drawn"
        assert "page 2/" in panel.options_text()

        # The filter: only charts whose key matches; a bad regex says why and keeps the dialog open.
        await pilot.press("slash")
        await pilot_wait_until(pilot, lambda: bool(app.screen.query(Input)), 10, "the filter dialog")
        app.screen.query_one(Input).value = "acc|f1("
        await pilot.press("enter")
        assert "bad filter regex" in str(app.screen.query_one("#error").render())
        app.screen.query_one(Input).value = "acc|f1"
        await pilot.press("enter")
        await pilot_wait_until(pilot, lambda: app.screen is app.screen_stack[0], 10, "the dialog closed")
        assert panel.pages == [["train/acc", "val/f1"]], panel.pages
        assert shown(panel) == ["train/acc", "val/f1"]

        # Zoom applies to a run's own charts as to the standard ones.
        await pilot.press("plus")
        assert panel.x_view is not None
        assert panel.chart("train/acc").spec.x_range == panel.x_view == panel.chart("val/f1").spec.x_range
        await pilot.press("0")
        await pilot.press("i")  # the inspect cursor reads the run's own series too
        step = int(panel.inspect_text.split("step ")[1].split(" ")[0].replace(",", ""))
        assert f"train/acc {step / STEPS:.4g}" in panel.inspect_text, panel.inspect_text
        await pilot.press("i")

        # The chooser: untick train/acc; it goes away at once and is saved beside the run.
        await pilot.press("slash")
        await pilot_wait_until(pilot, lambda: bool(app.screen.query(Input)), 10, "the filter dialog")
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")
        await pilot_wait_until(pilot, lambda: app.screen is app.screen_stack[0], 10, "the dialog closed")
        await pilot.press("f")
        await pilot_wait_until(pilot, lambda: bool(app.screen.query(SelectionList)), 10, "the chooser")
        choice = app.screen.query_one(SelectionList)
        prompts = [str(choice.get_option_at_index(i).prompt) for i in range(choice.option_count)]
        assert prompts[panel.all_keys.index("train/acc")] == "train    train/acc", prompts
        choice.focus()
        await pilot.pause()
        for _ in range(panel.all_keys.index("train/acc")):
            await pilot.press("down")
        await pilot.press("space")
        await pilot.press("escape")
        await pilot_wait_until(pilot, lambda: app.screen is app.screen_stack[0], 10, "the chooser closed")
        assert panel.hidden == {"train/acc"}
        assert all("train/acc" not in page for page in panel.pages)
        saved = json.loads((run_dir / chartgrid.VIEW_FILE).read_text())
        assert saved == {"hidden": ["train/acc"]}

    again = make_app(runs_root, tmp_path)
    async with again.run_test(size=(160, 48)) as pilot:
        panel = again.query_one(ChartsPanel)
        await pilot_wait_until(pilot, lambda: len(panel.all_keys) > 4, 30, "the run's keys after a restart")
        assert panel.hidden == {"train/acc"}, "the choice survives a restart"
        assert "val/f1" in [k for page in panel.pages for k in page]
        assert all("train/acc" not in page for page in panel.pages)


async def test_a_narrow_terminal_pages_one_chart_at_a_time(
    runs_root: Path, run_dir: Path, tmp_path: Path
) -> None:
    app = make_app(runs_root, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot, lambda: len(panel.all_keys) > 4 and panel.extent is not None, 30, "the run's keys"
        )
        assert all(len(page) == 1 for page in panel.pages) and len(panel.pages) == len(panel.all_keys)
        seen = []
        for _ in panel.pages:
            seen += panel.page
            assert [c for c in panel.query("MetricChart") if c.display and not c.has_class("-off")] == [
                panel.chart(panel.page[0])
            ]
            await pilot.press("v")
        assert seen == panel.all_keys and panel.page == ["loss"], "v walks every chart and wraps"


def test_a_bad_view_file_is_ignored_with_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for text in ("{not json", '{"hidden": "train/acc"}', "[1, 2]", '{"hidden": [1]}'):
        (tmp_path / chartgrid.VIEW_FILE).write_text(text)
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            assert chartgrid.load_hidden(tmp_path) == set()
        assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    chartgrid.save_hidden(tmp_path, {"b", "a"})
    assert chartgrid.load_hidden(tmp_path) == {"a", "b"}


def test_sections_filter_and_pages() -> None:
    keys = list(chartgrid.STANDARD) + chartgrid.extra_keys(
        [["loss", "val/f1", "acc", "train/acc"], ["train/b"]]
    )
    assert keys[4:] == ["acc", "train/acc", "train/b", "val/f1"], "grouped by section (no `/`: other)"
    assert [chartgrid.section(k) for k in keys[4:]] == ["other", "train", "train", "val"]
    assert chartgrid.pages(keys, 4) == [list(chartgrid.STANDARD), keys[4:]]
    assert chartgrid.pages(["lr", "acc"], 4) == [["lr"], ["acc"]], (
        "the standard ones keep a page of their own"
    )
    assert chartgrid.visible(keys, chartgrid.compile_filter("^TRAIN/"), {"train/b"}) == ["train/acc"]
    with pytest.raises(ValueError, match="bad filter regex"):
        chartgrid.compile_filter("(")
    assert "\x1b" not in chartgrid.title("x/\x1b[31mred")


async def test_marked_runs_overlay_on_their_own_charts(
    runs_root: Path, run_dir: Path, tmp_path: Path
) -> None:
    other = nexus.init(root=runs_root, name="other", total_steps=50)
    for step in range(1, 51):
        other.log({"train/loss": 1.0 / step, "train/acc": 0.5, "other/y": float(step)}, step=step)
    other.finish(quiet=True)
    app = make_app(runs_root, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        panel, table = app.query_one(ChartsPanel), app.query_one(RunTable)
        await pilot_wait_until(
            pilot, lambda: table.row_count == 2 and panel.extent is not None, 30, "both runs"
        )
        table.focus()
        await pilot.press("space")
        table.move_cursor(row=1 - table.cursor_row)
        await pilot.press("space")
        await pilot_wait_until(
            pilot,
            lambda: len(table.selected) == 2 and {"other/y", *EXTRAS} <= set(panel.all_keys),
            30,
            "both marked: the union of the marked runs' own keys",
        )
        await pilot.press("v")
        await pilot_wait_until(pilot, lambda: "train/acc" in panel.page, 10, "the runs' own charts")
        await pilot_wait_until(
            pilot,
            lambda: len({c.color for c in panel.chart("train/acc").spec.curves}) >= 3,
            10,
            "one colour per run (plus the faint raw)",
        )


async def test_a_loop_that_logs_only_loss_draws_it_in_the_first_chart(
    runs_root: Path, tmp_path: Path
) -> None:
    """A reported run with `loss` and no pure CE: the first chart draws its loss instead of staying empty."""
    run = nexus.init(root=runs_root, name="plain", total_steps=30)
    for step in range(1, 31):
        run.log({"loss": 2.0 / step}, step=step)
    run.finish(quiet=True)
    app = make_app(runs_root, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        await pilot_wait_until(
            pilot,
            lambda: (
                panel.chart("loss").spec is not None
                and any(len(c.ys) for c in panel.chart("loss").spec.curves)
            ),
            30,
            "the loss curve",
        )
        ys = next(c.ys for c in panel.chart("loss").spec.curves if len(c.ys))
        assert max(ys) <= 2.0 + 1e-9 and min(ys) > 0
        assert panel.chart("loss").spec.title == "loss, val ◆"


async def test_a_live_loop_that_logs_only_loss_is_running_not_starting(
    runs_root: Path, tmp_path: Path
) -> None:
    """A live reported run whose steps carry `loss` and no pure CE: once its steps arrive the line under
    the chart options stops saying `starting…` (it said so for the whole run, counting up)."""
    run = nexus.init(root=runs_root, name="live", total_steps=1000)
    try:
        for step in range(1, 21):
            run.log({"loss": 2.0 / step}, step=step)
        app = make_app(runs_root, tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            panel = app.query_one(ChartsPanel)
            table = app.query_one(RunTable)
            await pilot_wait_until(
                pilot,
                lambda: "live" in table.rows and str(table.get_cell("live", "step")).startswith("19/"),
                30,
                "step 19 shown",
            )
            assert app.store.get("live").state == "running"
            await pilot_wait_until(
                pilot, lambda: panel.forecast_text.startswith("live"), 30, "the run's line"
            )
            assert "starting" not in panel.forecast_text, panel.forecast_text
            assert panel.forecast_text.startswith("live: loss 0.1053"), panel.forecast_text  # 2/19, not "H –"
    finally:
        run.finish(quiet=True)
