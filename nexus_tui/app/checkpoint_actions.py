"""e and g on a run that is not live: an engine run stopped or finished with a checkpoint on disk is
sampled and evaluated from its newest checkpoint, as `nexus generate`/`nexus eval` do headless
(`engine generate|eval --from latest`, through `launch_args.use_checkpoint`, off the event loop).
Mixed into NexusApp beside RunActions, whose keys ask `_checkpoint_run` first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.widgets import TabbedContent

from nexus_core.trust import TRUST_FLAG
from nexus_tui.app import messages as msg
from nexus_tui.widgets.run_table import RunTable

if TYPE_CHECKING:
    from textual.app import App

    from nexus_tui.app.hub import Services
    from nexus_tui.history.store import MetricStore

    _AppBase = App[None]  # the App this mixin is mixed into, for the type checker (see run_actions)
else:
    _AppBase = object


def has_checkpoint(run: Any) -> bool:
    """Whether a checkpoint of the run is still on disk (what resume can load), not merely recorded."""
    from nexus_core.checkpoints import existing_steps

    return run.run_dir is not None and bool(existing_steps(run.run_dir))


def newest_step(run: Any) -> int:
    """The step of the run's newest checkpoint on disk (0 when none)."""
    from nexus_core.checkpoints import existing_steps

    return max(existing_steps(run.run_dir), default=0) if run.run_dir is not None else 0


class CheckpointActions(_AppBase):
    """The newest checkpoint of a run that is not live, for e and g. Mixed into NexusApp."""

    if TYPE_CHECKING:  # NexusApp's, declared for the type checker

        @property
        def store(self) -> MetricStore: ...

        @property
        def services(self) -> Services: ...

        def _color(self, name: str) -> str: ...

        def log_line(
            self, source: str, text: str, level: str = "info", when: float | None = None
        ) -> None: ...

    def _checkpoint_run(self) -> Any:
        """The highlighted run when it is an engine run that is not live and has a checkpoint on
        disk (e and g then use its newest checkpoint), else None."""
        try:
            name = self.query_one(RunTable).highlighted
        except Exception:  # noqa: BLE001 - asked before the table exists (first footer draw)
            return None
        run = self.store.get(name) if name else None
        if run is None or run.live or run.hello is None or run.hello.get("source") == "reporter":
            return None
        return run if has_checkpoint(run) else None

    def _when_trusted(self, name: str, run_dir: Path, command: str, go: Callable[[bool], None]) -> None:
        """`go(False)` at once for a folder of this user's; for a foreign one (nexus_core.trust: another
        owner, or a corpus outside the run folder and the data roots) a confirm dialog first says why
        and lists what `command` reads and writes, and only its yes calls `go(True)` (the command
        then passes --trust-foreign)."""
        from nexus_core.trust import check

        verdict = check(run_dir, command)
        if not verdict:
            go(False)
            return
        from nexus_tui.screens.confirm import ConfirmScreen

        details = [f"Why: {r}" for r in verdict.reasons]
        details += [f"reads {r}" for r in verdict.reads] + [f"writes {w}" for w in verdict.writes]
        verb = command.capitalize()
        self.push_screen(
            ConfirmScreen(f"{verb} {name}? This folder is not yours to trust.", yes=verb, details=details),
            lambda yes: go(True) if yes else None,
        )

    def _generate_from_checkpoint(self, run: Any) -> None:
        self._when_trusted(run.name, run.run_dir, "generate", lambda trust: self._generate_dialog(run, trust))

    def _generate_dialog(self, run: Any, trust: bool) -> None:
        prompt = str((run.config.get("train") or {}).get("sample_prompt", "def "))
        step = newest_step(run)

        def answered(args: dict[str, Any] | None) -> None:
            if args:
                argv = [
                    "--prompt",
                    args["prompt"],
                    "--tokens",
                    str(args["tokens"]),
                    "--temperature",
                    repr(args["temperature"]),
                    "--top-k",
                    str(args["top_k"]),
                    *([TRUST_FLAG] if trust else []),
                ]
                self.notify(f"Sampling from {run.label}'s checkpoint at step {step}…", markup=False)
                self.use_checkpoint(run.name, run.run_dir, "generate", argv, prompt=args["prompt"], step=step)
                self.query_one("#side", TabbedContent).active = "tab-samples"

        from nexus_tui.screens.generate import GenerateScreen

        self.push_screen(GenerateScreen(run.name, prompt, from_step=step), answered)

    @work(thread=True, group="checkpoint-use")
    def use_checkpoint(
        self, name: str, run_dir: Path, verb: str, argv: list[str], prompt: str = "", step: int = 0
    ) -> None:
        """`generate`/`eval` on a stopped run's newest checkpoint, off the event loop (it loads torch)."""
        try:
            said = self.services.supervisor.use_checkpoint(run_dir, verb, argv)
        except Exception as e:  # noqa: BLE001 - one line in the app, never a traceback
            self.post_message(msg.CommandFinished(name, verb, str(e)))
            return
        self.call_from_thread(self._checkpoint_used, name, verb, said, prompt, step)

    def _checkpoint_used(self, name: str, verb: str, said: str, prompt: str, step: int) -> None:
        if verb == "generate":
            from nexus_core.recordtypes import Sample
            from nexus_tui.widgets.samples_pane import SamplesPane

            self.query_one(SamplesPane).add_sample(
                name, self._color(name), Sample(text=said, step=step, prompt=prompt, requested=True)
            )
        else:
            self.notify(f"{name}: {said}", timeout=10, markup=False)
            self.log_line(name, f"eval: {said}")
