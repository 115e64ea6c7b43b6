"""Start, follow, steer and stop engine processes. No screen: the app turns the callbacks into messages.

Each launched run is `python -m engine train|resume ... --metrics-fd N` in its own session (so it
keeps training when the dashboard quits, dies, or its terminal closes), with stdout/stderr appended to
the run's engine.log (a stray print can never corrupt the records) and the write end of an os.pipe()
as its metrics channel. One reader thread per run decodes the pipe, merges bursts into one
`on_batch` call per ~50 ms (decoded pieces: metric columns and record lists), and reports the process's exit with the tail of its log. Runs this
dashboard did not start (a terminal, a previous dashboard) are attached (`attach.py`): their history
is read from metrics.msgpack, the watcher follows the file, and a poller notices within a second when
their pid dies. Commands go over each run's control socket, so they work the same for both kinds.

`launch(..., nproc=N)` runs the engine's `--nproc N`, which execs torchrun in the same process: the
pid we hold is torchrun's, its workers are its children, and since no fd crosses torchrun the run
is followed from its folder (the watcher) while a waiter thread reports its exit. `launch_command`
runs any program with the reporter (`nexus.init()`) the same way an engine run is: own session, log,
pipe (NEXUS_METRICS_FD), control socket, crash tail.

What to start and its checks are `launch_args.py`; creating the process is `spawn.py`; commands to a
run are `run_control.py`. Callbacks are called from threads; they must be quick and must not block
on the UI thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_core import children
from nexus_core.commands import Command, Stop
from nexus_core.control import COMMAND_TIMEOUT_S
from nexus_core.engine_deps import engine_missing
from nexus_core.protocol import (
    METRICS_FILE,
    ControlError,
    check_run_name,
    engine_argv,
    free_run_name,
    read_status,
)
from nexus_core.runfolder import pid_alive
from nexus_core.trust import TRUST_FLAG
from nexus_tui.history.columnar.fastdecode import Piece
from nexus_tui.live import run_control
from nexus_tui.live.attach import POLL_S, Attaching
from nexus_tui.live.engine_io import (
    exit_code_of,
    log_tail,
    read_pipe,
)
from nexus_tui.live.launch_args import (
    LaunchError,
    base_env,
    check_train,
    command_launch,
    resume_args,
    train_args,
    use_checkpoint,
)
from nexus_tui.live.silent_exit import record_silent_exit
from nexus_tui.live.spawn import ManagedRun, start_in_session

OnBatch = Callable[[str, Path, list[Piece]], None]
OnExit = Callable[[str, "int | None", str], None]
OnWarning = Callable[[str, str], None]

BATCH_WINDOW_S = 0.05
"""Records arriving within this long of the first one are handed over together."""
STOP_SEND_SHARE = 0.5
"""Stopping every run on leaving: each run's stop command may wait this share of the whole wait for
the engine to read it (the rest is for its checkpoint and exit) before SIGTERM stands in."""


class Supervisor(Attaching):
    """Owns the engine processes of one runs folder (`root`)."""

    def __init__(
        self,
        root: str | Path,
        on_batch: OnBatch,
        on_exit: OnExit,
        on_warning: OnWarning,
        python: str = children.PYTHON,
    ) -> None:
        self.root = Path(root).resolve()
        self.on_batch = on_batch
        """Where a run's records go, as decoded pieces in stream order (metric columns in bulk)."""
        self.on_exit = on_exit
        self.on_warning = on_warning
        self.python = python
        self._runs: dict[str, ManagedRun] = {}
        self._opening: set[str] = set()
        """Piped runs whose folder exists but whose ManagedRun does not yet: already `piping`, so the
        watcher never reads the files a launch makes before the process is registered."""
        self._lock = threading.RLock()
        self._detach = threading.Event()
        self._poller: threading.Thread | None = None

    # -- launching -------------------------------------------------------------------------------

    def launch(
        self,
        preset: str,
        name: str | None = None,
        device: str = "cpu",
        steps: int | None = None,
        overrides: list[str] | None = None,
        nproc: int = 1,
    ) -> Path:
        """Start `python -m engine train` for a new run folder root/NAME; returns that folder. With
        `nproc` > 1 the engine execs torchrun (its `--nproc`): one run over that many ranks, followed
        from its run folder (no pipe crosses torchrun). Raises LaunchError for a bad name, a name
        that is taken, or an engine that cannot start."""
        name, run_dir, args = self.check_launch(preset, name, device, steps, overrides, nproc)
        self._spawn(name, run_dir, args, device, nproc)
        return run_dir

    def check_launch(
        self,
        preset: str,
        name: str | None = None,
        device: str = "cpu",
        steps: int | None = None,
        overrides: list[str] | None = None,
        nproc: int = 1,
    ) -> tuple[str, Path, list[str]]:
        """What `launch` would start: (name, run folder, engine arguments), checked by the dashboard's
        rules and then by the engine's own (`check_train`). LaunchError if either refuses. Creates
        nothing, so a refused launch leaves no folder behind."""
        name = name.strip() if name else self._free_name(preset)
        run_dir = self._new_run_dir(name)
        args = train_args(preset, run_dir, device, steps, overrides, nproc)
        check_train(self.python, args, self.root.parent)  # the engine's own rules, before any folder exists
        return name, run_dir, args

    def launch_command(
        self, argv: list[str], name: str, device: str = "cpu", cwd: str | Path | None = None
    ) -> Path:
        """Start any program (`python train.py --lr 3e-4`, already split) as run root/NAME: no shell,
        the dashboard's own Python and paths untouched, NEXUS_RUN_DIR naming the new folder for the
        script's `nexus.init()`, the metrics pipe in NEXUS_METRICS_FD, CUDA_VISIBLE_DEVICES set
        from `device` (cpu: none visible), output appended to the folder's log. `cwd` defaults to
        the dashboard's working directory, where a relative `train.py` was meant."""
        run_dir = self._new_run_dir(name.strip())
        program, env = command_launch(argv, run_dir, device)

        def build(fd: int | None) -> tuple[list[str], dict[str, str]]:
            return [program, *argv[1:]], {**env, "NEXUS_METRICS_FD": str(fd)}

        self._start(run_dir.name, run_dir, build, device, Path(cwd) if cwd else Path.cwd(), what=argv[0])
        return run_dir

    def _new_run_dir(self, name: str) -> Path:
        if error := check_run_name(name):
            raise LaunchError(error)
        run_dir = self.root / name
        metrics = run_dir / METRICS_FILE
        if name in self.live_runs() or (metrics.exists() and metrics.stat().st_size > 0):
            raise LaunchError(f"a run named {name!r} already exists: resume it, or pick another name")
        return run_dir

    def resume(
        self,
        run_dir: str | Path,
        lr: float | None = None,
        ramp_steps: int | None = None,
        steps: int | None = None,
        from_ckpt: str | None = None,
        device: str | None = None,
        trust: bool = False,
    ) -> None:
        """Start `python -m engine resume` on an existing run (latest checkpoint unless `from_ckpt`).
        With `lr` and `ramp_steps` the LR ramps linearly to `lr`; `steps` is a new total. `trust`:
        the user said yes to resuming a foreign folder (nexus_core.trust); without it the engine
        refuses one."""
        run_dir = self._resolve(run_dir)
        args, run_device = resume_args(
            run_dir,
            read_status(run_dir) or {},
            run_dir.name in self.live_runs(),
            lr,
            ramp_steps,
            steps,
            from_ckpt,
            device,
        )
        if trust:
            args.append(TRUST_FLAG)
        self._spawn(run_dir.name, run_dir, args, run_device)

    def use_checkpoint(self, run_dir: str | Path, verb: str, args: list[str]) -> str:
        """`generate` or `eval` on a run's newest checkpoint, to the end (blocks: call off the event loop)."""
        if self.python == children.PYTHON and (missing := engine_missing()):
            raise LaunchError(missing)
        return use_checkpoint(self.python, verb, self._resolve(run_dir), args, self.root.parent)

    def _free_name(self, preset: str) -> str:
        try:
            with self._lock:
                return free_run_name(self.root, preset, set(self._runs))
        except FileExistsError as e:
            raise LaunchError(str(e)) from None

    def _threads(self) -> int:
        """CPU runs share the cores: each new one gets cores // (live CPU runs, itself included)."""
        live_cpu = sum(1 for r in self._runs.values() if not r.exited and r.is_cpu)
        return max(1, (os.cpu_count() or 1) // (live_cpu + 1))

    def _spawn(self, name: str, run_dir: Path, args: list[str], device: str, nproc: int = 1) -> None:
        """Start an engine: piped when it is one process, followed from its folder under torchrun."""
        if self.python == children.PYTHON and (missing := engine_missing()):
            raise LaunchError(missing)  # a dashboard-only install: say so before making a run folder
        cpu = not device.startswith(("cuda", "mps"))
        with self._lock:
            chosen = any(a.startswith("train.threads=") for a in args)  # the caller's choice wins
            threads = max(1, self._threads() // nproc) if cpu and not chosen else None
            if threads:
                args = [*args, "--threads", str(threads)]
            if nproc > 1:
                args = [*args, "--nproc", str(nproc)]
            env = base_env(threads)

            def build(fd: int | None) -> tuple[list[str], dict[str, str]]:
                tail = ["--metrics-fd", str(fd)] if fd is not None else []
                return engine_argv(self.python, *args, *tail), env

            self._start(
                name,
                run_dir,
                build,
                device,
                self.root.parent,
                piped=nproc == 1,
                what=f"the engine ({self.python})",
            )

    def _start(
        self,
        name: str,
        run_dir: Path,
        build: Callable[[int | None], tuple[list[str], dict[str, str]]],
        device: str,
        cwd: Path,
        what: str,
        piped: bool = True,
    ) -> None:
        """Popen `build(write fd or None)` in its own session, output to the run's log; one thread
        reads its pipe (or, unpiped, waits for it: the watcher reads its records from the folder)."""
        with self._lock:
            if piped:
                self._opening.add(name)
            try:
                proc, read_fd = start_in_session(run_dir, build, cwd, what, piped)
                run = ManagedRun(name, run_dir, device, proc.pid, proc, piping=piped)
                target, targs = (self._read_pipe, (run, read_fd)) if piped else (self._wait_unpiped, (run,))
                run.reader = threading.Thread(
                    target=target, args=targs, name=f"nexus-read-{name}", daemon=True
                )
                self._runs[name] = run
            finally:
                self._opening.discard(name)  # registered (or failed): _runs answers from here on
            run.reader.start()

    # -- following -------------------------------------------------------------------------------

    def _deliver_pieces(self, run: ManagedRun, pieces: list[Piece]) -> None:
        if not pieces:
            return
        try:
            self.on_batch(run.name, run.run_dir, pieces)
        except Exception as e:  # noqa: BLE001 - a broken handler must not stop the reader
            self._warn(run.name, f"the dashboard failed to handle records: {e!r}")

    def _warn(self, name: str, text: str) -> None:
        with contextlib.suppress(Exception):
            self.on_warning(name, text)

    def _read_pipe(self, run: ManagedRun, fd: int) -> None:
        """Reader thread: batches to on_batch until EOF or exit, then reports how the run ended."""
        assert run.proc is not None
        proc = run.proc
        try:
            read_pipe(
                fd,
                lambda: proc.poll() is not None,
                lambda pieces: self._deliver_pieces(run, pieces),
                lambda text: self._warn(run.name, text),
                self._detach,
                BATCH_WINDOW_S,
            )
        finally:
            run.piping = False
        if self._detach.is_set() and proc.poll() is None:
            return  # the dashboard is leaving the run to train on its own
        self._finish(run, proc.wait())

    def _wait_unpiped(self, run: ManagedRun) -> None:
        """Waiter thread of a run followed from its folder (torchrun): reports how it ended."""
        assert run.proc is not None
        proc = run.proc
        while proc.poll() is None:
            if self._detach.wait(POLL_S / 5) and proc.poll() is None:
                return  # the dashboard is leaving the run to train on its own
        self._finish(run, proc.wait())

    def _finish(self, run: ManagedRun, code: int | None) -> None:
        if code is None and run.terminated:
            code = -signal.SIGTERM  # an attached run we signalled, dead before it wrote a final state
        with self._lock:
            if run.exited:
                return
            run.exited, run.exit_code = True, code
        try:
            tail = log_tail(run.run_dir)
            record_silent_exit(
                run.run_dir, code, tail
            )  # a run that died before any record: every view sees it
            self.on_exit(run.name, code, tail)
        except Exception as e:  # noqa: BLE001
            self._warn(run.name, f"the dashboard failed to handle the run's exit: {e!r}")

    # -- commands --------------------------------------------------------------------------------

    def _resolve(self, name_or_dir: str | Path) -> Path:
        with self._lock:
            run = self._runs.get(str(name_or_dir))
        if run is not None:
            return run.run_dir
        if isinstance(name_or_dir, str) and "/" not in name_or_dir and (self.root / name_or_dir).is_dir():
            return self.root / name_or_dir
        path = Path(name_or_dir)
        if path.is_dir():
            return path.resolve()
        raise ControlError(f"no run named {str(name_or_dir)!r} under {self.root}")

    def send(
        self, name_or_dir: str | Path, command: Command, timeout: float = COMMAND_TIMEOUT_S
    ) -> dict[str, Any]:
        """Send one typed command to a run by name or folder (run_control.send)."""
        return run_control.send(self._resolve(name_or_dir), command, timeout)

    def lr_preview(
        self,
        run_dir: str | Path,
        target_lr: float,
        ramp_steps: int,
        steps: int | None = None,
        from_ckpt: str | None = None,
    ) -> tuple[list[int], list[float]]:
        """The LR a ramped resume of this run would follow (run_control.ramp_preview)."""
        return run_control.ramp_preview(self._resolve(run_dir), target_lr, ramp_steps, steps, from_ckpt)

    def noted_lr_preview(
        self,
        run_dir: str | Path,
        target_lr: float,
        ramp_steps: int,
        steps: int | None = None,
        from_ckpt: str | None = None,
        hello: dict[str, Any] | None = None,
    ) -> tuple[list[int], list[float], str]:
        """(steps, LRs, what the preview assumes): the ramp dialog's preview of any run."""
        got = run_control.noted_ramp_preview(
            self._resolve(run_dir), target_lr, ramp_steps, steps, from_ckpt, hello
        )
        return got.steps, got.lrs, got.note

    # -- the whole fleet -------------------------------------------------------------------------

    def piping(self, name: str) -> bool:
        """Whether `name`'s records are arriving through its metrics pipe now: its file need not
        be read at every write (the runs watcher's poll still reads it, for what the pipe dropped)."""
        if name in self._opening:
            return True
        run = self._runs.get(name)
        return run is not None and run.piping

    def _stop_one(self, name: str, patience: float) -> None:
        """Ask one run to checkpoint and exit; one not listening (still importing torch), or not
        reading its socket within `patience` s, gets SIGTERM: the engine's other stop path
        (checkpoint, then exit), which before training starts just ends it."""
        try:
            self.send(name, Stop(), timeout=patience)
        except Exception as e:  # noqa: BLE001 - whatever kept the stop from landing, SIGTERM stands in
            with self._lock:
                run = self._runs.get(name)
            if run is not None and run.pid and pid_alive(run.pid, run.since):
                with contextlib.suppress(OSError):
                    os.kill(run.pid, signal.SIGTERM)
                    run.terminated = True
            else:
                self._warn(name, f"could not stop: {e}")

    def live_runs(self) -> list[str]:
        with self._lock:
            return [n for n, r in self._runs.items() if not r.exited]

    def processes(self) -> dict[str, int]:
        """Live runs' engine pids, for the telemetry."""
        with self._lock:
            return {n: r.pid for n, r in self._runs.items() if not r.exited and r.pid}

    def run_dir(self, name: str) -> Path | None:
        with self._lock:
            run = self._runs.get(name)
        return run.run_dir if run else None

    def shutdown(self, stop_runs: bool, timeout: float = 30.0) -> list[str]:
        """Leave. stop_runs=True asks every live run to checkpoint and exit and waits up to `timeout`
        s for them; False leaves them training (the next dashboard re-attaches them). Returns the
        runs still alive when it gave up waiting (or all live runs, when leaving them)."""
        if stop_runs:
            deadline = time.monotonic() + timeout
            # All at once, each patiently: an engine busy with an eval, a sample and a checkpoint
            # reads its socket only after them (seconds on a loaded CPU), and a stop it reads is
            # told as `stopped`, where SIGTERM's is `killed`.
            stoppers = [
                threading.Thread(
                    target=self._stop_one,
                    args=(name, max(1.0, timeout * STOP_SEND_SHARE)),
                    name=f"nexus-stop-{name}",
                    daemon=True,
                )
                for name in self.live_runs()
            ]
            for t in stoppers:
                t.start()
            for t in stoppers:
                t.join(max(0.0, deadline - time.monotonic()))
            while self.live_runs() and time.monotonic() < deadline:
                with self._lock:
                    attached = [r for r in self._runs.values() if r.proc is None and not r.exited]
                for run in attached:
                    if not pid_alive(run.pid, run.since):
                        self._finish(run, exit_code_of(run.run_dir))
                time.sleep(0.05)
        left = self.live_runs()
        self._detach.set()
        with self._lock:
            readers = [r.reader for r in self._runs.values() if r.reader is not None]
        for t in readers:
            t.join(timeout=2.0)
        if self._poller is not None:
            self._poller.join(timeout=2 * POLL_S)
        return left
