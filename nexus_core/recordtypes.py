"""One type per record kind: what a record may hold, checked once where bytes become records.

Records travel as msgpack maps with "type" first; `RecordDecoder` turns each into one of the Structs
below (msgspec, a tagged union on "type"), so every reader after it uses plain attributes and never
re-checks a field. Unknown fields are ignored (a newer engine still reads); a record whose fields
have the wrong types is skipped with a warning instead of reaching a reader half-valid.

For one release the Structs also answer the dict reads older code used (`rec["step"]`,
`rec.get("loss")`, `"text" in rec`); new code reads attributes.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

from nexus_core.schema import STATES

StateName = Literal["starting", "running", "paused", "checkpointing", "finished", "crashed", "stopped"]
if set(StateName.__args__) != set(STATES):  # the schema and this type must say the same
    raise ImportError("recordtypes.StateName and schema.STATES disagree")


class Record(msgspec.Struct, kw_only=True, tag_field="type", omit_defaults=False):
    """Every record has its kind (`type`), its index in metrics.msgpack (`seq`; -1: not filed, None:
    never from a file) and when it was written (`time`, unix seconds)."""

    seq: int | None = None
    time: float | None = None

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]

    # -- the dict reads of older code (one release) ---------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key == "type":
            return self.type
        if key in self.__struct_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return key == "type" or (key in self.__struct_fields__ and getattr(self, key) is not None)  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        """The record as the plain map it travels as ("type" first)."""
        return {"type": self.type, **msgspec.structs.asdict(self)}


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


class Metric(Record, tag="metric"):
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


class Eval(Record, tag="eval"):
    step: int
    tokens: int = 0
    val_loss: float | None = None
    val_ppl: float | None = None
    best: bool = False


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


class Log(Record, tag="log"):
    text: str
    level: str = "info"


class Alert(Record, tag="alert"):
    """nan | spike | gnorm | oom | disk | crash; a newer engine's kind is shown as it comes."""

    kind: str = ""
    step: int | None = None
    text: str = ""


AnyRecord = Union[Hello, Metric, Eval, Sample, Ckpt, State, Log, Alert]  # noqa: UP007 - a runtime union for msgspec
RECORD_CLASSES: dict[str, type[Record]] = {c.__struct_config__.tag: c for c in AnyRecord.__args__}  # type: ignore[misc]


def to_record(data: Any) -> Record | None:
    """A record from a plain map (tests, a hand-built record); None when it is not a valid one."""
    if isinstance(data, Record):
        return data
    try:
        return msgspec.convert(data, AnyRecord) if isinstance(data, dict) else None
    except msgspec.ValidationError:
        return None
