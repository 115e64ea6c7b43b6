"""`nexus import-tb`: a TensorBoard log folder made into a Nexus run folder, so `nexus runs`, `nexus
compare`, `nexus report`, `nexus export` and the dashboard show it like any other run.

TensorBoard's own reader parses the event files (EventAccumulator, every scalar kept: size guidance
0), so Nexus never re-implements its format. Each folder under LOGDIR holding event files is read;
folders of different runs (LOGDIR/a, LOGDIR/b) become different runs (`NAME-a`, `NAME-b`), while a
run's Keras section folders are parts of it, their tags prefixed with the folder (Keras writes
`train/` and `validation/`), so `validation/epoch_loss` lands in the eval record. hparams become the
config, add_hparams' metrics the summary (summary.json), and histograms, images and text the same
records `import nexus` writes for them (import_tb_extra.py). Per step, tags are routed the way the `nexus`
reporter routes logged keys (nexus/values.py: `loss`, `train/loss` -> loss, `val/loss` -> val_loss,
keys under val/eval/... sections -> the eval record, the rest kept as extra keys).

Everything is read and checked before anything is written, and the folder is written inside a hidden
temporary folder (root/.import-X/NAME: no reader looks there) and renamed into place: bad input (not a
folder, no event files, a corrupt file) leaves no half-made run behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.values import route
from nexus_core import protocol as P
from nexus_core.names import check_run_name
from nexus_core.recordtypes import MAX_EXTRA_KEY_LEN, MAX_EXTRA_KEYS
from nexus_core.runfolder import write_status
from nexus_core.safefile import describe_os_error, open_regular
from nexus_core.units import is_new_best
from nexus_tui.documents.import_tb_extra import Extra, read_hparams, read_media, run_key
from nexus_tui.documents.report.safe import one_line

TB_HINT = "reading TensorBoard logs needs tensorboard: pip install 'nexus[tensorboard]'"


class ImportTBError(ValueError):
    """Why a log folder cannot be imported, in one line that says what to fix."""


@dataclass
class Scalars:
    """Every scalar of a log folder: step -> tag -> (wall time, value), the last write of a step kept."""

    points: dict[int, dict[str, tuple[float, float]]] = field(default_factory=dict)
    files: int = 0
    torn: list[str] = field(default_factory=list)
    """Event files whose last record was cut off (a writer killed mid-write): the rest was read."""
    extra: Extra = field(default_factory=Extra)
    """hparams, summary, histograms, images, text."""

    def add(self, tag: str, step: int, wall: float, value: float) -> None:
        self.points.setdefault(step, {})[tag] = (wall, value)


def _tb() -> tuple[Any, Any, Any]:
    try:
        from tensorboard.backend.event_processing import event_accumulator, io_wrapper
        from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow
    except ImportError as e:
        raise ImportTBError(TB_HINT) from e
    return event_accumulator, io_wrapper, (errors, pywrap_tensorflow)


MAX_EVENT_RECORD = 256 << 20
"""The largest event record read (TensorBoard's reader allocates a record's claimed length at once:
a length field of 2**62 was a MemoryError)."""


def _check_lengths(path: str) -> None:
    """Walk the record lengths of one event file through the file door before TensorBoard's reader
    sees it: a FIFO, device or folder named like an event file is refused (it would block or fail
    deep inside TensorBoard), and so is a record claiming more than MAX_EVENT_RECORD bytes.
    ImportTBError with one line."""
    try:
        with open_regular(path) as f:
            n = 0
            while len(head := f.read(12)) == 12:
                length = int.from_bytes(head[:8], "little")
                if length > MAX_EVENT_RECORD:
                    raise ImportTBError(
                        f"{one_line(path)} is not a readable TensorBoard event file (record {n + 1} "
                        f"claims {length} bytes, more than the {MAX_EVENT_RECORD} allowed)"
                    )
                f.seek(length + 4, os.SEEK_CUR)
                n += 1
    except OSError as e:
        raise ImportTBError(one_line(f"cannot read {describe_os_error(e)}")) from None


def _check_file(path: str, errors: Any, pywrap: Any) -> bool:
    """Walk one event file's record framing (lengths and CRCs), which TensorBoard's reader would stop
    at silently. Raises ImportTBError for a corrupt file; True when only its last record is torn."""
    _check_lengths(path)
    reader = pywrap.PyRecordReader_New(path)
    n = 0
    try:
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                return False
            except errors.DataLossError as e:
                if "truncated record" in str(e) and n:
                    return True
                raise ImportTBError(
                    f"{one_line(path)} is not a readable TensorBoard event file "
                    f"(record {n + 1}: {'cut off' if 'truncated' in str(e) else 'checksum fails'})"
                ) from e
            n += 1
    finally:
        with contextlib.suppress(Exception):
            reader.file_handle.close()


def read_logdir(logdir: Path) -> dict[str, Scalars]:
    """Every run under `logdir` (run key, "" for LOGDIR itself -> its scalars and the rest)."""
    event_accumulator, io_wrapper, (errors, pywrap) = _tb()
    if not logdir.is_dir():
        raise ImportTBError(f"{one_line(logdir)} is not a folder: give the TensorBoard log folder (--logdir)")
    runs: dict[str, Scalars] = {}
    for sub in sorted(io_wrapper.GetLogdirSubdirectories(str(logdir))):
        files = sorted(p for p in os.listdir(sub) if io_wrapper.IsTensorFlowEventsFile(p))
        key, prefix, hparams_folder = run_key(os.path.relpath(sub, logdir))
        out = runs.setdefault(key, Scalars())
        for name in files:
            if _check_file(os.path.join(sub, name), errors, pywrap):
                out.torn.append(name)
        out.files += len(files)
        read_hparams(sub, files, out.extra)
        acc = event_accumulator.EventAccumulator(
            sub, size_guidance={"scalars": 0, "tensors": 0, "histograms": 0, "images": 0}
        )
        acc.Reload()
        tags = acc.Tags()
        if hparams_folder:  # add_hparams' metric_dict: the run's summary, not a series
            for tag in tags.get("scalars", []):
                events = acc.Scalars(tag)
                if events:
                    out.extra.summary[_key(prefix + tag)] = events[-1].value
            continue
        for tag in tags.get("scalars", []):
            for ev in acc.Scalars(tag):
                out.add(prefix + tag, ev.step, ev.wall_time, ev.value)
        for tag in tags.get("tensors", []):
            if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
                continue
            from tensorboard.util import tensor_util

            for ev in acc.Tensors(tag):
                arr = tensor_util.make_ndarray(ev.tensor_proto)
                if arr.size == 1 and arr.dtype.kind in "iuf":
                    out.add(prefix + tag, ev.step, ev.wall_time, float(arr.reshape(-1)[0]))
        read_media(acc, prefix, out.extra)
    if not sum(r.files for r in runs.values()):
        raise ImportTBError(f"no TensorBoard event files (events.out.tfevents.*) under {one_line(logdir)}")
    runs = {k: r for k, r in runs.items() if r.points or r.extra.records}
    if not runs:
        raise ImportTBError(f"the event files under {one_line(logdir)} hold no scalars to import")
    return runs


def _key(tag: str) -> str:
    """A tag as a series name every Nexus reader keeps: printable, at most MAX_EXTRA_KEY_LEN."""
    text = "".join(ch for ch in tag if ch.isprintable()).strip()
    return text[:MAX_EXTRA_KEY_LEN] or "unnamed"


def to_records(scalars: Scalars, name: str, logdir: Path) -> list[dict[str, Any]]:
    """hello, one metric and/or eval record per step, and a closing `finished` state."""
    media: dict[int, list[dict[str, Any]]] = {}
    for rec in scalars.extra.records:
        media.setdefault(int(rec["step"]), []).append(rec)
    steps = sorted(set(scalars.points) | set(media))
    walls = [w for s in scalars.points for w, _ in scalars.points[s].values()] + [
        float(r["time"]) for r in scalars.extra.records
    ]
    out: list[dict[str, Any]] = [
        {
            "type": P.HELLO,
            "time": min(walls),
            "run": name,
            "source": "tensorboard",
            "total_steps": steps[-1],
            "start_step": 0,
            "model": "imported from TensorBoard",
            "corpus": "",
            "commands": [],
            "meta": {"logdir": str(logdir)},
            "config": dict(scalars.extra.config),
        }
    ]
    best: float | None = None
    tokens: int | None = None
    for step in steps:
        tags = scalars.points.get(step, {})
        out += media.get(step, [])
        if not tags:
            continue
        values = {_key(tag): value for tag, (_, value) in tags.items()}
        at = min(w for w, _ in tags.values())
        metric, evals = route(values)
        if "tokens" in metric:
            raw = metric.pop("tokens")
            if math.isfinite(raw) and raw >= 0:
                tokens = int(raw)
        if metric:
            rec = {"type": P.METRIC, "step": step, "time": at, **_bounded(metric)}
            if tokens is not None:
                rec["tokens"] = tokens
            out.append(rec)
        if evals:
            rec = {"type": P.EVAL, "step": step, "time": at, **_bounded(evals)}
            if tokens is not None:
                rec["tokens"] = tokens
            val = rec.get("val_loss")
            if isinstance(val, float) and math.isfinite(val):
                rec["best"] = is_new_best(val, best)
                best = val if rec["best"] else best
            out.append(rec)
    out.append(
        {
            "type": P.STATE,
            "time": max(walls),
            "state": P.FINISHED,
            "step": steps[-1],
            "reason": "imported from TensorBoard",
        }
    )
    return out


def _bounded(values: dict[str, float]) -> dict[str, float]:
    """At most MAX_EXTRA_KEYS keys per record (the decoders' limit), as floats."""
    return {k: float(v) for k, v in list(values.items())[:MAX_EXTRA_KEYS]}


def import_logdir(
    logdir: str | Path, root: str | Path, name: str | None = None
) -> list[tuple[Path, Scalars]]:
    """Read `logdir`, then write each run in it as a finished run: root/NAME (one run), or
    root/NAME-<folder> for each of several. Raises ImportTBError for bad input or a name that is
    taken (before anything is written), OSError when a folder cannot be written (that run's
    folder is not left half made)."""
    logdir, root = Path(logdir), Path(root)
    base = name or _default_name(logdir)
    if why := check_run_name(base):
        raise ImportTBError(f"{why}: pick one with --name")
    runs = read_logdir(logdir)
    named = {
        (base if len(runs) == 1 or not key else f"{base}-{key.replace('/', '-')}"[:64]): r
        for key, r in sorted(runs.items())
    }
    for run_name in named:
        if why := check_run_name(run_name):
            raise ImportTBError(f"{why}: pick one with --name")
        if (root / run_name).exists():
            raise ImportTBError(f"{one_line(root / run_name)} already exists: pick another name with --name")
    return [(_write_run(root, run_name, scalars, logdir), scalars) for run_name, scalars in named.items()]


def _write_run(root: Path, name: str, scalars: Scalars, logdir: Path) -> Path:
    import json

    from nexus_core.safefile import write_new

    target = root / name
    records = to_records(scalars, name, logdir.resolve())
    root.mkdir(parents=True, exist_ok=True)
    # Built one level down (root/.import-X/NAME), where neither `nexus runs` nor a live dashboard's
    # watcher looks for runs, then moved into place whole.
    hidden = Path(tempfile.mkdtemp(prefix=f".import-{name}.", dir=root))
    tmp = hidden / name
    try:
        tmp.mkdir()
        if scalars.extra.files:
            (tmp / P.MEDIA_DIR).mkdir()
            for path, data in scalars.extra.files.items():
                write_new(tmp / path, data)
        if scalars.extra.summary:
            write_new(
                tmp / "summary.json", json.dumps(scalars.extra.summary, indent=1, sort_keys=True).encode()
            )
        writer = P.RecordWriter(tmp / P.METRICS_FILE)
        try:
            for rec in records:
                writer.write(rec)
        finally:
            writer.close()
        evals = [
            r["val_loss"]
            for r in records
            if r["type"] == P.EVAL and "val_loss" in r and math.isfinite(r["val_loss"])
        ]
        write_status(
            tmp,
            {
                "state": P.FINISHED,
                "step": records[-1]["step"],
                "total_steps": records[-1]["step"],
                "best_val_loss": min(evals) if evals else None,
                "model": records[0]["model"],
                "device": "",
                "pid": None,
                "source": "tensorboard",
            },
        )
        os.rename(tmp, target)  # fails if the name was taken meanwhile: never merges into a run
    finally:
        shutil.rmtree(hidden, ignore_errors=True)
    return target


def _default_name(logdir: Path) -> str:
    """The log folder's own name, cleaned to the run-name rule."""
    import re

    base = re.sub(r"[^A-Za-z0-9._-]", "-", logdir.resolve().name).lstrip("._-")[:64]
    return base or "tensorboard"
