"""What a run does with the commands its loop picks up between steps, and the handlers behind them.

A mixin of `Run` (split from reporter.py so each file has one job): pause and resume flip the state,
stop sets `should_stop` (or, for a script that never reads it, raises KeyboardInterrupt at its log(),
as W&B's stop does), checkpoint/eval/generate call the script's registered handlers and file what
they return as ckpt/eval/sample records. A handler that raises becomes an error line in the run's log;
the loop goes on.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus import values as V
from nexus.ending import one_line
from nexus_core import protocol as P


class Steering:
    """Needs from the Run: dir, paused, the stop flags, _handlers, _state, _writer, _set_state,
    _put_log, _describe, _done_step."""

    dir: Path
    paused: bool
    _should_stop: bool
    _loop_reads_stop: bool
    _stop_interrupt: bool
    _parked: bool
    _handlers: dict[str, Callable[..., Any]]
    _state: str
    _writer: Any

    if TYPE_CHECKING:  # defined by Run

        def _set_state(self, state: str, reason: str = "", exit_code: int | None = None) -> None: ...
        def _put_log(self, text: str, level: str = "info") -> None: ...
        def _describe(self) -> None: ...
        def _done_step(self) -> int: ...

    # -- what the script hands over --------------------------------------------------------------

    def on_checkpoint(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """`fn()` saves a checkpoint and returns its path (or None); the `c` key calls it between
        steps. Usable as a decorator."""
        return self._register(P.CHECKPOINT, fn)

    def on_eval(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """`fn()` evaluates and returns the val loss (a number) or a dict of eval values; the `e` key."""
        return self._register(P.EVAL_NOW, fn)

    def on_sample(self, fn: Callable[[str, int, float, int], str]) -> Callable[..., str]:
        """`fn(prompt, tokens, temperature, top_k) -> text`; the `g` key. The text becomes a sample record."""
        return self._register(P.GENERATE, fn)

    def _register(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"the {name} handler must be callable")
        self._handlers[name] = fn
        self._describe()
        return fn

    def _do(self, cmd: dict[str, Any]) -> None:
        name = cmd["cmd"]
        if name == P.PAUSE and not self.paused:
            self.paused = True
            self._set_state(P.PAUSED, "pause command")
        elif name in (P.RESUME, P.UNPAUSE) and self.paused:
            self.paused = False
            self._set_state(P.RUNNING, "resume command")
        elif name == P.STOP:
            self._should_stop = True
            if self.paused:
                self.paused = False
                self._set_state(P.RUNNING, "stop command")
            if self._loop_reads_stop:
                self._put_log("stop command: run.should_stop is set; the loop ends when it next checks it")
            else:
                self._interrupt_for_stop()
        elif name == P.PARK:
            self._call(name, self._checkpoint)  # then end as a stop does, told as parked (`finish`)
            self._parked = self._should_stop = True
            if self.paused:
                self.paused = False
                self._set_state(P.RUNNING, "park command")
            self._put_log(
                "park command: checkpointed; run.should_stop is set, the loop ends when it next checks it"
            )
        elif name == P.CHECKPOINT:
            self._call(name, self._checkpoint)
        elif name == P.EVAL_NOW:
            self._call(name, self._eval)
        elif name == P.GENERATE:
            self._call(name, lambda: self._sample(cmd))

    def _interrupt_for_stop(self) -> None:
        """End a script that never reads `should_stop` the way W&B's stop does: a KeyboardInterrupt in
        the main thread, here at its log(). Raised as SIGINT when Python handles that signal, so a
        SIGINT handler of the script's own decides (it handles the stop itself); otherwise raised
        directly. The end is recorded `stopped` (reporter.py, ending.py)."""
        handler = signal.getsignal(signal.SIGINT)
        main = threading.current_thread() is threading.main_thread()
        if not callable(handler) and not main:  # SIGINT ignored and no main thread to raise in
            self._put_log(
                "stop command: run.should_stop is set, but the script never reads it and ignores "
                "SIGINT: it cannot be ended from here (SIGTERM ends it, recorded killed)",
                "warning",
            )
            return
        self._stop_interrupt = True
        self._put_log(
            "stop command: the script does not read run.should_stop, so it is ended at its log() "
            "with a KeyboardInterrupt (or its own SIGINT handler), as W&B's stop does"
        )
        if callable(handler):
            if main:
                signal.raise_signal(signal.SIGINT)  # the handler runs before this returns
            else:
                _thread.interrupt_main()
        elif main:
            raise KeyboardInterrupt("stop command from the dashboard")

    def _call(self, name: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as e:  # noqa: BLE001 - a failing handler is reported, never kills the run
            self._put_log(f"{name} handler failed: {one_line(e)}", "error")

    def _checkpoint(self) -> None:
        before = self._state
        self._set_state(P.CHECKPOINTING, "checkpoint command")
        try:
            path = self._handlers[P.CHECKPOINT]()
        finally:
            self._set_state(before if before != P.CHECKPOINTING else P.RUNNING, "")
        self._writer.put(
            {
                "type": P.CKPT,
                "step": self._done_step(),
                "path": ckpt_path(path, self.dir),
                "best": False,
                "val_loss": None,
                "time": time.time(),
            }
        )

    def _eval(self) -> None:
        result = self._handlers[P.EVAL_NOW]()
        if result is None:
            return
        if isinstance(result, dict):
            fields = {}
            for key, value in V.flatten(result).items():
                got = V.grab(value)
                if got is not None:
                    if not V.is_eval(V.WELL_KNOWN.get(key, key)):
                        key = f"val/{key}"  # an eval handler's {"loss": x} is the val loss
                    fields[V.WELL_KNOWN.get(key, key)] = got
        else:
            got = V.grab(result)
            if got is None:
                raise TypeError(
                    f"the eval handler returned a {type(result).__name__}, not a number or a dict"
                )
            fields = {"val_loss": got}
        self._writer.put({"type": P.EVAL, "step": self._done_step(), "time": time.time(), **fields})

    def _sample(self, cmd: dict[str, Any]) -> None:
        prompt = str(cmd.get("prompt", ""))
        text = self._handlers[P.GENERATE](
            prompt, int(cmd.get("tokens", 100)), float(cmd.get("temperature", 0.8)), int(cmd.get("top_k", 40))
        )
        self._writer.put(
            {
                "type": P.SAMPLE,
                "step": self._done_step(),
                "prompt": prompt,
                "text": str(text),
                "requested": True,
                "time": time.time(),
            }
        )


def ckpt_path(path: Any, run_dir: Path) -> str:
    """A handler's checkpoint path as the ckpt record stores it, one way for every handler: relative
    to the run folder when inside it, else absolute. A relative path is the handler's, relative to
    the working directory (where the script opens it), never left relative to it in the record."""
    if path is None or str(path) == "":
        return ""
    where = Path(os.path.abspath(os.fspath(path) if isinstance(path, os.PathLike) else str(path)))
    home = Path(os.path.abspath(run_dir))
    for a, b in ((where, home), (where.resolve(), home.resolve())):
        if a.is_relative_to(b):
            return str(a.relative_to(b))
    return str(where)
