"""How a reported run's end gets recorded truthfully: finished, stopped, failed, killed (or crashed).

- An exception that ends the script reaches `sys.excepthook`: the run is `failed`, with the
  exception's one-line message, then the previous hook prints the traceback as before.
- SIGTERM and SIGHUP (a closed terminal): the run is `killed`, the records are flushed, then the previous disposition acts: by
  default the process dies of the signal as it would have; a handler of the script's own is called
  (it may end the loop cleanly: then finish() records `stopped`).
- SIGINT: noted, then the previous handler runs (Python's raises KeyboardInterrupt). An uncaught
  KeyboardInterrupt reaches the excepthook: `killed`. Caught, and the script ends cleanly: `stopped`.
  The dashboard's stop on a script that never reads `should_stop` raises SIGINT too (steering.py):
  that end is `stopped` either way, its reason "stop command".
- A script that ends without finish() is finished by an atexit hook.
- Anything that leaves no end record (SIGKILL, the OOM killer, a power cut) is `crashed`: readers
  decide that from a live state in the status file and a dead pid.
Handlers are installed only from the main thread (Python allows signal handlers nowhere else).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from typing import Any, Protocol


class Run(Protocol):
    """What the hooks use of `nexus.reporter.Run` (which imports this module: declared here so the
    two form no import cycle)."""

    should_stop: bool
    _stop_interrupt: bool

    def _end_interrupted(self) -> None: ...

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None: ...

    def _end_as_failed(self, text: str) -> None: ...

    def _end_as_killed(self, signal_name: str, exit_code: int) -> None: ...


class EndHooks:
    """Installs the hooks for one run; `remove()` puts back what was there."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.pid = os.getpid()
        """A forked child (a DataLoader worker) inherits these hooks: only this process reports."""
        self.signalled: str | None = None
        """Name of a signal the process got (SIGINT, or SIGTERM passed to the script's handler)."""
        self._prev_hook = sys.excepthook
        sys.excepthook = self._excepthook
        self._prev_signals: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                prev = signal.getsignal(sig)
                if prev is signal.SIG_IGN or prev is None:
                    continue  # ignored (nohup...) or set from C: leave it alone
                self._prev_signals[sig] = prev
                signal.signal(sig, self._on_signal)
        atexit.register(self._atexit)

    def _excepthook(self, etype: type[BaseException], value: BaseException, tb: Any) -> None:
        if os.getpid() == self.pid:  # not in a forked child
            with contextlib.suppress(Exception):
                if issubclass(etype, KeyboardInterrupt):
                    self.run._end_interrupted()
                else:
                    self.run._end_as_failed(one_line(value))
        self._prev_hook(etype, value, tb)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        prev = self._prev_signals.get(signum, signal.SIG_DFL)
        if os.getpid() != self.pid:  # a forked child: behave as it would have without us
            if callable(prev):
                prev(signum, frame)
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if callable(prev):
            if not (signum == signal.SIGINT and self.run._stop_interrupt):  # the stop command's own
                self.signalled = name
            self.run.should_stop = True
            prev(signum, frame)  # the script's own handler, or Python's KeyboardInterrupt
            return
        # The default disposition would end the process: say so, flush, then die of it as before.
        with contextlib.suppress(Exception):
            self.run._end_as_killed(name, -signum)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def _atexit(self) -> None:
        if os.getpid() == self.pid:
            with contextlib.suppress(Exception):
                self.run.finish()

    def remove(self) -> None:
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_hook
        if threading.current_thread() is threading.main_thread():
            for sig, prev in self._prev_signals.items():
                with contextlib.suppress(ValueError, TypeError):
                    if signal.getsignal(sig) == self._on_signal:
                        signal.signal(sig, prev)
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)


def one_line(e: BaseException) -> str:
    """`ValueError: bad shape` — the exception's last formatted line, at most 500 characters."""
    text = traceback.format_exception_only(type(e), e)[-1].strip()
    return text if len(text) <= 500 else text[:497] + "..."
