"""Run configuration: section dataclasses, TOML presets, `section.key=value` overrides, validation.

Every value a run depends on lives here, so `config.toml` in a run folder (every default written out)
is enough to rebuild the run. Each section checks itself (nexus_core/limits.py: limits declared beside
the fields, then the section's own rules) before any tensor is made, so a bad value costs a one-line
error instead of a crash minutes into training. Each model family's options live in a sub-section of
[model] named after it (nexus_core/families.py); old flat run folders migrate on read.
"""

from __future__ import annotations

import dataclasses
import errno
import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w

from nexus_core.errors import ConfigError
from nexus_core.families import (
    FAMILIES,
    FAMILY_SECTIONS,
    FLAT_KEYS,
    EngramOptions,
    FamilyOptions,
    HybridOptions,
    LSTMOptions,
    TransformerOptions,
    migrate,
    new_key,
)
from nexus_core.limits import (  # noqa: F401 - Range, check_fields and field_limits are read from here too
    INT64_MAX,
    LR,
    MAX_STEPS,
    Beta,
    Count,
    R,
    Range,
    Section,
    Unit,
    Weight,
    check_fields,
    field_limits,
    subsections,
)
from nexus_core.names import RUN_NAME_RULE, run_name_ok
from nexus_core.safefile import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class ModelConfig(Section):
    """The network: `family` picks the model module and the one [model.<family>] table it reads; the
    other fields every family shares."""

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
    transformer: TransformerOptions = field(default_factory=TransformerOptions)
    hybrid: HybridOptions = field(default_factory=HybridOptions)
    engram: EngramOptions = field(default_factory=EngramOptions)
    lstm: LSTMOptions = field(default_factory=LSTMOptions)

    def __post_init__(self) -> None:
        self._given: set[tuple[str, str]] = set()
        """(family, key) of every family option a file or override set, so one set to its default for
        a family the run is not is still refused, not silently ignored."""

    def mark_given(self, family: str, key: str) -> None:
        self._given.add((family, key))

    @property
    def options(self) -> FamilyOptions:
        """The chosen family's own options: the [model.<family>] table."""
        return getattr(self, self.family)

    def resolved_d_ff(self) -> int:
        if self.d_ff > 0:
            return self.d_ff
        return ((8 * self.d_model // 3) + 31) // 32 * 32

    def rules(self, name: str) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"{name}.n_heads ({self.n_heads}) must be divisible by {name}.n_kv_heads "
                              f"({self.n_kv_heads})")
        if self.d_model % self.n_heads:
            raise ConfigError(f"{name}.d_model ({self.d_model}) must be divisible by {name}.n_heads ({self.n_heads})")
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"head size d_model/n_heads = {self.d_model // self.n_heads} must be even (rotary)")
        for family in FAMILIES:
            if family != self.family:
                self._refuse_unread(family, name)
        table = f"{name}.{self.family}"
        self.options.check(table)
        self.options.fits(self, table)

    def _refuse_unread(self, family: str, name: str) -> None:
        """An option of a family this run is not: one line naming the option and both families."""
        section, default = getattr(self, family), FAMILY_SECTIONS[family]()
        changed = [f.name for f in fields(default) if getattr(section, f.name, None) != getattr(default, f.name)]
        keys = sorted(k for fam, k in self._given if fam == family) + changed
        if keys:
            key = keys[0]
            raise ConfigError(
                f"{name}.{family}.{key} = {getattr(section, key, None)!r} is read only by the {family} family, "
                f"and {name}.family is {self.family}: remove it or set {name}.family = {family}"
            )


@dataclass
class DataConfig(Section):
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

    def rules(self, name: str) -> None:
        if self.tokenizer == "bpe" and not 260 <= self.bpe_vocab <= 65536:
            raise ConfigError(f"{name}.bpe_vocab must be between 260 and 65536, got {self.bpe_vocab}")


@dataclass
class OptimConfig(Section):
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
class ScheduleConfig(Section):
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
class TrainConfig(Section):
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

    def rules(self, name: str) -> None:
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"{name}.device must be auto, cpu, cuda, cuda:N or mps, got {dev!r}")


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
        """Every value, with only the chosen family's [model.<family>] table (the others are not read)."""
        data = dataclasses.asdict(self)
        for family in FAMILIES:
            if family != self.model.family:
                data["model"].pop(family, None)
        return data

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def validate(self) -> Config:
        """Raise ConfigError with one line that says what to fix; return self when fine."""
        for name in SECTIONS:
            getattr(self, name).check(name)
        m, d = self.model, self.data
        if d.tokenizer == "byte" and m.vocab_size not in (0, 256):
            raise ConfigError(f"model.vocab_size is {m.vocab_size} but the byte tokenizer has 256 symbols")
        if d.tokenizer == "bpe" and m.vocab_size not in (0, d.bpe_vocab):
            raise ConfigError(f"model.vocab_size ({m.vocab_size}) must equal data.bpe_vocab ({d.bpe_vocab})")
        if not isinstance(self.name, str) or not run_name_ok(self.name):
            raise ConfigError(f"run name {self.name!r}: use {RUN_NAME_RULE}")
        return self


