"""`nexus check RUN_DIR`: a run folder checked against docs/PROTOCOL.md, so a writer in any language
can test itself. Headless and torch-free.

What it checks: the records file (each a msgpack map with string keys, `type` first, `seq` counting
from 0, `time`, each type's required fields with their types, the first record a hello with
`protocol` and `pid`), the status file (a JSON object with `pid`, a known `state`, `updated` while
live), the hello's `commands`, and, when the run is live, its control socket: an unknown command and
each listed command with a bad argument are refused with an `error`, a command the run does not list
is refused at once, pause then resume is answered and recorded (state `paused`, then `running`).
With `steer=True` checkpoint and eval must bring their records; with `stop=True` stop must end the
run `stopped`. What is wrong comes back as a few one-line findings (the first few of each kind and a
count), never a traceback: the folder is untrusted input.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgpack

from nexus_core.check_report import Report
from nexus_core.check_socket import check_socket, kind_of, socket_exists
from nexus_core.runfolder import pid_alive
from nexus_core.safefile import UnsafeFileError, open_regular
from nexus_core.schema import (
    COMMANDS,
    FINAL_STATES,
    LIVE_STATES,
    MAX_RECORD_BYTES,
    METRICS_FILE,
    PROTOCOL_VERSION,
    RECORD_TYPES,
    STATES,
    STATUS_FILE,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_BYTES = 1 << 32
"""The largest records file read (4 GiB)."""
WAIT_S = 15.0
"""How long a live run gets to record what a command asked for."""

INT, NUM, STR, BOOL, MAP, LIST, NIL = (
    "int",
    "number",
    "str",
    "bool",
    "map",
    "array",
    "nil",
)  # as kind_of names them
_FIELDS: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    # type -> field -> (allowed kinds, required)
    "hello": {
        "protocol": ((INT,), True),
        "pid": ((INT,), True),
        "run": ((STR,), False),
        "config": ((MAP,), False),
        "device": ((STR,), False),
        "params": ((INT, NIL), False),
        "total_steps": ((INT,), False),
        "start_step": ((INT,), False),
        "model": ((STR,), False),
        "resumed_from": ((STR, NIL), False),
        "commands": ((LIST,), False),
        "source": ((STR,), False),
        "argv": ((LIST, NIL), False),
        "meta": ((MAP, NIL), False),
        "lr_schedule": ((MAP, NIL), False),
    },
    "metric": {"step": ((INT,), True), "tokens": ((INT,), False)},
    "eval": {"step": ((INT,), True), "tokens": ((INT,), False), "best": ((BOOL,), False)},
    "sample": {
        "step": ((INT,), True),
        "prompt": ((STR,), False),
        "text": ((STR,), True),
        "requested": ((BOOL,), False),
    },
    "ckpt": {
        "step": ((INT,), True),
        "path": ((STR,), True),
        "best": ((BOOL,), False),
        "val_loss": ((NUM, NIL), False),
    },
    "state": {
        "state": ((STR,), True),
        "step": ((INT,), False),
        "reason": ((STR,), False),
        "exit_code": ((INT,), False),
    },
    "log": {"level": ((STR,), False), "text": ((STR,), True)},
    "alert": {
        "kind": ((STR,), False),
        "step": ((INT,), False),
        "text": ((STR,), True),
        "level": ((STR,), False),
    },
    "text": {"key": ((STR,), True), "text": ((STR,), True), "step": ((INT,), False)},
    "table": {
        "key": ((STR,), True),
        "columns": ((LIST,), True),
        "rows": ((LIST,), True),
        "step": ((INT,), False),
        "chart": ((STR,), False),
    },
    "histogram": {
        "key": ((STR,), True),
        "edges": ((LIST,), True),
        "counts": ((LIST,), True),
        "step": ((INT,), False),
    },
    "media": {
        "key": ((STR,), True),
        "kind": ((STR,), True),
        "path": ((STR,), False),
        "caption": ((STR,), False),
        "width": ((INT, NIL), False),
        "height": ((INT, NIL), False),
        "step": ((INT,), False),
    },
}
_NUMERIC_EXTRA = frozenset({"metric", "eval"})
"""Types whose other keys are series: numbers (or nil)."""
_STATUS: dict[str, tuple[tuple[str, ...], bool]] = {
    "pid": ((INT,), True),
    "state": ((STR,), True),
    "step": ((INT,), False),
    "reason": ((STR,), False),
    "exit_code": ((INT, NIL), False),
    "total_steps": ((INT,), False),
    "updated": ((NUM,), False),
    "device": ((STR,), False),
    "model": ((STR,), False),
    "run": ((STR,), False),
    "socket": ((STR,), False),
    "source": ((STR,), False),
    "best_val_loss": ((NUM, NIL), False),
    "tokens": ((INT, NIL), False),
    "commands": ((LIST,), False),
}


_kind = kind_of


def _fits(value: Any, kinds: tuple[str, ...]) -> bool:
    kind = _kind(value)
    return kind in kinds or (kind == INT and NUM in kinds)


def check(run_dir: str | Path, steer: bool = False, stop: bool = False, wait_s: float = WAIT_S) -> Report:
    """Check one run folder (see the module docstring). Never raises for what the folder holds."""
    report = Report(Path(run_dir))
    path = report.run_dir
    try:
        st = os.stat(path)
    except OSError as e:
        report.error("folder", f"{path}: {e.strerror or e}")
        return report
    if not stat.S_ISDIR(st.st_mode):
        report.error("folder", f"{path} is not a folder")
        return report
    if not NAME.match(path.resolve().name):
        report.warn(
            "name",
            f"the folder's name {path.resolve().name!r:.80} is not a run name "
            "(letters, digits, . _ -; 64 at most; not starting with . _ -)",
        )
    hello = _check_records(report)
    status = _check_status(report)
    commands = _commands(report, hello)
    live = (
        status is not None
        and status.get("state") in LIVE_STATES
        and pid_alive(status.get("pid"), status.get("updated"))
    )
    if live:
        check_socket(report, commands, steer, stop, wait_s)
    elif socket_exists(path):
        report.warn(
            "socket", "a control socket is left in a run that is not live: remove it when the run ends"
        )
    return report


# -- records -------------------------------------------------------------------------------------


def _check_records(report: Report) -> dict[str, Any] | None:
    path = report.run_dir / METRICS_FILE
    try:
        with open_regular(path, MAX_BYTES) as f:
            data = f.read()
    except FileNotFoundError:
        report.error("records", f"no {METRICS_FILE}: every run has one (section 2)")
        return None
    except UnsafeFileError as e:
        report.error("records", f"{METRICS_FILE} {e.strerror}")
        return None
    except OSError as e:
        report.error("records", f"{METRICS_FILE} cannot be read: {e.strerror or e}")
        return None
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=False,
        max_buffer_size=MAX_RECORD_BYTES * 2,
        max_bin_len=MAX_RECORD_BYTES,
        max_str_len=MAX_RECORD_BYTES,
        max_array_len=65536,
        max_map_len=4096,
        max_ext_len=0,
    )
    unpacker.feed(data)
    index, offset, hello, last_step = 0, 0, None, None
    while offset < len(data):
        try:
            record = unpacker.unpack()
        except msgpack.OutOfData:
            report.warn(
                "torn",
                f"the last {len(data) - offset} bytes are a torn record (a crash while "
                "writing; readers ignore it)",
            )
            break
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
            report.error(
                "garbage",
                f"{METRICS_FILE} byte {offset}: not a msgpack record within the limits "
                f"({type(e).__name__}: {str(e)[:80]}); the rest of the file is not checked",
            )
            break
        end = unpacker.tell()
        where = f"record {index} (byte {offset})"
        if end - offset > MAX_RECORD_BYTES:
            report.error("size", f"{where} is {end - offset} bytes, over the 1 MiB limit")
        got = _check_record(report, record, index, where)
        if got is not None:
            kind, rec = got
            if index == 0 and kind != "hello":
                report.error("first", f"{where}: the first record must be a hello, not {kind!r:.20}")
            if kind == "hello":
                hello = rec
            elif kind == "metric" and isinstance(rec.get("step"), int):
                if last_step is not None and rec["step"] <= last_step:
                    report.warn(
                        "steps",
                        f"{where}: metric step {rec['step']} is not after {last_step} (readers "
                        "take it as a resume redrawing that stretch)",
                    )
                last_step = rec["step"]
        index, offset = index + 1, end
    if index == 0 and not report.errors:
        report.error(
            "records",
            f"{METRICS_FILE} holds no record: write a hello first (a run just started: "
            "check again in a second)",
        )
    else:
        report.checked.append(f"{index} records")
    return hello


def _check_record(report: Report, record: Any, index: int, where: str) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(record, dict):
        report.error("not-map", f"{where} is a {_kind(record)}, not a map")
        return None
    keys = list(record)
    if any(not isinstance(k, str) for k in keys):
        report.error("keys", f"{where} has a key that is not a string")
        return None
    if not keys or keys[0] != "type":
        report.error("type-first", f"{where}: its first key must be 'type' (readers resynchronise on it)")
    kind = record.get("type")
    if not isinstance(kind, str):
        report.error("type", f"{where}: 'type' must be a string")
        return None
    if kind not in RECORD_TYPES:
        report.warn(
            "unknown-type",
            f"{where}: type {kind!r:.30} is not one of {' '.join(sorted(RECORD_TYPES))} (readers skip it)",
        )
        return kind, record
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        report.error("seq", f"{where} ({kind}): 'seq' must be an int, the record's index in the file")
    elif seq != index:
        report.error(
            "seq", f"{where} ({kind}): seq is {seq}, must be {index} (0 for the first record, +1 each)"
        )
    if not _fits(record.get("time"), (NUM,)):
        report.error("time", f"{where} ({kind}): 'time' must be a number (unix seconds)")
    fields = _FIELDS.get(kind, {})  # a kind this checker does not know yet: the envelope only
    for name, (kinds, required) in fields.items():
        if name not in record:
            if required:
                report.error(f"{kind}-{name}", f"{where} ({kind}): '{name}' is required")
        elif not _fits(record[name], kinds):
            report.error(
                f"{kind}-{name}",
                f"{where} ({kind}): '{name}' must be {' or '.join(kinds)}, not {_kind(record[name])}",
            )
    if kind in _NUMERIC_EXTRA:
        for name, value in record.items():
            if name in fields or name in ("type", "seq", "time"):
                continue
            if not _fits(value, (NUM, NIL)):
                report.error(
                    f"{kind}-value",
                    f"{where} ({kind}): '{str(name)[:40]}' must be a number, not "
                    f"{_kind(value)}" + (" (booleans are never numbers)" if isinstance(value, bool) else ""),
                )
    if kind == "hello" and isinstance(record.get("protocol"), int) and record["protocol"] > PROTOCOL_VERSION:
        report.warn("protocol", f"{where}: protocol {record['protocol']} is newer than {PROTOCOL_VERSION}")
    if kind == "state" and isinstance(record.get("state"), str) and record["state"] not in STATES:
        report.error(
            "state-value", f"{where}: state {record['state']!r:.30} is not one of {' '.join(STATES)}"
        )
    if kind == "hello" and isinstance(record.get("lr_schedule"), dict):
        _check_schedule(report, record["lr_schedule"], where)
    if kind == "hello" and isinstance(record.get("commands"), list):
        bad = [c for c in record["commands"] if not isinstance(c, str)]
        if bad:
            report.error("commands", f"{where}: hello 'commands' must be strings")
    return kind, record


def _check_schedule(report: Report, schedule: dict[str, Any], where: str) -> None:
    """hello `lr_schedule`: a `source` string, `step` ints (increasing) and `lr` numbers >= 0, as many."""
    steps, lrs = schedule.get("step"), schedule.get("lr")
    problem = ""
    if not isinstance(schedule.get("source"), str):
        problem = "'source' must be a string"
    elif not isinstance(steps, list) or not isinstance(lrs, list) or len(steps) != len(lrs):
        problem = "'step' and 'lr' must be arrays of the same length"
    elif not all(_fits(x, (INT,)) for x in steps) or any(b <= a for a, b in pairwise(steps)):
        problem = "'step' must be ints, increasing"
    elif not all(_fits(x, (NUM,)) and 0 <= x < float("inf") for x in lrs):
        problem = "'lr' must be finite numbers >= 0"
    if problem:
        report.error("lr_schedule", f"{where} (hello): lr_schedule {problem}")


# -- status --------------------------------------------------------------------------------------


def _check_status(report: Report) -> dict[str, Any] | None:
    path = report.run_dir / STATUS_FILE
    try:
        with open_regular(path, 1 << 20) as f:
            raw = f.read()
    except FileNotFoundError:
        report.warn("status", f"no {STATUS_FILE} file: required while the run is live (section 4)")
        return None
    except OSError as e:
        report.error("status", f"{STATUS_FILE} cannot be read: {getattr(e, 'strerror', None) or e}")
        return None
    try:
        status = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        report.error(
            "status",
            f"{STATUS_FILE} is not JSON ({str(e)[:80]}); replace it atomically (write a "
            "temporary file, rename it over)",
        )
        return None
    if not isinstance(status, dict):
        report.error("status", f"{STATUS_FILE} must hold a JSON object, not {_kind(status)}")
        return None
    for name, (kinds, required) in _STATUS.items():
        if name not in status:
            if required:
                report.error(f"status-{name}", f"{STATUS_FILE}: '{name}' is required")
        elif not _fits(status[name], kinds):
            report.error(
                f"status-{name}",
                f"{STATUS_FILE}: '{name}' must be {' or '.join(kinds)}, not {_kind(status[name])}",
            )
    state = status.get("state")
    if isinstance(state, str) and state not in STATES:
        report.error("status-state", f"{STATUS_FILE}: state {state!r:.30} is not one of {' '.join(STATES)}")
    if state in LIVE_STATES:
        if not _fits(status.get("updated"), (NUM,)):
            report.error("status-updated", f"{STATUS_FILE}: a live run's status needs 'updated' (unix time)")
        if not pid_alive(status.get("pid"), status.get("updated")):
            report.warn(
                "status-dead",
                f"{STATUS_FILE} says {state} but pid {status.get('pid')} is gone: readers "
                "call the run crashed (write a final state before exiting)",
            )
        elif _fits(status.get("updated"), (NUM,)) and time.time() - float(status["updated"]) > 10:
            report.warn(
                "status-stale",
                f"{STATUS_FILE} was last updated {time.time() - status['updated']:.0f}s "
                "ago: rewrite it about once a second while the run lives",
            )
    elif state in FINAL_STATES and not _fits(status.get("exit_code"), (INT,)):
        report.warn("status-exit", f"{STATUS_FILE}: a final state should carry its 'exit_code'")
    report.checked.append("status")
    return status


def _commands(report: Report, hello: dict[str, Any] | None) -> frozenset[str]:
    listed = hello.get("commands") if hello else None
    if not isinstance(listed, list):
        return frozenset(COMMANDS)
    names = frozenset(c for c in listed if isinstance(c, str))
    unknown = sorted(names - COMMANDS)
    if unknown:
        report.error(
            "commands",
            f"hello lists commands the protocol does not have: {', '.join(unknown)[:120]} "
            f"(known: {', '.join(sorted(COMMANDS))})",
        )
    return names & COMMANDS
