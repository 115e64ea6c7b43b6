"""Run configuration: dataclasses, TOML presets, `section.key=value` overrides, validation.

Every value a run depends on lives here, so `config.toml` in a run folder (every default written out)
is enough to rebuild the run. Validation happens before any tensor is made, so a bad value costs a
one-line error instead of a crash minutes into training.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import tomli_w

from nexus_core.errors import ConfigError
from nexus_core.names import RUN_NAME_RULE, run_name_ok
from nexus_core.safefile import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INT64_MAX = 2**63 - 1
MAX_STEPS = 10**10
"""The most steps a run may have; the same limit as a ramp's new total (schema.COMMAND_ARGS)."""
MAX_LIST = 1024


@dataclass(frozen=True)
class Range:
    """The limits of one numeric field, declared beside it: `Annotated[float, Range(0, 1, hi_open=True)]`.

    `validate()` checks every field against its Range (and every float for being finite, every int for
    fitting in int64), so a value that would fail minutes into a run (an LR of 1e39, a negative top-k
    at the first sample, a seed torch cannot take) fails before any tensor exists, in one line."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    hint: str = ""
    """Said after the limits, e.g. " (0 = off)"."""

    def holds(self, v: float) -> bool:
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def text(self) -> str:
        lo, hi = _num(self.lo), _num(self.hi)
        if not (self.lo_open or self.hi_open):
            return f"between {lo} and {hi}{self.hint}"
        return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}{self.hint}"


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e7 else f"{v:g}"


def R(lo: float, hi: float, **kw: Any) -> Range:  # noqa: N802 - reads like the type it annotates
    return Range(lo, hi, **kw)


Unit = Annotated[float, R(0.0, 1.0)]
"""A fraction in [0, 1]."""
Beta = Annotated[float, R(0.0, 1.0, hi_open=True)]
"""A moving-average coefficient: 1 would never move."""
Weight = Annotated[float, R(0.0, 100.0)]
Layers = Annotated[list[int], R(0, 1023)]
LR = Annotated[float, R(0.0, 1e30, lo_open=True)]
"""Past 1e30 an LR is no longer a float32 number once it meets a gradient (1e39 is inf in float32).
Below that, an LR that makes the loss blow up is nan_policy's job: the run pauses with an alert (the
nan tests use 1e30 to make that happen for real); a ramp's target is capped at 10 (COMMAND_ARGS)."""
Count = Annotated[int, R(1, 1 << 20)]