SECTIONS = ("model", "data", "optim", "schedule", "train")
SHARED_MODEL_OPTIONS = tuple(field_limits(ModelConfig()))
"""The [model] keys every family reads (its value fields; each family's own are in FAMILY_OPTIONS)."""


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{'model': {'hybrid': {'ssm_state': 8}}} -> {'model.hybrid.ssm_state': 8}: keys as `--set`, config
    differences and checkpoint mismatches name them."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def all_sections(cfg: Config) -> list[tuple[str, Any]]:
    """Every section and sub-section with its dotted name: model, model.transformer, .., data, .., train."""
    out: list[tuple[str, Any]] = []
    for name in SECTIONS:
        section = getattr(cfg, name)
        out.append((name, section))
        out += [(f"{name}.{key}", sub) for key, sub in subsections(section).items()]
    return out


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
    """A run folder's config.toml (or any config file): any subset of the sections, defaults for the
    rest. A folder written before the family tables migrates (families.migrate), no error."""
    return from_mapping(read_toml(path), origin=str(path), strict=False)


def from_mapping(
    data: dict[str, Any], origin: str = "config", base: Config | None = None, strict: bool = True
) -> Config:
    """Apply a nested mapping (as read from TOML) over `base` (or the defaults), checking every key.
    Old flat family keys migrate; `strict` refuses one of another family that is not its default."""
    cfg = base if base is not None else Config()
    try:
        data = migrate(data, cfg.model.family, strict=strict)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None
    for key, value in data.items():
        if key in ("name", "preset"):
            if not isinstance(value, str):
                raise ConfigError(f"{origin}: {key} must be a string")
            setattr(cfg, key, value)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            for path, leaf in _leaves(value, [key]):
                _set_path(cfg, path, leaf, origin)
        else:
            raise ConfigError(f"{origin}: unknown section {key!r}; sections are {', '.join(SECTIONS)}")
    return cfg


def _leaves(table: dict[str, Any], path: list[str]) -> list[tuple[list[str], Any]]:
    """(key path, value) of every non-table value; no config field takes a table as its value."""
    out = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _leaves(value, [*path, key])
        else:
            out.append(([*path, key], value))
    return out


def apply_override(cfg: Config, text: str) -> Config:
    """Apply one `section.key=value` (or `model.<family>.key=value`) override; the value is parsed as a
    TOML value, or taken as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. optim.lr=1e-3")
    path, raw = text.split("=", 1)
    parts = [p.strip() for p in path.split(".")]
    if parts[0] not in SECTIONS:
        raise ConfigError(f"override {text!r}: unknown section {parts[0]!r}; sections are {', '.join(SECTIONS)}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except ValueError:  # e.g. an integer past Python's 4300-digit conversion limit
        raise ConfigError(f"override {path.strip()!r}: the value is too large") from None
    shown = text if len(text) <= 80 else text[:60] + "…"
    _set_path(cfg, parts, value, f"override {shown!r}")
    return cfg


def _set_path(cfg: Config, path: list[str], value: Any, origin: str) -> None:
    """Set one value by its key path (['model', 'hybrid', 'ssm_state']). An old flat family key
    (`model.ssm_state`) still works: it names its new place, which the check then holds to the family."""
    if len(path) == 2 and path[0] == "model" and path[1] in FLAT_KEYS:
        path = new_key(path[1]).split(".")
    section, name = getattr(cfg, path[0]), path[0]
    for key in path[1:-1]:
        subs = subsections(section)
        if key not in subs:
            if key in field_limits(section):
                raise ConfigError(f"{origin}: {name}.{key} is a value, not a table")
            raise ConfigError(f"{origin}: unknown table {name}.{key}; tables: {', '.join(sorted(subs)) or 'none'}")
        section, name = subs[key], f"{name}.{key}"
    _set_field(section, name, path[-1], value, origin)
    if len(path) == 3 and path[0] == "model":
        cfg.model.mark_given(path[1], path[2])


def _set_field(section: Any, section_name: str, key: str, value: Any, origin: str) -> None:
    subs = subsections(section)
    if key in subs:
        raise ConfigError(f"{origin}: {section_name}.{key} is a table: set {section_name}.{key}.KEY, e.g. "
                          f"{section_name}.{key}.{fields(subs[key])[0].name}")
    types = {f.name: f.type for f in fields(section) if f.name not in subs}
    if key not in types:
        tables = f"; tables: {', '.join(sorted(subs))}" if subs else ""
        raise ConfigError(
            f"{origin}: unknown key {section_name}.{key}; known keys: {', '.join(sorted(types))}{tables}"
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
