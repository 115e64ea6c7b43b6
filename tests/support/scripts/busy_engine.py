"""A stand-in engine that is busy when a command arrives: it says hello and one step, opens its
control socket, and once a client connects takes 8 s more (an eval, a sample and a checkpoint on a
loaded CPU) before it reads the socket. What it read, and a SIGTERM, are left as files in its folder."""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path

from nexus_core.control import CommandServer, reply
from nexus_core.protocol import METRICS_FILE, RecordWriter

run = Path(os.environ["NEXUS_RUN_DIR"])


def term(*_: object) -> None:
    (run / "got-sigterm").touch()
    sys.exit(143)


signal.signal(signal.SIGTERM, term)
server = CommandServer(run)
writer = RecordWriter(run / METRICS_FILE)
writer.write(
    {
        "type": "hello",
        "run": run.name,
        "protocol": 1,
        "pid": os.getpid(),
        "device": "cpu",
        "model": "busy",
        "params": 1,
        "total_steps": 100,
        "start_step": 0,
        "config": {},
    }
)
writer.write(
    {
        "type": "metric",
        "step": 1,
        "tokens": 64,
        "loss": 3.0,
        "ce": 3.0,
        "lr": 1e-3,
        "gnorm": 1.0,
        "tok_s": 100.0,
        "step_s": 0.1,
        "mem": 1,
    }
)
(run / "listening").touch()
select.select([server._sock], [], [])  # a client is connecting, while this engine is busy
time.sleep(8)  # with its step's eval, sample and checkpoint: its socket is read between steps
for cmd, conn in server.poll(30):
    reply(conn, ok=True)
    (run / ("got-" + cmd["cmd"])).touch()
writer.write({"type": "state", "state": "stopped", "step": 1, "reason": "stop command", "exit_code": 0})
