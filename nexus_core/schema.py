"""Names both sides agree on: protocol version, record types, states, commands, run-folder files.

The full description of every record and command is in `engine/protocol/__init__.py`.
"""

PROTOCOL_VERSION = 1
MAX_RECORD_BYTES = 1 << 20
"""A record larger than this is garbage, not data (the longest real one is a sample's text)."""

# Record types.
HELLO, METRIC, EVAL, SAMPLE, CKPT, STATE, LOG, ALERT = (
    "hello", "metric", "eval", "sample", "ckpt", "state", "log", "alert",
)
RECORD_TYPES = frozenset({HELLO, METRIC, EVAL, SAMPLE, CKPT, STATE, LOG, ALERT})

# Run states. finished/stopped/failed/killed/crashed are final: `failed` is an exception the writer saw
# (the reporter's excepthook), `killed` a signal that ended the process (SIGTERM, SIGINT), `crashed`
# a run that ended without saying so (readers decide it from a live state and a dead pid).
STARTING, RUNNING, PAUSED, CHECKPOINTING, FINISHED, CRASHED, STOPPED, FAILED, KILLED = (
    "starting", "running", "paused", "checkpointing", "finished", "crashed", "stopped", "failed", "killed",
)
STATES = (STARTING, RUNNING, PAUSED, CHECKPOINTING, FINISHED, CRASHED, STOPPED, FAILED, KILLED)
LIVE_STATES = frozenset({STARTING, RUNNING, PAUSED, CHECKPOINTING})
FINAL_STATES = frozenset({FINISHED, CRASHED, STOPPED, FAILED, KILLED})

# Commands (typed in commands.py). `unpause` lets a paused run go on; RESUME is that command's old
# name, still accepted for one release ("resume" now means only: restart a run from a checkpoint).
PAUSE, UNPAUSE, CHECKPOINT, EVAL_NOW, STOP, GENERATE, RAMP = (
    "pause", "unpause", "checkpoint", "eval", "stop", "generate", "ramp",
)
RESUME = "resume"
COMMANDS = frozenset({PAUSE, UNPAUSE, RESUME, CHECKPOINT, EVAL_NOW, STOP, GENERATE, RAMP})

# The run folder.
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.msgpack"
LOG_FILE = "engine.log"
STATUS_FILE = "status"
CONTROL_SOCKET = "control.sock"
CHECKPOINTS_DIR = "checkpoints"
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
