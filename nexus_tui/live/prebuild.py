"""Decode long histories in a child process while the dashboard starts, on the other core.

Opening a run of a million steps with no columnar cache yet decodes ~230 MB of msgpack: ~0.35 s of
CPU alone, but ~0.7 s inside the dashboard, where it shares one interpreter lock with Textual
starting up, folding the batches and drawing. So `nexus` starts this child before it even imports
Textual: it runs the watcher's own `RunsWatcher.read` on each run the parent found without a usable
cache (`cachefile.worth_building`), in the order the dashboard will open them, which writes the
run's `.nexus-cache`; it says on stdout how far it is and when a run is done, one JSON array a line.

The dashboard's watcher, meeting a history with no usable cache, waits for the child's word on that
run (showing its `loading N%` and passing on its warnings) and then maps the cache as any warm open
does. The child is only a head start, never required: if it exits early, falls silent for STALL_S,
or leaves no usable cache (a folder that cannot take one, a file rewritten meanwhile), the watcher
decodes the file itself as it always could. Its lines are parsed, never trusted: anything that is
not a line of ours is ignored.

This module is the parent's side and imports neither numpy nor the watcher (it runs before the
first frame; the watcher imports it). The child's side, which runs the watcher, is
`nexus_tui.live.prebuild_child`: two modules, so neither imports the other.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nexus_core import children
from nexus_core.units import is_real

STALL_S = 10.0
"""A child that says nothing for this long is stopped; the watcher decodes on its own."""
MAX_RUNS = 64
"""At most this many histories are handed to one child (the rest decode as before)."""


class Prebuild:
    """The parent's side: the child process and what it has said so far (read by a thread of its
    own, so nothing the child says is lost while nobody waits)."""

    def __init__(self, proc: children.Popen[bytes], names: list[str]) -> None:
        self.proc = proc
        self.names = frozenset(names)
        """The runs the child was asked to build (the only ones worth waiting for)."""
        self.done: set[str] = set()
        """The runs the child has said it is done with."""
        self.ended = False
        """The child has exited or was stopped: nothing more will come."""
        self._progress: dict[str, float] = {}
        self._warnings: dict[str, list[str]] = {}
        self._heard = time.monotonic()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, name="nexus-prebuild", daemon=True).start()

    @classmethod
    def start(cls, root: Path) -> Prebuild | None:
        """Start a child for the runs under `root` that would decode their history on open; None
        when there are none, or the child cannot be started."""
        from nexus_tui.history.columnar.cachefile import worth_building

        try:
            folders = sorted(d for d in Path(root).iterdir() if d.is_dir())
        except OSError:
            return None
        names = [d.name for d in folders if worth_building(d)][:MAX_RUNS]
        if not names:
            return None
        # Isolated like the engine (runfolder.engine_argv): a `numpy/` or `nexus_tui/` folder in the
        # directory `nexus` was started from must never be imported by the child.
        try:
            home = Path(root).resolve()
            argv = children.nexus_argv("nexus_tui.live.prebuild_child", str(home), *names)
            proc = children.start(  # in its own session: a Ctrl-C in the terminal is the dashboard's
                argv,
                cwd=home,
                env=children.child_env(),
                stdout=children.PIPE,
                stderr=children.DEVNULL,
                new_session=True,
            )
        except (OSError, RuntimeError):
            return None
        return cls(proc, names)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in self.proc.stdout:
                with self._cond:
                    self._heard = time.monotonic()
                    self._file(raw)
                    self._cond.notify_all()
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def _file(self, raw: bytes) -> None:
        """One line from the child, if it is one of ours: `["done", run]`, `["progress", run,
        fraction]` or `["warning", run, text]`. Anything else is ignored."""
        try:
            line = json.loads(raw)
        except ValueError:
            return
        if not (isinstance(line, list) and len(line) in (2, 3) and isinstance(line[1], str)):
            return
        kind, run, what = line[0], line[1], line[2] if len(line) == 3 else None
        if kind == "done" and what is None:
            self.done.add(run)
        elif kind == "progress" and is_real(what):
            self._progress[run] = min(1.0, max(0.0, float(what)))
        elif kind == "warning" and isinstance(what, str):
            self._warnings.setdefault(run, []).append(what)

    def wait(
        self, name: str, on_progress: Callable[[float], object], on_warning: Callable[[str], object]
    ) -> bool:
        """Block until the child is done with `name` (True) or will not be (False: not one of its
        runs, it ended, or it said nothing for STALL_S and was stopped). Meanwhile its progress on
        `name` goes to `on_progress(fraction)`, and its warnings about `name` to `on_warning`."""
        if name not in self.names:
            return False
        shown: float | None = None
        while True:
            with self._cond:
                if name not in self.done and not self.ended and time.monotonic() - self._heard < STALL_S:
                    self._cond.wait(timeout=STALL_S / 4)
                warnings = self._warnings.pop(name, [])
                progress = self._progress.get(name)
                done, ended = name in self.done, self.ended
                stalled = time.monotonic() - self._heard >= STALL_S
            for text in warnings:
                on_warning(text)
            if progress is not None and progress != shown and not done:
                on_progress(shown := progress)
            if done:
                return True
            if ended:
                return False
            if stalled:
                self.close()
                return False

    def close(self) -> None:
        """Stop the child (the dashboard quits, or the child stalled); what it wrote stays valid."""
        with contextlib.suppress(OSError, children.TimeoutExpired):
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=5)
        with self._cond:
            self.ended = True
            self._cond.notify_all()
