"""The dashboard's jobs keys: `J` the queue screen, `P` park/unpark the highlighted run, the new-run
form's "when a slot is free" / "after run X", and the queue runner started with the dashboard (it
lives in its own session: closing the dashboard does not stop the box working through the queue).
The work is `nexus_tui.jobs` (headless); this mixin reads the highlighted run and calls it off the
event loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work

from nexus_core.schema import PARK, PARKED
from nexus_tui.app import messages as msg
from nexus_tui.widgets.run_table import RunTable

if TYPE_CHECKING:
    from textual.app import App

    from nexus_tui.history.store import MetricStore

    _AppBase = App[None]  # the App this mixin is mixed into (see run_actions.py)
else:
    _AppBase = object


QUEUE_WATCH_S = 2.0
"""How often the dashboard re-reads the queue to tell what the runner did (a started job, an ended
one, the queue drained): the runner runs in its own process, and the file is its only word."""


class JobActions(_AppBase):
    """Mixed into NexusApp."""

    root: Path

    if TYPE_CHECKING:  # NexusApp's, declared for the type checker

        @property
        def store(self) -> MetricStore: ...

    _queue_seen: dict[int, str] | None = None
    """Each job's state at the last look (None: not looked yet, so nothing is news)."""

    def watch_queue(self) -> None:
        """Start telling the queue's news as toasts (the runner tells the user's services itself)."""
        self.set_interval(QUEUE_WATCH_S, self._look_at_queue)

    @work(thread=True, exclusive=True, group="queue-watch")
    def _look_at_queue(self) -> None:
        from nexus_tui.jobs import queuefile

        try:
            jobs = queuefile.read(self.root).jobs
        except queuefile.QueueError:
            return  # said once where the queue is used (the screen, the CLI); not every two seconds
        now: dict[int, str] = {j.id: j.state for j in jobs}
        before, self._queue_seen = self._queue_seen, now
        if before is None:
            return
        for job in jobs:
            was = before.get(job.id)
            if was == job.state:
                continue
            if job.state == "running" and was in (None, "queued", "held"):
                self.call_from_thread(
                    self.notify, f"queue: {job.name} started on {job.device or 'its slot'}", timeout=4
                )
            elif job.state in ("done", "failed", "parked") and was in (
                "queued",
                "held",
                "running",
                "parking",
            ):
                self.call_from_thread(
                    self.notify,
                    f"queue: {job.name} {job.outcome or job.state}",
                    severity="error" if job.state == "failed" else "information",
                )
        # Drained: a job ended since the last look (it may have gone from held to done between two
        # looks) and nothing is queued or running now.
        ended = any(
            j.state in ("done", "failed", "parked")
            and before.get(j.id) in ("queued", "held", "running", "parking")
            for j in jobs
        )
        if ended and not any(s in ("queued", "running", "parking") for s in now.values()):
            self.call_from_thread(self.notify, "queue drained: every queued job has ended", title="Queue")

    @work(thread=True, group="queue")
    def start_queue_runner(self) -> None:
        """A runner for this runs folder unless one works already (only when something is queued)."""
        from nexus_tui.jobs import queuefile
        from nexus_tui.jobs.runner import ensure_runner

        try:
            if any(j.state == "queued" for j in queuefile.read(self.root).jobs):
                ensure_runner(self.root)
        except queuefile.QueueError as e:
            self.post_message(msg.WarningRaised(None, str(e)))

    @work(thread=True, group="notify")
    def tell(self, kind: str, text: str, run_name: str = "") -> None:
        """Send a run's end or alert to the user's notification services (Apprise; none configured:
        nothing). A queued run's end is the runner's to tell (it tells it with the dashboard closed
        too), so it is not told twice."""
        from nexus_tui.jobs import notify, queuefile

        if kind == "ended" and run_name:
            try:
                if any(j.name == run_name for j in queuefile.read(self.root).jobs):
                    return
            except queuefile.QueueError:
                pass
        if err := notify.send(f"nexus: {kind}", text):
            self.post_message(msg.WarningRaised(None, err))

    def action_queue(self) -> None:
        from nexus_tui.screens.queue import QueueScreen

        self.push_screen(QueueScreen(self.root))

    def action_park(self) -> None:
        """Park the highlighted live run (checkpoint, exit, its slot free), or unpark a parked one."""
        name = self.query_one(RunTable).highlighted
        run = self.store.get(name) if name else None
        if run is None:
            self.notify("No run selected", severity="warning")
            return
        if run.state == PARKED:
            self._park_or_unpark(name, unpark=True)
            return
        if not run.live:
            self.notify(
                f"run {run.label} is {run.state}: only a live run can be parked",
                severity="warning",
                markup=False,
            )
            return
        offered = run.hello.get("commands") if run.hello is not None else None
        if isinstance(offered, list) and PARK not in offered:
            self.notify(
                f"{run.label} cannot be parked: its script does not resume (register a checkpoint "
                "handler and start with nexus.init(resume=...))",
                severity="warning",
                markup=False,
            )
            return
        self._park_or_unpark(name, unpark=False)

    @work(thread=True, group="queue")
    def _park_or_unpark(self, name: str, unpark: bool) -> None:
        from nexus_tui.jobs import ops, queuefile
        from nexus_tui.jobs.runner import ensure_runner

        try:
            if unpark:
                job = ops.unpark(self.root, name)
                ensure_runner(self.root)
                said = f"unparking {name}: queued as job {job.id}, it resumes when a slot is free"
            else:
                said = ops.park(self.root, name)
        except (ops.JobError, queuefile.QueueError) as e:
            self.post_message(msg.CommandFinished(name, "unpark" if unpark else "park", str(e)))
            return
        self.call_from_thread(self.notify, said, markup=False)

    @work(thread=True, group="queue")
    def queue_launch(self, args: dict[str, Any]) -> None:
        """The new-run form's "when a slot is free" or "after run X": a queued job, not a process."""
        from nexus_tui.jobs import ops, queuefile
        from nexus_tui.jobs.runner import ensure_runner

        when = str(args.get("when", ""))
        after = when.removeprefix("after:") if when.startswith("after:") else ""
        try:
            if args.get("command"):
                job = ops.add(
                    self.root,
                    "command",
                    list(args["command"]),
                    args.get("name", ""),
                    after=after,
                    check=False,
                )
            else:
                job_args = [
                    "--preset",
                    args["preset"],
                    *(["--steps", str(args["steps"])] if args.get("steps") else []),
                    *(a for o in args.get("overrides") or [] for a in ("--set", o)),
                ]
                job = ops.add(
                    self.root,
                    "train",
                    job_args,
                    args.get("name", ""),
                    gpus=args.get("nproc") or 1,
                    after=after,
                    check=False,
                )  # the form had the engine check it already
            ensure_runner(self.root)
        except (ops.JobError, queuefile.QueueError) as e:
            self.post_message(msg.CommandFinished(str(args.get("name", "")), "queue", str(e)))
            return
        wait = f"after {after} ends" if after else "when a slot is free"
        self.call_from_thread(
            self.notify, f"queued job {job.id}: {job.name} starts {wait} (J shows the queue)", markup=False
        )
