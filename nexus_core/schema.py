"""Names both sides agree on: protocol version, record types, states, commands, run-folder files.

The full description of every record and command is in docs/PROTOCOL.md (and `nexus_core/protocol.py`).
"""

from typing import Literal, get_args

PROTOCOL_VERSION = 1
MAX_RECORD_BYTES = 1 << 20
"""A record larger than this is garbage, not data (the longest real one is a sample's text)."""

# Record types.
HELLO, METRIC, EVAL, SAMPLE, CKPT, STATE, LOG, ALERT = (
    "hello",
    "metric",
    "eval",
    "sample",
    "ckpt",
    "state",
    "log",
    "alert",
)
# What a reporter logs beyond numbers (wandb.Table, wandb.Histogram, wandb.Image, a logged string).
TEXT, TABLE, HISTOGRAM, MEDIA = "text", "table", "histogram", "media"
MEDIA_TYPES = frozenset({TEXT, TABLE, HISTOGRAM, MEDIA})
RECORD_TYPES = frozenset({HELLO, METRIC, EVAL, SAMPLE, CKPT, STATE, LOG, ALERT}) | MEDIA_TYPES

# Run states. finished/stopped/failed/killed/crashed are final: `failed` is an exception the writer saw
# (the reporter's excepthook), `killed` a signal that ended the process (SIGTERM, SIGINT), `crashed`
# a run that ended without saying so (readers decide it from a live state and a dead pid).
# Declared once, as the type a state record's `state` field has (recordtypes.State); the names below
# are its values.
StateName = Literal[
    "starting", "running", "paused", "checkpointing", "finished", "crashed", "stopped", "failed", "killed"
]
STATES: tuple[StateName, ...] = get_args(StateName)
STARTING, RUNNING, PAUSED, CHECKPOINTING, FINISHED, CRASHED, STOPPED, FAILED, KILLED = STATES
STALLED = "stalled"
"""Never written by an engine: what a reader shows for a running run silent far beyond its usual pace
(`RunState.stalled`)."""
PARKED = "parked"
"""Never written by an engine: a run that stopped for a `park` command (state `stopped` with reason
PARK_REASON), checkpointed and waiting to be resumed when a slot is free. `RunState` decides it."""
PARK_REASON = "parked"
"""The reason an engine writes with its `stopped` state when a `park` command ended it."""
LIVE_STATES = frozenset({STARTING, RUNNING, PAUSED, CHECKPOINTING})
FINAL_STATES = frozenset({FINISHED, CRASHED, STOPPED, FAILED, KILLED})

# Commands (typed in commands.py), named as docs/PROTOCOL.md names them. `resume` lets a paused run
# go on; UNPAUSE is the name a release of Nexus sent for it instead, still accepted from old clients
# (the CLI's `nexus resume` is something else: it restarts a stopped run from a checkpoint).
PAUSE, RESUME, CHECKPOINT, EVAL_NOW, STOP, GENERATE, RAMP, PARK = (
    "pause",
    "resume",
    "checkpoint",
    "eval",
    "stop",
    "generate",
    "ramp",
    "park",
)
UNPAUSE = "unpause"
COMMANDS = frozenset({PAUSE, UNPAUSE, RESUME, CHECKPOINT, EVAL_NOW, STOP, GENERATE, RAMP, PARK})

# The run folder.
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.msgpack"
LOG_FILE = "engine.log"
STATUS_FILE = "status"
CONTROL_SOCKET = "control.sock"
CHECKPOINTS_DIR = "checkpoints"
MEDIA_DIR = "media"
"""Files a `media` record names (images, audio...), written by the reporter through nexus_core/safefile.py."""
FILES_DIR = "files"
"""wandb.save / log_code / log_artifact copies, each folder with a manifest.json of sha256 digests."""
RUN_DIR_ENV = "NEXUS_RUN_DIR"
"""Set by whoever launches a script (the dashboard's launcher, a shell): the run folder the script's
`nexus.init()` writes, with no arguments needed."""

_UNPACK_LIMITS = dict(
    max_str_len=MAX_RECORD_BYTES,
    max_bin_len=MAX_RECORD_BYTES,
    max_array_len=1 << 16,
    max_map_len=1 << 12,
    max_ext_len=0,
)


class Arg:
    """One command argument's type and range: the single table both the dashboard's dialogs and the
    engine check against, so a value one side accepts the other never refuses (or crashes on)."""

    def __init__(
        self,
        kind: type,
        lo: float | None = None,
        hi: float | None = None,
        required: bool = False,
        hint: str = "",
    ) -> None:
        self.kind, self.lo, self.hi, self.required, self.hint = kind, lo, hi, required, hint

    def error(self, cmd: str, name: str, value: object) -> str:
        """'' when `value` fits, else one line that says what would."""
        want = {int: "a whole number", float: "a number", str: "text"}[self.kind]
        if isinstance(value, bool) or not (
            isinstance(value, int)
            if self.kind is int
            else isinstance(value, (int, float))
            if self.kind is float
            else isinstance(value, str)
        ):
            return f"{cmd} {name} must be {want}, got {type(value).__name__} {value!r:.40}"
        if self.kind is float and (value != value or value in (float("inf"), float("-inf"))):
            return f"{cmd} {name} must be a finite number, got {value!r}"
        size: float = (
            len(value) if isinstance(value, str) else value if isinstance(value, (int, float)) else 0.0
        )
        what = "characters" if isinstance(value, str) else ""
        if (self.lo is not None and size < self.lo) or (self.hi is not None and size > self.hi):
            span = f"between {self.lo:g} and {self.hi:g}{' ' + what if what else ''}"
            return f"{cmd} {name} must be {span}{self.hint}, got {value if not what else size!r:.40}"
        return ""


COMMAND_ARGS: dict[str, dict[str, Arg]] = {
    RAMP: {
        "target_lr": Arg(float, 1e-12, 10.0, required=True),
        "ramp_steps": Arg(int, 0, 10**8, required=True),
        "total_steps": Arg(int, 1, 10**10),
    },
    GENERATE: {
        "prompt": Arg(str, 0, 8192),
        "tokens": Arg(int, 1, 4096),
        "temperature": Arg(float, 0.0, 5.0, hint=" (0 = greedy)"),
        "top_k": Arg(int, 0, 1 << 20, hint=" (0 = off)"),
    },
}
"""Every argument a command takes, with its limits. Each command also carries `id` and `deadline`."""
COMMAND_ENVELOPE = {"id": Arg(str, 1, 64), "deadline": Arg(float, 0.0, 1e12)}
"""Added by `send_command`: an engine drops a command read after its deadline (see control.py)."""
