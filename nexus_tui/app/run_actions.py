"""The run keys of the dashboard: what a person can do to a run, live or stopped.

Live-only keys (p c e g s) are greyed for a run that cannot take them, and pressing one anyway says
what is possible instead (`check_action`, `on_key`). Commands are typed (nexus_core.commands) and
sent off the event loop; a run that reports its own commands (`hello.commands`) is told when it lacks
a handler. A stopped run's `r` opens the same dialog as a live ramp and resumes through the supervisor.
Dialogs, commands and the services' errors are imported when first used, not with the app: a faster
first frame."""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.widgets import TabbedContent

from nexus_core.schema import PAUSED
from nexus_core.trust import TRUST_FLAG
from nexus_tui.app import messages as msg
from nexus_tui.app.checkpoint_actions import has_checkpoint, newest_step
from nexus_tui.themes import palette_for
from nexus_tui.widgets.run_table import RunTable

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.app import App

    from nexus_core.commands import Command
    from nexus_tui.app.hub import Services
    from nexus_tui.history.store import MetricStore
    from nexus_tui.settings import Settings

    # The type checker sees the App this mixin is mixed into (its notify, query_one, push_screen...);
    # at run time it is a plain class and NexusApp supplies the App.
    _AppBase = App[None]
else:
    _AppBase = object

KEY_COMMAND_TIMEOUT_S = 60.0
"""How long a command from a key waits for its run to read it: an engine reads commands between
steps, and a step with an eval, a sample and a checkpoint on a loaded CPU takes seconds (at 5 s a
person's Stop expired unapplied while the engine finished its step-50 eval)."""
RESUME_WAIT_S = 60.0
"""How long a Resume waits for the stopped run's process to be gone before it starts the new one."""
BUSY_NOTICE_S = 2.0
"""A command not read by then is told as waiting, so a busy run does not look deaf."""


