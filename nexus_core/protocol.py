"""The records and commands both halves of Nexus speak (docs/PROTOCOL.md is the full specification). Torch-free and textual-free on purpose:
the dashboard imports this package and nothing else from `engine`.

Records (engine -> app) are msgpack maps with a "type" key, written by one `RecordWriter` to the
run's append-only metrics.msgpack and, when the engine was given a pipe, to that pipe too. Readers
use one `RecordDecoder`, which yields every whole record, skips garbage with a warning and keeps a
torn tail for later (a stream) or reports it (a file).

Record keys (every record also has "type", "seq" (its index in metrics.msgpack) and "time" (unix s)):
  hello   run, protocol, config (the resolved config dict), pid, device, params, total_steps,
          start_step, model (family), resumed_from (checkpoint path or None); from nexus's reporter
          also source ("reporter"), commands (the commands this run takes), argv, meta
  metric  step, tokens, loss, ce, lr, gnorm, tok_s, step_s, mem (bytes: CUDA max allocated or RSS),
          plus any other numeric key (a series of its own, in `extra`; "/" names a section)
  eval    step, tokens, val_loss, val_ppl, best (bool: this is the best val loss so far), plus any
          other numeric key
  sample  step, prompt, text, requested (bool: asked for with the `generate` command)
  ckpt    step, path (relative to the run folder), best (bool), val_loss (or None)
  state   state (one of STATES), step, reason (text), exit_code (on FINAL_STATES: finished,
          stopped, failed (an exception), killed (a signal), crashed), total_steps (the
          schedule's total now: a live ramp can move it)
  log     level (info|warning|error), text
  alert   kind (nan|spike|gnorm|oom|disk|crash), step, text

Every string in a record, and every run-folder name, is untrusted: `clean_text` (text.py) is the one
sanitizer that makes it safe to show; `open_regular`/`read_json` (safefile.py) are the bounded readers.

Commands (app -> engine) are msgpack maps with a "cmd" key, an "id" and a "deadline" (unix s) sent
over the run's control socket (owner-only unix socket); the engine answers {"taken": id} when it
reads one in time (else {"ok": False, "error": "expired: ..."}, not applied), then {"ok", "error"}.
Every argument is checked against COMMAND_ARGS (type and range), the one table the dialogs use too:
  pause · resume ("unpause" from older clients; still accepted) · checkpoint · eval · stop
  park      checkpoint, then exit as `stopped` with reason "parked" (readers show `parked`)
  generate  prompt, tokens, temperature, top_k (the text arrives as a `sample` record)
  ramp      target_lr, ramp_steps, total_steps (optional): LR goes linearly from where it is to the
            target over ramp_steps, then follows the schedule stretched to total_steps
"""

from nexus_core.control import (
    READ_DEADLINE_S,
    CommandServer,
    ControlError,
    check_command,
    control_socket_path,
    reply,
    send_command,
)
from nexus_core.names import check_run_name, free_run_name, next_free_name, run_name_ok
from nexus_core.records import (
    DecodeWarning,
    ReadResult,
    RecordDecoder,
    RecordWriter,
    count_records,
    iter_records,
    pack,
    read_records,
)
from nexus_core.recordtypes import (
    RECORD_CLASSES,
    Alert,
    AnyRecord,
    Ckpt,
    Eval,
    Hello,
    Histogram,
    Log,
    Media,
    Metric,
    Record,
    Sample,
    State,
    Table,
    Text,
    to_record,
)
from nexus_core.runfolder import engine_argv, engine_home, pid_alive, read_status, tail_bytes, write_status
from nexus_core.safefile import (
    SMALL_FILE_BYTES,
    UnsafeFileError,
    describe_os_error,
    open_regular,
    parse_json,
    read_bytes,
    read_json,
    read_text,
)
from nexus_core.schema import (
    ALERT,
    CHECKPOINT,
    CHECKPOINTING,
    CHECKPOINTS_DIR,
    CKPT,
    COMMAND_ARGS,
    COMMAND_ENVELOPE,
    COMMANDS,
    CONFIG_FILE,
    CONTROL_SOCKET,
    CRASHED,
    EVAL,
    EVAL_NOW,
    FAILED,
    FILES_DIR,
    FINAL_STATES,
    FINISHED,
    GENERATE,
    HELLO,
    HISTOGRAM,
    KILLED,
    LIVE_STATES,
    LOG,
    LOG_FILE,
    MAX_RECORD_BYTES,
    MEDIA,
    MEDIA_DIR,
    MEDIA_TYPES,
    METRIC,
    METRICS_FILE,
    PARK,
    PARK_REASON,
    PARKED,
    PAUSE,
    PAUSED,
    PROTOCOL_VERSION,
    RAMP,
    RECORD_TYPES,
    RESUME,
    RUN_DIR_ENV,
    RUNNING,
    SAMPLE,
    STARTING,
    STATE,
    STATES,
    STATUS_FILE,
    STOP,
    STOPPED,
    TABLE,
    TEXT,
    UNPAUSE,
)
from nexus_core.text import clean_data, clean_text

# The facade's names (the type checker treats only these as re-exported).
__all__ = [
    "READ_DEADLINE_S",
    "CommandServer",
    "ControlError",
    "check_command",
    "control_socket_path",
    "reply",
    "send_command",
    "check_run_name",
    "free_run_name",
    "next_free_name",
    "run_name_ok",
    "DecodeWarning",
    "ReadResult",
    "RecordDecoder",
    "RecordWriter",
    "count_records",
    "iter_records",
    "pack",
    "read_records",
    "RECORD_CLASSES",
    "Alert",
    "AnyRecord",
    "Ckpt",
    "Eval",
    "Hello",
    "Histogram",
    "Log",
    "Media",
    "Metric",
    "Record",
    "Sample",
    "State",
    "Table",
    "Text",
    "to_record",
    "engine_argv",
    "engine_home",
    "pid_alive",
    "read_status",
    "tail_bytes",
    "write_status",
    "SMALL_FILE_BYTES",
    "UnsafeFileError",
    "describe_os_error",
    "open_regular",
    "parse_json",
    "read_bytes",
    "read_json",
    "read_text",
    "ALERT",
    "CHECKPOINT",
    "CHECKPOINTING",
    "CHECKPOINTS_DIR",
    "CKPT",
    "COMMAND_ARGS",
    "COMMAND_ENVELOPE",
    "COMMANDS",
    "CONFIG_FILE",
    "CONTROL_SOCKET",
    "CRASHED",
    "EVAL",
    "EVAL_NOW",
    "FAILED",
    "FILES_DIR",
    "FINAL_STATES",
    "FINISHED",
    "GENERATE",
    "HELLO",
    "HISTOGRAM",
    "KILLED",
    "LIVE_STATES",
    "LOG",
    "LOG_FILE",
    "MAX_RECORD_BYTES",
    "MEDIA",
    "MEDIA_DIR",
    "MEDIA_TYPES",
    "METRIC",
    "METRICS_FILE",
    "PAUSE",
    "PAUSED",
    "PROTOCOL_VERSION",
    "RAMP",
    "RECORD_TYPES",
    "RESUME",
    "RUN_DIR_ENV",
    "RUNNING",
    "SAMPLE",
    "STARTING",
    "STATE",
    "STATES",
    "STATUS_FILE",
    "STOP",
    "STOPPED",
    "TABLE",
    "TEXT",
    "UNPAUSE",
    "clean_data",
    "clean_text",
]
