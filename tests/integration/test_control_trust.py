"""The control socket under faults and hostile peers, over real sockets to real engines: a command
that timed out never runs later, a trickling client never freezes training, every argument is
checked by type and range, and neither end talks to a process of another user."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import pytest
from support.engine import Engine, run_engine
from support.preset import TINY
from support.wait import wait_until

from nexus_core import control
from nexus_core import protocol as P

NOBODY = 65534


@pytest.fixture
def live(runs_root: Path):
    eng = Engine(
        runs_root / "live",
        "train",
        "--steps",
        "100000",
        "--set",
        "train.ckpt_every=100000",
        "--set",
        "train.eval_every=0",
        *TINY,
    )
    eng.wait_for(lambda r: r["type"] == "metric" and r["step"] >= 3)
    yield eng
    with contextlib.suppress(OSError):
        os.kill(eng.pid, signal.SIGCONT)
    eng.kill()


def _step(eng: Engine) -> int:
    eng.pump(0.0)
    return max((r["step"] for r in eng.of("metric")), default=0)


def test_a_command_that_timed_out_never_runs_later(live: Engine) -> None:
    os.kill(live.pid, signal.SIGSTOP)
    try:
        with pytest.raises(P.ControlError, match="was not applied and will not be"):
            P.send_command(live.run_dir, P.PAUSE, timeout=1.0)
    finally:
        os.kill(live.pid, signal.SIGCONT)
    held = _step(live)
    wait_until(lambda: _step(live) > held + 10, 60, "training to go on after SIGCONT")
    assert not [r for r in live.of("state") if r["state"] == P.PAUSED], "the expired pause was dropped"
    assert P.read_status(live.run_dir)["state"] == P.RUNNING
    assert P.send_command(live.run_dir, P.PAUSE)["ok"], "a command in time still works"
    live.wait_for(lambda r: r["type"] == "state" and r["state"] == P.PAUSED)


def test_a_trickling_client_never_freezes_training(live: Engine) -> None:
    answer: list[bytes] = []

    def trickle() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(P.control_socket_path(live.run_dir)))
            for byte in msgpack.packb({"cmd": "pause"}):
                with contextlib.suppress(OSError):
                    s.send(bytes([byte]))
                time.sleep(0.4)
            s.settimeout(30)
            with contextlib.suppress(OSError):
                answer.append(s.recv(4096))

    held = _step(live)
    t = threading.Thread(target=trickle)
    t.start()
    wait_until(lambda: _step(live) > held + 10, 60, "steps while a client trickles its command")
    t.join(60)
    reply = msgpack.unpackb(answer[0]) if answer and answer[0] else {}
    assert reply.get("ok") is False and f"within {control.READ_DEADLINE_S:g}s" in reply.get("error", ""), (
        reply
    )
    assert not [r for r in live.of("state") if r["state"] == P.PAUSED]


@pytest.mark.parametrize(
    ("cmd", "args", "said"),
    [
        (P.RAMP, {"target_lr": 1e39, "ramp_steps": 5}, "target_lr must be between"),
        (P.RAMP, {"target_lr": float("nan"), "ramp_steps": 5}, "finite"),
        (P.RAMP, {"target_lr": float("inf"), "ramp_steps": 5}, "finite"),
        (P.RAMP, {"target_lr": 1e-3, "ramp_steps": True}, "ramp_steps must be a whole number, got bool"),
        (P.RAMP, {"target_lr": 1e-3, "ramp_steps": 5, "total_steps": 2**62}, "total_steps must be between"),
        (P.RAMP, {"target_lr": 1e-3}, "ramp needs ramp_steps"),
        (P.GENERATE, {"tokens": -5}, "tokens must be between 1"),
        (P.GENERATE, {"temperature": -1.0}, "temperature must be between 0"),
        (P.GENERATE, {"top_k": -3}, "top_k must be between 0"),
        (P.GENERATE, {"top_k": True}, "top_k must be a whole number, got bool"),
        (P.GENERATE, {"prompt": 5}, "prompt must be text"),
        (P.PAUSE, {"evil": 1}, "pause takes no argument 'evil'"),
    ],
)
def test_every_argument_is_checked_before_ok(runs_root: Path, cmd: str, args: dict, said: str) -> None:
    server = P.CommandServer(runs_root)
    taken: list = []
    t = threading.Thread(target=lambda: taken.extend(server.poll(5.0)))
    t.start()
    try:
        with pytest.raises(P.ControlError, match=said):
            P.send_command(runs_root, cmd, **args)
    finally:
        t.join()
        server.close()
    assert taken == [], "a refused command never reaches the trainer"


def test_a_live_run_survives_every_bad_argument(live: Engine) -> None:
    for cmd, args in [
        (P.RAMP, {"target_lr": 1e39, "ramp_steps": 0}),
        (P.GENERATE, {"tokens": -1}),
        (P.GENERATE, {"temperature": float("inf")}),
        (P.RAMP, {"target_lr": 1e-3, "ramp_steps": False}),
    ]:
        with pytest.raises(P.ControlError):
            P.send_command(live.run_dir, cmd, **args)
    held = _step(live)
    wait_until(lambda: _step(live) > held + 5, 60, "training after the refusals")
    assert not [r for r in live.of("state") if r["state"] == P.CRASHED]


def _long_run_dir(base: Path) -> Path:
    deep = base / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    return deep


def test_the_tmpdir_socket_folder_must_be_ours_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the engine's too
    (tmp_path / "tmp").mkdir()
    run = _long_run_dir(tmp_path)
    folder = P.control_socket_path(run).parent
    # A symlink planted where the folder goes (to a folder the planter can read) is refused.
    (tmp_path / "elsewhere").mkdir()
    folder.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(P.ControlError, match="not a folder of yours"):
        P.CommandServer(run)
    folder.unlink()
    # Our own folder left open to others is closed before the socket goes in.
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    server = P.CommandServer(run)
    server.close()
    assert os.stat(folder).st_mode & 0o777 == 0o700
    if os.getuid() == 0:  # another user's folder (only root can make one for the test)
        os.chown(folder, NOBODY, NOBODY)
        with pytest.raises(P.ControlError, match=f"owner uid {NOBODY}"):
            P.CommandServer(run)
        # The engine refuses to start there, in one line, before any record.
        done = run_engine("train", "--run-dir", str(run), "--steps", "5", *TINY)
        assert done.returncode == 2 and "not a folder of yours" in done.stderr, done.stderr
        assert done.stderr.strip().count("\n") == 0, done.stderr
        assert not (run / P.METRICS_FILE).exists()


SYSTEM_PYTHON = "/usr/bin/python3"
"""A python another user may run (the venv's may sit in root's home)."""


@pytest.mark.skipif(
    os.getuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root and a system python to run a server as another user",
)
def test_the_client_refuses_a_server_of_another_user() -> None:
    base = Path(tempfile.mkdtemp(prefix="nexus-peer-", dir="/tmp"))
    os.chmod(base, 0o777)
    run = base / "run"
    run.mkdir(mode=0o777)
    os.chmod(run, 0o777)
    path = P.control_socket_path(run)
    answer = msgpack.packb({"taken": True}) + msgpack.packb({"ok": True, "error": ""})
    code = (
        "import socket,sys;s=socket.socket(socket.AF_UNIX);s.bind(sys.argv[1]);s.listen(1);print('up',flush=True);"
        "c,_=s.accept();c.recv(65536);c.sendall(bytes.fromhex(sys.argv[2]));c.close()"
    )
    srv = subprocess.Popen(
        [SYSTEM_PYTHON, "-I", "-c", code, str(path), answer.hex()],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.setuid(NOBODY),
    )
    try:
        assert srv.stdout.readline().strip() == "up"
        with pytest.raises(P.ControlError, match=f"is uid {NOBODY}, not you; nothing was sent"):
            P.send_command(run, P.GENERATE, prompt="my secret prompt")
    finally:
        srv.kill()
        srv.wait()