@dataclass
class ModelConfig:
    """The network. `family` picks the model module; the other fields are shared or family options."""

    family: Literal["transformer", "hybrid", "engram", "lstm"] = "transformer"
    """transformer | hybrid | engram | lstm"""
    vocab_size: Annotated[int, R(0, 1 << 20)] = 0
    """0 = take it from the tokenizer (256 for bytes, data.bpe_vocab for BPE)."""
    d_model: Annotated[int, R(1, 1 << 16)] = 128
    n_layers: Annotated[int, R(1, 1024)] = 4
    n_heads: Annotated[int, R(1, 1024)] = 4
    n_kv_heads: Annotated[int, R(1, 1024)] = 2
    """Grouped-query attention: each KV head serves n_heads / n_kv_heads query heads."""
    d_ff: Annotated[int, R(0, 1 << 20)] = 0
    """SwiGLU hidden width; 0 = 8/3 * d_model rounded up to a multiple of 32."""
    seq_len: Annotated[int, R(1, 1 << 20)] = 128
    dropout: Annotated[float, R(0.0, 1.0, hi_open=True)] = 0.0
    tie_embeddings: bool = True
    rope_base: Annotated[float, R(1.0, 1e12, lo_open=True)] = 10000.0
    mtp_heads: Annotated[int, R(0, 16)] = 0
    """Extra multi-token-prediction heads (head k predicts token t+1+k); 0 = off."""
    mtp_weight: Weight = 0.3
    """lambda in L = CE_main + (lambda / D) * sum_k CE_k."""
    # Family options (hybrid / engram / lstm / transformer variants).
    attn_every: Annotated[int, R(0, 1024)] = 8
    """hybrid: layer i is attention when i % attn_every == attn_offset, else SSM."""
    attn_offset: Annotated[int, R(0, 1024)] = 4
    ssm_state: Annotated[int, R(0, 4096)] = 16
    ssm_expand: Annotated[int, R(0, 64)] = 2
    ssm_conv: Annotated[int, R(0, 64)] = 4
    ssm_chunk: Annotated[int, R(0, 1 << 16)] = 32
    engram_layers: Layers = field(default_factory=lambda: [1])
    engram_orders: Annotated[list[int], R(0, 64)] = field(default_factory=lambda: [2, 3])
    engram_table_mult: Annotated[int, R(0, 1024)] = 8
    """Each hashed n-gram table has about table_mult * vocab_size rows."""
    lstm_levels: Annotated[list[int], R(0, 1 << 20)] = field(default_factory=lambda: [1, 16, 256])
    """Update period (in steps) of each nested level."""
    surprise_weight: Weight = 0.0
    hc_streams: Annotated[int, R(0, 64)] = 0
    """mHC-lite residual streams; 0 = plain residual."""
    loop_count: Annotated[int, R(1, 64)] = 1
    """Repeat the block stack this many times with shared weights."""
    wavelet_layers: Layers = field(default_factory=list)
    """Layers whose token mixing is a causal Haar-wavelet layer instead of attention."""

    def resolved_d_ff(self) -> int:
        if self.d_ff > 0:
            return self.d_ff
        return ((8 * self.d_model // 3) + 31) // 32 * 32


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes tokens."""

    source: str = "stdlib"
    """'stdlib' (the Python standard library's own .py files) or a path to a text file or folder."""
    tokenizer: Literal["byte", "bpe"] = "byte"
    """byte (vocab 256) | bpe (trained with `tokenizers`, saved in the run folder)."""
    bpe_vocab: Annotated[int, R(0, 1 << 20)] = 2048
    val_fraction: Annotated[float, R(0.0, 0.5, lo_open=True, hi_open=True)] = 0.05
    """Fraction of files (file-level split, deterministic) held out for evaluation."""
    max_bytes: Annotated[int, R(0, 1 << 50, hint=" (0 = all)")] = 0
    """Cap on corpus bytes read (0 = all); keeps CPU presets quick to start."""


@dataclass
class OptimConfig:
    """Optimizer. Muon takes 2-D hidden weights; `fallback` takes the rest."""

    name: Literal["adamw", "muon", "lion"] = "adamw"
    """adamw | muon | lion"""
    lr: LR = 3e-3
    """Peak LR of the AdamW/Lion groups; the schedule multiplies every group's LR alike."""
    weight_decay: Weight = 0.1
    beta1: Beta = 0.9
    beta2: Beta = 0.95
    eps: Annotated[float, R(0.0, 1.0, lo_open=True)] = 1e-8
    muon_lr: LR = 0.02
    muon_weight_decay: Weight = 0.0
    """Decoupled weight decay of the Muon groups. 0 as in the reference Muon: at lr 0.02 the AdamW
    groups' weight_decay would shrink the hidden matrices ~7x faster than it shrinks the rest."""
    muon_momentum: Beta = 0.95
    muon_ns_steps: Annotated[int, R(1, 100)] = 5
    fallback: Literal["adamw", "lion"] = "adamw"
    """Optimizer for non-Muon params when name = muon: adamw | lion."""
    grad_clip: Annotated[float, R(0.0, 1e6, hint=" (0 = off)")] = 1.0
    """Clip the global grad norm to this (0 = off); the reported gnorm is before clipping."""


@dataclass
class ScheduleConfig:
    """LR schedule, as a multiplier on each group's peak LR."""

    name: Literal["cosine", "wsd", "constant"] = "cosine"
    """cosine | wsd | constant"""
    warmup_steps: Annotated[int, R(0, MAX_STEPS)] = 20
    min_lr_ratio: Unit = 0.1
    decay_fraction: Annotated[float, R(0.0, 1.0, lo_open=True)] = 0.2
    """wsd: fraction of the run spent decaying at the end."""
    decay_shape: Literal["linear", "sqrt", "exp"] = "linear"
    """wsd: linear | sqrt (1 - sqrt) | exp"""


@dataclass
class TrainConfig:
    """The loop: length, batch, device, and how often to eval, sample and checkpoint."""

    steps: Annotated[int, R(1, MAX_STEPS)] = 200
    """Total steps of the schedule."""
    batch_size: Count = 16
    grad_accum: Count = 1
    label_smoothing: Annotated[float, R(0.0, 1.0, hi_open=True)] = 0.0
    device: str = "auto"
    """auto | cpu | cuda | cuda:N | mps"""
    threads: Annotated[int, R(0, 4096, hint=" (0 = torch's default)")] = 0
    """CPU threads for torch (0 = torch's default); lets two CPU runs share a machine."""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """auto (bf16 autocast on CUDA, fp32 elsewhere) | fp32 | bf16"""
    compile: bool = False
    seed: Annotated[int, R(0, INT64_MAX)] = 1337
    eval_every: Annotated[int, R(0, MAX_STEPS, hint=" (0 = never)")] = 50
    eval_batches: Count = 8
    sample_every: Annotated[int, R(0, MAX_STEPS, hint=" (0 = never)")] = 100
    sample_prompt: str = "def "
    sample_tokens: Annotated[int, R(0, 4096)] = 80
    sample_temperature: Annotated[float, R(0.0, 5.0, hint=" (0 = greedy)")] = 0.8
    sample_top_k: Annotated[int, R(0, 1 << 20, hint=" (0 = off)")] = 40
    ckpt_every: Annotated[int, R(0, MAX_STEPS, hint=" (0 = never)")] = 100
    keep_last: Annotated[int, R(1, 1 << 20)] = 3
    save_best: bool = True
    """Also checkpoint at every eval that sets a new best val loss, so `best` is truly the best."""
    nan_policy: Literal["pause", "skip", "rollback"] = "pause"
    """What a NaN/inf loss does: pause | skip | rollback."""
    deterministic: bool = False
    """Deterministic kernels where torch has them (torch.use_deterministic_algorithms, warn-only, and a
    fixed cuBLAS workspace), so a resumed GPU run can be compared step for step; a little slower."""
    signals_every: Annotated[int, R(0, MAX_STEPS, hint=" (0 = never)")] = 1
    """How often a metric record also carries the engine's own series: the model's signals (MTP heads'
    CE, the LSTM's surprise) and each param group's grad norm. Records with extra keys take the
    dashboard's per-record path when a history is opened, so a run of a million steps opens faster
    with this at 0."""


@dataclass
class Config:
    """A whole run's configuration."""

    name: str = "run"
    preset: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def validate(self) -> Config:
        """Raise ConfigError with one line that says what to fix; return self when fine."""
        m, d, o, s, t = self.model, self.data, self.optim, self.schedule, self.train
        sections = [(name, getattr(self, name)) for name in SECTIONS]
        for name, section in sections:
            check_fields(name, section, ranges=False)  # types and choices first: the checks below compare
        for name, value in (
            ("model.d_model", m.d_model), ("model.n_layers", m.n_layers), ("model.n_heads", m.n_heads),
            ("model.n_kv_heads", m.n_kv_heads), ("model.seq_len", m.seq_len), ("model.loop_count", m.loop_count),
            ("train.steps", t.steps), ("train.batch_size", t.batch_size), ("train.grad_accum", t.grad_accum),
            ("train.eval_batches", t.eval_batches), ("train.keep_last", t.keep_last),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if m.n_heads % m.n_kv_heads:
            raise ConfigError(
                f"model.n_heads ({m.n_heads}) must be divisible by model.n_kv_heads ({m.n_kv_heads})"
            )
        if m.d_model % m.n_heads:
            raise ConfigError(f"model.d_model ({m.d_model}) must be divisible by model.n_heads ({m.n_heads})")
        if (m.d_model // m.n_heads) % 2:
            raise ConfigError(f"head size d_model/n_heads = {m.d_model // m.n_heads} must be even (rotary)")
        if m.mtp_heads < 0:
            raise ConfigError(f"model.mtp_heads must be 0 or more, got {m.mtp_heads}")
        check_family_options(m)
        if d.tokenizer == "byte" and m.vocab_size not in (0, 256):
            raise ConfigError(f"model.vocab_size is {m.vocab_size} but the byte tokenizer has 256 symbols")
        if d.tokenizer == "bpe" and not 260 <= d.bpe_vocab <= 65536:
            raise ConfigError(f"data.bpe_vocab must be between 260 and 65536, got {d.bpe_vocab}")
        if d.tokenizer == "bpe" and m.vocab_size not in (0, d.bpe_vocab):
            raise ConfigError(f"model.vocab_size ({m.vocab_size}) must equal data.bpe_vocab ({d.bpe_vocab})")
        if not 0.0 < d.val_fraction < 0.5:
            raise ConfigError(f"data.val_fraction must be in (0, 0.5), got {d.val_fraction}")
        if d.max_bytes < 0:
            raise ConfigError(f"data.max_bytes must be 0 (all) or positive, got {d.max_bytes}")
        if o.lr <= 0 or o.muon_lr <= 0:
            raise ConfigError("optim.lr and optim.muon_lr must be positive")
        if o.weight_decay < 0 or o.muon_weight_decay < 0:
            raise ConfigError(
                f"optim.weight_decay ({o.weight_decay}) and optim.muon_weight_decay ({o.muon_weight_decay}) "
                "must be 0 (off) or positive"
            )
        if not 0.0 <= t.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing must be in [0, 1), got {t.label_smoothing}")
        if not 0.0 <= s.min_lr_ratio <= 1.0:
            raise ConfigError(f"schedule.min_lr_ratio must be in [0, 1], got {s.min_lr_ratio}")
        if not 0.0 < s.decay_fraction <= 1.0:
            raise ConfigError(f"schedule.decay_fraction must be in (0, 1], got {s.decay_fraction}")
        if s.warmup_steps < 0:
            raise ConfigError(f"schedule.warmup_steps must be 0 or more, got {s.warmup_steps}")
        if t.threads < 0:
            raise ConfigError(f"train.threads must be 0 (default) or more, got {t.threads}")
        dev = t.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {dev!r}")
        if not isinstance(self.name, str) or not run_name_ok(self.name):
            raise ConfigError(f"run name {self.name!r}: use {RUN_NAME_RULE}")
        for name, section in sections:
            check_fields(name, section, ranges=True)
        return self


MAX_HC_STREAMS = 4
"""Hyper-connection streams beyond 4 cost memory with no reported gain (mHC uses 4)."""
MAX_ENGRAM_ORDER = 8


def check_family_options(m: ModelConfig) -> None:
    """The family options, checked here so a typo fails in 0.1 s, not at model build after torch loads.

    Only the chosen family's options are checked (an lstm run ignores engram_layers), except the
    transformer variants, which every family must leave off (the model refuses them by name).
    """
    if m.mtp_weight < 0:
        raise ConfigError(f"model.mtp_weight must be 0 or positive, got {m.mtp_weight}")
    if m.surprise_weight < 0:
        raise ConfigError(f"model.surprise_weight must be 0 (off) or positive, got {m.surprise_weight}")
    if not 0 <= m.hc_streams <= MAX_HC_STREAMS:
        raise ConfigError(f"model.hc_streams must be 0 (off) or 1..{MAX_HC_STREAMS}, got {m.hc_streams}")
    bad = [i for i in m.wavelet_layers if not 0 <= i < m.n_layers]
    if bad:
        raise ConfigError(f"model.wavelet_layers {m.wavelet_layers} names layers outside 0..{m.n_layers - 1}: {bad}")
    if m.family != "transformer":
        for name, value, off in (("mtp_heads", m.mtp_heads, 0), ("hc_streams", m.hc_streams, 0),
                                 ("loop_count", m.loop_count, 1), ("wavelet_layers", m.wavelet_layers, [])):
            if value != off:
                raise ConfigError(f"model.{name} = {value} is not supported by the {m.family} family; "
                                  f"set it to {off} or use model.family = transformer")
    if m.family == "hybrid":
        for name in ("ssm_state", "ssm_expand", "ssm_conv", "ssm_chunk", "attn_every"):
            if getattr(m, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(m, name)}")
        if not 0 <= m.attn_offset < m.attn_every:
            raise ConfigError(f"model.attn_offset must be in [0, attn_every) = [0, {m.attn_every}), got {m.attn_offset}")
    if m.family == "engram":
        if not m.engram_layers or any(not 0 <= i < m.n_layers for i in m.engram_layers):
            raise ConfigError(
                f"model.engram_layers {m.engram_layers} must name layers in 0..{m.n_layers - 1} (at least one)"
            )
        orders = m.engram_orders
        if not orders or len(set(orders)) != len(orders) or any(not 2 <= n <= MAX_ENGRAM_ORDER for n in orders):
            raise ConfigError(f"model.engram_orders {orders} must be distinct n-gram sizes in 2..{MAX_ENGRAM_ORDER}")
        if m.engram_table_mult < 1:
            raise ConfigError(f"model.engram_table_mult must be at least 1, got {m.engram_table_mult}")
    if m.family == "lstm":
        if not m.lstm_levels or any(c < 1 for c in m.lstm_levels):
            raise ConfigError(f"model.lstm_levels must be a non-empty list of periods >= 1, got {m.lstm_levels}")
        if m.lstm_levels[0] != 1:
            raise ConfigError(
                f"model.lstm_levels must start with 1 (the first level, which also holds the embedding and "
                f"head, learns every step), got {m.lstm_levels}"
            )


_HINTS: dict[type, dict[str, Any]] = {}


def field_limits(section: Any) -> dict[str, tuple[Any, Range | None, tuple[str, ...]]]:
    """Each field of a config section: (its base type, its declared Range, its Literal choices)."""
    cls = type(section)
    if cls not in _HINTS:
        out: dict[str, Any] = {}
        for name, hint in get_type_hints(cls, include_extras=True).items():
            rng = None
            if get_origin(hint) is Annotated:
                hint, *meta = get_args(hint)
                rng = next((m for m in meta if isinstance(m, Range)), None)
            choices: tuple[str, ...] = ()
            if get_origin(hint) is Literal:
                choices, hint = get_args(hint), str
            out[name] = (get_origin(hint) or hint, rng, choices)
        _HINTS[cls] = out
    return _HINTS[cls]


def check_fields(section_name: str, section: Any, ranges: bool = True) -> None:
    """Every field of one section against its declared type, choices and (if `ranges`) limits: a
    float must be finite, an int must fit in int64 (torch's limit) and both inside their Range."""
    for key, (kind, rng, choices) in field_limits(section).items():
        name, value = f"{section_name}.{key}", getattr(section, key)
        if choices:
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        elif kind is list:
            if not isinstance(value, list) or len(value) > MAX_LIST or not all(_is_int(x) for x in value):
                raise ConfigError(f"{name} must be a list of at most {MAX_LIST} integers, got {_short(value)}")
            bad = [x for x in value if rng is not None and not rng.holds(x)]
            if ranges and bad and rng is not None:
                raise ConfigError(f"{name}: every entry must be {rng.text()}, got {bad[0]} in {value}")
        elif kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
        elif kind is int:
            if not _is_int(value):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            limits = rng or Range(-INT64_MAX - 1, INT64_MAX)
            if ranges and not limits.holds(value):
                raise ConfigError(f"{name} must be {limits.text()}, got {value}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if ranges and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number{'' if rng is None else ' ' + rng.text()}, "
                                  f"got {value}")
            if ranges and rng is not None and not rng.holds(value):
                raise ConfigError(f"{name} must be {rng.text()}, got {value!r}")
        elif kind is str and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:60] + "…"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


SECTIONS = ("model", "data", "optim", "schedule", "train")


def preset_folders() -> list[Path]:
    """Where presets live: nexus_core/presets, then engine/presets (kept one release for presets added
    there before the move; found as files beside this package, never by importing the engine)."""
    here = Path(str(resources.files("nexus_core")))
    return [d for d in (here / "presets", here.parent / "engine" / "presets") if d.is_dir()]


def _preset_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in preset_folders():
        for p in sorted(folder.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def preset_names() -> list[str]:
    """Names of the TOML presets shipped in nexus_core/presets."""
    return sorted(_preset_files())


def load_preset(name: str) -> Config:
    """The defaults with a shipped preset applied."""
    files = _preset_files()
    if name not in files:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(files))}")
    cfg = from_mapping(tomllib.loads(files[name].read_text()), origin=f"preset {name}")
    cfg.preset = name
    return cfg


def read_toml(path: str | Path) -> dict[str, Any]:
    """The one TOML file reader (tomllib, or tomli on Python 3.10): a mapping, or one ConfigError line.
    Bounded like every run-folder reader: a regular file of at most 4 MiB (a FIFO or /dev/zero is
    refused, not read forever), a UTF-8 BOM is dropped (editors on Windows write one), and nesting
    deep enough to exhaust the parser's stack is one ConfigError, as is anything else wrong."""
    p = Path(path)
    try:
        text = read_text(p)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise ConfigError(f"config file {p} is a folder; give a TOML file") from None
        raise ConfigError(f"config file {p} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"config file {p} is nested too deeply to be a config") from None


def load_toml(path: str | Path) -> Config:
    """A config file: any subset of the sections; missing values take the defaults."""
    return from_mapping(read_toml(path), origin=str(path))


def from_mapping(data: dict[str, Any], origin: str = "config", base: Config | None = None) -> Config:
    """Apply a nested mapping (as read from TOML) over `base` (or the defaults), checking every key."""
    cfg = base if base is not None else Config()
    for key, value in data.items():
        if key in ("name", "preset"):
            if not isinstance(value, str):
                raise ConfigError(f"{origin}: {key} must be a string")
            setattr(cfg, key, value)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            section = getattr(cfg, key)
            for k, v in value.items():
                _set_field(section, key, k, v, origin)
        else:
            raise ConfigError(f"{origin}: unknown section {key!r}; sections are {', '.join(SECTIONS)}")
    return cfg


def apply_override(cfg: Config, text: str) -> Config:
    """Apply one `section.key=value` override; the value is parsed as a TOML value, or taken as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. optim.lr=1e-3")
    path, raw = text.split("=", 1)
    section_name, key = path.strip().split(".", 1)
    if section_name not in SECTIONS:
        raise ConfigError(f"override {text!r}: unknown section {section_name!r}; sections are {', '.join(SECTIONS)}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except ValueError:  # e.g. an integer past Python's 4300-digit conversion limit
        raise ConfigError(f"override {path.strip()!r}: the value is too large") from None
    shown = text if len(text) <= 80 else text[:60] + "…"
    _set_field(getattr(cfg, section_name), section_name, key.strip(), value, f"override {shown!r}")
    return cfg


def _set_field(section: Any, section_name: str, key: str, value: Any, origin: str) -> None:
    types = {f.name: f.type for f in fields(section)}
    if key not in types:
        raise ConfigError(
            f"{origin}: unknown key {section_name}.{key}; known keys: {', '.join(sorted(types))}"
        )
    current = getattr(section, key)
    want = type(current)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{origin}: {section_name}.{key} is far too large for a number") from None
    elif want is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if want is list and isinstance(value, list):
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise ConfigError(f"{origin}: {section_name}.{key} must be a list of integers")
    elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ConfigError(
            f"{origin}: {section_name}.{key} must be {want.__name__}, got {type(value).__name__} {value!r}"
        )
    setattr(section, key, value)
