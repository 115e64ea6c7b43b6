"""One type per record kind: what a record may hold, checked once where bytes become records.

Records travel as msgpack maps with "type" first; `RecordDecoder` turns each into one of the Structs
below (msgspec, a tagged union on "type"), so every reader after it uses plain attributes and never
re-checks a field. Unknown fields are ignored (a newer engine still reads); a record whose fields
have the wrong types is skipped with a warning instead of reaching a reader half-valid.

For one release the Structs also answer the dict reads older code used (`rec["step"]`,
`rec.get("loss")`, `"text" in rec`); new code reads attributes.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Union, get_args

import msgspec

from nexus_core.schema import StateName
from nexus_core.units import is_real


class Record(msgspec.Struct, kw_only=True, tag_field="type", omit_defaults=False):
    """Every record has its kind (`type`), its index in metrics.msgpack (`seq`; -1: not filed, None:
    never from a file) and when it was written (`time`, unix seconds)."""

    seq: int | None = None
    time: float | None = None

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)  # every kind is declared with a str tag

    # -- the dict reads of older code (one release) ---------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key == "type":
            return self.type
        if key in self.__struct_fields__:
            return getattr(self, key)
        return self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return (
            key == "type"
            or key in self.extra
            or (key in self.__struct_fields__ and getattr(self, key) is not None)
        )

    extra: ClassVar[Any] = MappingProxyType({})
    """Numeric keys beyond the kind's fields (metric and eval records: any series a writer logs,
    `train/acc`), filled in by the decoder; empty on every other record."""

    def set_extra(self, extra: dict[str, float]) -> None:
        """Give this record its extra numbers (a Metric or an Eval: the kinds that carry a __dict__)."""
        self.__dict__["extra"] = extra

    def to_dict(self) -> dict[str, Any]:
        """The record as the plain map it travels as ("type" first)."""
        return {"type": self.type, **msgspec.structs.asdict(self), **self.extra}


class Hello(Record, tag="hello"):
    """The first record of every start and resume: who is writing and what it trains."""

    run: str = ""
    protocol: int = 1
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    pid: int | None = None
    device: str = ""
    device_name: str = ""
    """The device in words, e.g. "cuda:0 NVIDIA H100 80GB HBM3"."""
    params: int | None = None
    total_steps: int = 0
    start_step: int = 0
    model: str = ""
    resumed_from: str | None = None
    corpus: str = ""
    """What the data is, in words (files, bytes, split)."""
    unigram_entropy: float | None = None
    """Entropy of the corpus's token frequencies (nats): the loss a model that ignores context reaches."""
    tokens_per_step: int | None = None
    world_size: int = 1
    source: str = ""
    """"reporter" for a run written by `nexus.init()`; "" for the engine."""
    commands: list[str] | None = None
    """The commands this run takes (None: all of them, as the engine does)."""
    stop: str = ""
    lacking: dict[str, str] | None = None
    """command -> what would make it work on this run (a writer that knows, e.g. an adapter without
    an eval set); the dashboard's refusal quotes it."""
    """What `stop` does to this run (a reported script): "flag" (its loop reads should_stop and ends
    itself) or "interrupt" (a KeyboardInterrupt at its next log()); "": the writer did not say."""
    argv: list[str] | None = None
    meta: dict[str, Any] | None = None
    lr_schedule: dict[str, Any] | None = None
    """The LR schedule's future, as the writer knows it: `source` (what it is, or "unknown: why"),
    `step` and `lr` (the peak group's raw LR at those steps; empty when unknown)."""


class Metric(Record, tag="metric", dict=True, forbid_unknown_fields=True):
    """One optimizer step. `loss` is what was minimised, `ce` the pure cross-entropy; mem in bytes."""

    step: int
    tokens: int = 0
    loss: float | None = None
    ce: float | None = None
    lr: float | None = None
    gnorm: float | None = None
    tok_s: float | None = None
    step_s: float | None = None
    mem: float | None = None


class Eval(Record, tag="eval", dict=True, forbid_unknown_fields=True):
    step: int
    tokens: int = 0
    val_loss: float | None = None
    val_ppl: float | None = None
    best: bool = False


_POSITION = ("seq", "time", "step", "tokens")
METRIC_VALUES: tuple[str, ...] = tuple(k for k in Metric.__struct_fields__ if k not in _POSITION)
"""A metric record's standard numbers in the order Metric declares them (loss ... step_s, mem): the
one table of metric keys, read by the columnar blocks, the store's series, export and the report."""
EVAL_VALUES: tuple[str, ...] = tuple(k for k in Eval.__struct_fields__ if k not in (*_POSITION, "best"))
"""An eval record's standard numbers (val_loss, val_ppl)."""


class Sample(Record, tag="sample"):
    text: str
    step: int = 0
    prompt: str = ""
    requested: bool = False