class RunActions(_AppBase):
    """The run keys (pause, checkpoint, eval, generate, ramp/resume, stop, new, compare, report, quit):
    each reads the highlighted run and sends a typed command or opens a dialog. Mixed into NexusApp."""

    root: Path
    settings: Settings
    demo_overrides: list[str]
    demo_steps: int
    ema: float

    if TYPE_CHECKING:  # NexusApp's, declared for the type checker

        @property
        def store(self) -> MetricStore: ...

        @property
        def services(self) -> Services: ...

        def log_line(
            self, source: str, text: str, level: str = "info", when: float | None = None
        ) -> None: ...

        def _checkpoint_run(self) -> Any: ...  # CheckpointActions'

        def _generate_from_checkpoint(self, run: Any) -> None: ...

        use_checkpoint: Any  # a Textual worker there (@work)

        def _when_trusted(
            self, name: str, run_dir: Path, command: str, go: Callable[[bool], None]
        ) -> None: ...

    LIVE_ONLY = {"p": "pause", "c": "checkpoint", "e": "eval_now", "g": "generate", "s": "stop"}
    """Keys whose action only a live engine can take: greyed in the footer on other runs."""
    ON_CHECKPOINT = {"e": "eval_now", "g": "generate"}
    """Live-only keys that a stopped engine run's newest checkpoint can serve instead, as
    `nexus eval`/`nexus generate` do headless."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """None (shown greyed, not run) for a live-only action on a run that is not live."""
        if action in self.ON_CHECKPOINT.values() and self._checkpoint_run() is not None:
            return True
        if action in self.LIVE_ONLY.values() and self._not_live():
            return None
        return True

    def _not_live(self) -> str:
        """'' when the highlighted run can take commands, else one line of what can be done instead."""
        try:
            name = self.query_one(RunTable).highlighted
        except Exception:  # noqa: BLE001 - asked before the table exists (first footer draw)
            return ""
        run = self.store.get(name) if name else None
        if run is None or run.live:
            return ""
        if has_checkpoint(run):
            return f"run {run.label} is {run.state}: r resumes it (from a checkpoint, with an LR ramp)"
        return f"run {run.label} is {run.state} and has no checkpoint: nothing to do (n starts a new run)"

    def on_key(self, event: events.Key) -> None:
        """A greyed key pressed anyway: say at once what is possible instead of doing nothing."""
        if event.key in self.ON_CHECKPOINT and self._checkpoint_run() is not None:
            return  # served by the newest checkpoint
        if event.key in self.LIVE_ONLY and len(self.screen_stack) == 1 and (why := self._not_live()):
            event.stop()
            self.notify(why, severity="warning", markup=False)

    def _current(self) -> str | None:
        name = self.query_one(RunTable).highlighted
        if name is None:
            self.notify("No run selected: press n to start one", severity="warning")
        return name

    def _lacks(self, name: str, cmd: str) -> bool:
        """A run that lists the commands it takes (hello `commands`: a reported run) and lacks this
        one is told so here instead of being sent a command it would refuse."""
        run = self.store.get(name)
        hello = run.hello if run is not None else None
        offered = hello.get("commands") if hello is not None else None
        if (
            hello is None
            or not isinstance(offered, list)
            or cmd in offered
            or (cmd == "resume" and "unpause" in offered)
        ):
            return False
        from nexus_core.commands import refusal

        lacking = hello.get("lacking")
        why = str(lacking.get(cmd) or "") if isinstance(lacking, dict) else ""
        self.notify(
            refusal(name, cmd, reported=hello.get("source") == "reporter", why=why),
            severity="warning",
            markup=False,
            timeout=12,
        )
        return True

    @work(thread=True, group="commands")
    def send(self, name: str, command: Command, then: Command | None = None) -> None:
        """Send a command off the event loop (a busy engine may take seconds to answer); `then`
        goes after it once it was taken (a ramp on a paused run, then its unpause)."""
        from nexus_core.control import ControlError

        notice = threading.Timer(
            BUSY_NOTICE_S, lambda: self.post_message(msg.CommandWaiting(name, command.name))
        )
        notice.daemon = True
        notice.start()
        try:
            self.services.supervisor.send(name, command, timeout=KEY_COMMAND_TIMEOUT_S)
        except (ControlError, OSError, ValueError, KeyError) as e:
            self.post_message(msg.CommandFinished(name, command.name, str(e) or type(e).__name__))
            return
        finally:
            notice.cancel()
        self.post_message(msg.CommandFinished(name, command.name))
        if then is not None:
            try:
                self.services.supervisor.send(name, then, timeout=KEY_COMMAND_TIMEOUT_S)
            except (ControlError, OSError, ValueError, KeyError) as e:
                self.post_message(msg.CommandFinished(name, then.name, str(e) or type(e).__name__))
                return
            self.post_message(msg.CommandFinished(name, then.name))

    def action_pause(self) -> None:
        name = self._current()
        run = self.store.get(name) if name else None
        if name and run is not None:
            from nexus_core.commands import Pause, Resume

            command = Resume() if run.state == PAUSED else Pause()
            if not self._lacks(name, command.name):
                self.send(name, command)

    def action_checkpoint(self) -> None:
        if (name := self._current()) and not self._lacks(name, "checkpoint"):
            from nexus_core.commands import Checkpoint

            self.send(name, Checkpoint())

    def action_eval_now(self) -> None:
        if (run := self._checkpoint_run()) is not None:
            self.notify(
                f"Evaluating {run.label}'s newest checkpoint (step {newest_step(run)})…", markup=False
            )
            self._when_trusted(
                run.name,
                run.run_dir,
                "eval",
                lambda trust: self.use_checkpoint(
                    run.name, run.run_dir, "eval", [TRUST_FLAG] if trust else []
                ),
            )
            return
        if (name := self._current()) and not self._lacks(name, "eval"):
            from nexus_core.commands import EvalNow

            self.send(name, EvalNow())

    def action_stop(self) -> None:
        name = self._current()
        if name is None or self._lacks(name, "stop"):
            return

        def answered(yes: bool | None) -> None:
            run = self.store.get(name)
            if yes and run is not None and not run.live:  # it ended while the question was open
                self.notify(f"{run.label} is already {run.state}: nothing to stop", markup=False)
            elif yes:
                from nexus_core.commands import Stop

                self.send(name, Stop())

        # Screens are imported when first opened, not with the app: a faster first frame.
        from nexus_tui.live.run_control import stop_question
        from nexus_tui.screens.confirm import ConfirmScreen

        run = self.store.get(name)
        hello: Any = run.hello if run is not None and run.hello is not None else {}
        self.push_screen(ConfirmScreen(stop_question(name, hello), yes="Stop"), answered)

    def action_generate(self) -> None:
        if (stopped := self._checkpoint_run()) is not None:
            self._generate_from_checkpoint(stopped)
            return
        name = self._current()
        if name is None or self._lacks(name, "generate"):
            return
        run = self.store.get(name)
        prompt = str((run.config.get("train") or {}).get("sample_prompt", "def ")) if run else "def "

        def answered(args: dict[str, Any] | None) -> None:
            if args and run is not None and not run.live:  # it ended while the dialog was open
                self.notify(
                    f"{run.label} is {run.state} now: nothing was sent (g again samples its newest "
                    "checkpoint)",
                    severity="warning",
                    markup=False,
                )
            elif args:
                from nexus_core.commands import Generate

                self.send(name, Generate(**args))
                self.query_one("#side", TabbedContent).active = "tab-samples"

        from nexus_tui.screens.generate import GenerateScreen

        self.push_screen(GenerateScreen(name, prompt), answered)

    def action_ramp(self) -> None:
        name = self._current()
        run = self.store.get(name) if name else None
        if not name or run is None or run.run_dir is None or (run.live and self._lacks(name, "ramp")):
            return
        if not run.live and run.hello is not None and run.hello.get("source") == "reporter":
            self.notify(
                f"{name} was reported by its own script: Nexus cannot resume it; run the script "
                "again with nexus.init(..., resume=True)",
                severity="warning",
            )
            return
        if not run.live and not has_checkpoint(run):
            self.notify(
                f"{run.label} is {run.state} and has no checkpoint on disk: nothing to resume from "
                "(n starts a new run)",
                severity="warning",
                markup=False,
            )
            return
        if run.live:
            self._open_ramp(name, run)
        else:  # a foreign folder asks first (nexus_core.trust)
            self._when_trusted(name, run.run_dir, "resume", lambda trust: self._open_ramp(name, run, trust))

    def _open_ramp(self, name: str, run: Any, trust: bool = False) -> None:
        sup = self.services.supervisor
        opened_live = run.live

        def preview(
            target: float, ramp: int, total: int, ckpt: str | None
        ) -> tuple[list[int], list[float], str]:
            hello = run.hello.to_dict() if run.hello else None
            return sup.noted_lr_preview(run.run_dir, target, ramp, total, from_ckpt=ckpt, hello=hello)

        def now() -> tuple[int, float | None, int]:
            return run.step, run.lr, run.total_steps

        def answered(args: dict[str, Any] | None) -> None:
            if not args:
                return
            # Act on what is true now, not when the dialog opened: the run may have ended meanwhile.
            if opened_live and not run.live:
                self.notify(
                    f"{run.label} {run.state} while the dialog was open: nothing was sent "
                    "(r again resumes it from a checkpoint)",
                    severity="warning",
                    markup=False,
                )
            elif run.live:
                from nexus_core.commands import Ramp, Resume

                self.send(
                    name,
                    Ramp(
                        target_lr=args["target_lr"],
                        ramp_steps=args["ramp_steps"],
                        total_steps=args["total_steps"] or None,
                    ),
                    then=Resume() if args.get("unpause") and run.state == PAUSED else None,
                )
            else:
                self._resume(run.run_dir, args, trust)

        from nexus_tui.screens.ramp import RampScreen, checkpoint_rows

        screen = RampScreen(
            name,
            run.live,
            checkpoint_rows(self.store, run),
            run.step,
            run.lr,
            run.total_steps,
            preview,
            now,
            paused=run.state == PAUSED,
        )
        self.push_screen(screen, answered)

    @work(thread=True, group="launch")
    def _resume(self, run_dir: Path, args: dict[str, Any], trust: bool = False) -> None:
        # A run reads `stopped` from its last state record while its process still exits (final
        # checkpoint, writer flush): Resume pressed then waits for it instead of failing "still running".
        sup = self.services.supervisor
        deadline = time.monotonic() + RESUME_WAIT_S
        while run_dir.name in sup.live_runs() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            self.services.supervisor.resume(
                run_dir,
                args["target_lr"],
                args["ramp_steps"],
                args["total_steps"] or None,
                args["from_ckpt"],
                trust=trust,
            )
        except Exception as e:  # noqa: BLE001 - shown as one line; the dashboard keeps going
            self.post_message(msg.CommandFinished(run_dir.name, "resume", str(e)))

    def action_help(self) -> None:
        """? and F1: every key, and whether it works on the highlighted run now (and why not)."""
        if len(self.screen_stack) > 1:
            return  # over a dialog, its own keys apply
        from nexus_tui.app.key_help import key_help
        from nexus_tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(*key_help(self)))

    def action_new_run(self) -> None:
        devices = self.services.devices()

        def answered(args: dict[str, Any] | None) -> None:
            if args and args.get("when"):
                self.queue_launch(args)  # type: ignore[attr-defined]  # JobActions, mixed in beside this
            elif args:
                self.launch(**args)

        def check(args: dict[str, Any]) -> str:
            if args.get("command"):
                return ""  # a command is its own program: nothing of the engine's to check
            from nexus_tui.live.launch_args import LaunchError

            try:
                self.services.supervisor.check_launch(
                    args["preset"],
                    args["name"],
                    args["device"],
                    args["steps"] or None,
                    args["overrides"],
                    nproc=args.get("nproc") or 1,
                )
            except LaunchError as e:
                return str(e)
            return ""

        from nexus_tui.screens.launch import LaunchScreen, available_presets

        self.push_screen(LaunchScreen(self.root, available_presets(), devices, check), answered)

    @work(thread=True, group="launch")
    def launch(
        self,
        preset: str = "",
        name: str = "",
        device: str = "cpu",
        steps: int = 0,
        overrides: list[str] | None = None,
        nproc: int = 1,
        command: list[str] | None = None,
    ) -> None:
        """Start an engine over `nproc` ranks, or a command using the reporter (spawning takes a
        moment; the UI keeps drawing)."""
        self._start_run(preset, name, device, steps, overrides, nproc, command)

    @work(thread=True, group="launch")
    def _launch_in_order(self, launches: list[tuple[str, str, str, int, list[str]]]) -> None:
        """Several engines one after the other, so the first asked for is the first row (and colour)."""
        for preset, name, device, steps, overrides in launches:
            self._start_run(preset, name, device, steps, overrides)

    def _start_run(
        self,
        preset: str = "",
        name: str = "",
        device: str = "cpu",
        steps: int = 0,
        overrides: list[str] | None = None,
        nproc: int = 1,
        command: list[str] | None = None,
    ) -> None:
        """`launch`'s work, on a worker thread."""
        sup = self.services.supervisor
        try:
            if command:
                run_dir = sup.launch_command(command, name, device)
            else:
                run_dir = sup.launch(preset, name, device, steps or None, overrides, nproc=nproc)
        except Exception as e:  # noqa: BLE001 - a refused launch is one line, never a traceback
            self.post_message(msg.CommandFinished(name, "launch", str(e)))
            return
        # The engine says hello only after importing torch (seconds): show the run as starting now.
        self.post_message(msg.RunLaunched(run_dir.name, run_dir))
        what = shlex.join(command) if command else preset + (f" over {nproc} processes" if nproc > 1 else "")
        self.call_from_thread(self.log_line, name, f"launched {what} on {device}")

    def _launch_demo(self) -> None:
        """Two contrasting runs so a newcomer sees two live loss curves within seconds."""
        from nexus_tui.screens.launch import available_presets, next_free_name

        presets = available_presets()
        devices = [d for d, _ in self.services.devices() if d.startswith("cuda")] or ["cpu", "cpu"]
        second = ("hybrid-tiny", []) if "hybrid-tiny" in presets else ("tiny", ["optim.name=muon"])
        cpu_share = ["train.threads=1"]
        launches = []
        for i, (preset, extra, label) in enumerate((("tiny", [], "baseline"), (*second, "contrast"))):
            device = devices[i % len(devices)]
            overrides = extra + (cpu_share if device == "cpu" else []) + self.demo_overrides
            name = next_free_name(self.root, f"demo-{label}")
            self.query_one(RunTable).marked.add(name)  # both curves on the same charts from the start
            launches.append((preset, name, device, self.demo_steps, overrides))
        from nexus_tui.widgets.charts_panel import ChartsPanel

        self.query_one(ChartsPanel).pending = [
            name for _, name, *_ in launches
        ]  # said until their rows exist
        self.log_line(
            "nexus",
            f"starting the demo: {' and '.join(n for _, n, *_ in launches)} (seconds: "
            "each checks its config, then imports torch)",
        )
        self._launch_in_order(launches)  # baseline first in the table and in the first colour, every time

    def action_compare(self) -> None:
        if not self.store.runs():
            self.notify("No runs to compare yet", severity="warning")
            return
        table = self.query_one(RunTable)
        chosen = sorted(table.marked) or [r.name for r in self.store.runs()]
        from nexus_tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(self.store, palette_for(self.theme), chosen, self.ema))

    def action_report(self) -> None:
        """The markdown report of the marked runs (else the highlighted one), saved in the runs folder."""
        names = self.query_one(RunTable).selected
        if not names:
            self.notify("No run selected: press n to start one", severity="warning")
            return
        runs = [self.store.get(n) for n in names]
        self.write_report(
            [str(r.run_dir) if r is not None and r.run_dir else n for r, n in zip(runs, names, strict=True)]
        )

    @work(thread=True, group="report", exclusive=True)
    def write_report(self, runs: list[str]) -> None:
        """Off the event loop: a long run's metrics file takes a while to read."""
        from nexus_tui.documents.report.document import save_report

        try:
            path = save_report(self.root, runs)
        except Exception as e:  # noqa: BLE001 - a damaged folder must cost a notice, never the dashboard
            self.call_from_thread(
                self.notify, f"Could not write the report: {e}", severity="error", markup=False
            )
            return
        self.call_from_thread(self.notify, f"Report saved to {path}", markup=False)

    async def action_quit(self) -> None:
        live = self.services.live_runs()
        if not live:
            self._leave(stop_runs=False)
            return

        def answered(choice: str | None) -> None:
            if choice is not None:
                self._leave(stop_runs=choice == "stop")

        from nexus_tui.screens.confirm import QuitScreen

        self.push_screen(QuitScreen(live), answered)

    def _leave(self, stop_runs: bool) -> None:
        if stop_runs:
            self.notify("Stopping the runs: each checkpoints, then exits…", timeout=30)
        self._shutdown_then_exit(stop_runs)

    @work(thread=True, group="quit", exclusive=True)
    def _shutdown_then_exit(self, stop_runs: bool) -> None:
        """Stopping waits for each engine's final checkpoint: off the event loop, so the screen
        keeps drawing meanwhile."""
        self.services.shutdown(stop_runs=stop_runs)
        self.call_from_thread(self.exit)