class Ckpt(Record, tag="ckpt"):
    path: str
    step: int = 0
    best: bool = False
    val_loss: float | None = None


class State(Record, tag="state"):
    state: StateName
    step: int | None = None
    reason: str = ""
    exit_code: int | None = None
    total_steps: int | None = None
    """The schedule's total now, when it changed (a live ramp can move the end of the run)."""


class Log(Record, tag="log"):
    text: str
    level: str = "info"


class Alert(Record, tag="alert"):
    """nan | spike | gnorm | oom | disk | crash; a newer engine's kind is shown as it comes."""

    kind: str = ""
    step: int | None = None
    text: str = ""


class Text(Record, tag="text"):
    """A string the script logged under `key` (wandb.log({"note": "..."})), kept by step."""

    key: str
    text: str
    step: int = 0


class Table(Record, tag="table"):
    """A wandb.Table (or a plot.* chart's data) at a step: column names and rows of plain cells
    (numbers, text, None; anything else as its text), at most MAX_TABLE_CELLS cells."""

    key: str
    columns: list[str]
    rows: list[list[Any]]
    step: int = 0
    chart: str = ""
    """What wandb.plot.* drew from it ("line", "scatter", "bar", "confusion_matrix"...); "" for a table."""


class Histogram(Record, tag="histogram"):
    """A distribution at a step (wandb.Histogram, a logged tensor with more than one element, a
    watched layer's gradients): `edges` has one more entry than `counts`."""

    key: str
    edges: list[float]
    counts: list[float]
    step: int = 0


class Media(Record, tag="media"):
    """A file the script logged (wandb.Image, Audio, Video, Html...): `path` is relative to the run
    folder (under media/), `kind` says what it is; width/height for pictures."""

    key: str
    kind: str
    path: str = ""
    caption: str = ""
    width: int | None = None
    height: int | None = None
    step: int = 0


MAX_TABLE_CELLS = 60_000
"""Cells a table record holds (readers decode at most 65 536 rows, and a record under 1 MiB)."""
MAX_HISTOGRAM_BINS = 512

AnyRecord = Union[Hello, Metric, Eval, Sample, Ckpt, State, Log, Alert, Text, Table, Histogram, Media]  # noqa: UP007 - a runtime union for msgspec
RECORD_CLASSES: dict[str, type[Record]] = {c.__struct_config__.tag: c for c in get_args(AnyRecord)}


class _LenientMetric(Metric, tag="metric", forbid_unknown_fields=False):
    """A metric map with keys beyond Metric's: decoded leniently, then made a Metric plus extras."""


class _LenientEval(Eval, tag="eval", forbid_unknown_fields=False):
    """An eval map with keys beyond Eval's."""


LENIENT_RECORD = Union[  # noqa: UP007 - a runtime union of Structs (msgspec's decode type)
    Hello,
    _LenientMetric,
    _LenientEval,
    Sample,
    Ckpt,
    State,
    Log,
    Alert,
    Text,
    Table,
    Histogram,
    Media,
]
"""What the decoder falls back to when AnyRecord refuses a map: Metric and Eval forbid unknown keys so
the engine's records decode in one pass, and a map with more keys comes here (a newer writer's field,
a reporter's own series)."""
MAX_EXTRA_KEYS = 512
MAX_EXTRA_KEY_LEN = 200


def extras_of(record: Record, plain: Any) -> dict[str, float]:
    """The numeric keys of a metric/eval map beyond its kind's fields: a series name a person could
    type (printable, at most MAX_EXTRA_KEY_LEN), a real number (not a bool), at most MAX_EXTRA_KEYS."""
    if not isinstance(plain, dict):
        return {}
    fields = record.__struct_fields__
    out: dict[str, float] = {}
    for key, value in plain.items():
        if (
            isinstance(key, str)
            and key not in fields
            and key != "type"
            and 0 < len(key) <= MAX_EXTRA_KEY_LEN
            and key.isprintable()
            and is_real(value)
        ):
            out[key] = float(value)
            if len(out) >= MAX_EXTRA_KEYS:
                break
    return out


def to_record(data: Any) -> Record | None:
    """A record from a plain map (tests, a hand-built record); None when it is not a valid one."""
    if isinstance(data, Record):
        return data
    if not isinstance(data, dict):
        return None
    try:
        record: Record = msgspec.convert(data, AnyRecord)
        return record
    except msgspec.ValidationError:
        pass
    try:
        return with_extras(msgspec.convert(data, LENIENT_RECORD), data)
    except msgspec.ValidationError:
        return None


def with_extras(record: Record, plain: Any) -> Record:
    """A leniently decoded record as its kind's own type, a metric's or eval's extra numbers kept."""
    if isinstance(record, (_LenientMetric, _LenientEval)):
        base = Metric if isinstance(record, Metric) else Eval
        record = base(**msgspec.structs.asdict(record))
        if extra := extras_of(record, plain):
            record.set_extra(extra)
    return record
