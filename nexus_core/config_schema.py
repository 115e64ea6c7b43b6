"""The run configuration's shape: one dataclass a section, each checking itself, and `Config` over them.

Every value a run depends on lives here, so `config.toml` in a run folder (every default written out)
is enough to rebuild the run. Limits are declared beside the fields (nexus_core/limits.py), then each
section's own rules; each model family's options are a sub-section of [model] named after it
(nexus_core/families.py). Reading files, presets and `--set` overrides is `config.py`, which also
re-exports everything here: `from nexus_core.config import ModelConfig` is the import point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal

import tomli_w

from nexus_core.errors import ConfigError
from nexus_core.families import (
    FAMILIES,
    FAMILY_SECTIONS,
    EngramOptions,
    FamilyOptions,
    HybridOptions,
    LSTMOptions,
    TransformerOptions,
)
from nexus_core.limits import (
    INT64_MAX,
    LR,
    MAX_STEPS,
    Beta,
    Count,
    R,
    Section,
    Unit,
    Weight,
    field_limits,
    subsections,
)
from nexus_core.names import RUN_NAME_RULE, run_name_ok


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
        options: FamilyOptions = getattr(self, self.family)
        return options

    def resolved_d_ff(self) -> int:
        if self.d_ff > 0:
            return self.d_ff
        return ((8 * self.d_model // 3) + 31) // 32 * 32

    def rules(self, name: str) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"{name}.n_heads ({self.n_heads}) must be divisible by {name}.n_kv_heads ({self.n_kv_heads})"
            )
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"{name}.d_model ({self.d_model}) must be divisible by {name}.n_heads ({self.n_heads})"
            )
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(
                f"head size d_model/n_heads = {self.d_model // self.n_heads} must be even (rotary)"
            )
        for family in FAMILIES:
            if family != self.family:
                self._refuse_unread(family, name)
        table = f"{name}.{self.family}"
        self.options.check(table)
        self.options.fits(self, table)

    def _refuse_unread(self, family: str, name: str) -> None:
        """An option of a family this run is not: one line naming the option and both families."""
        section, default = getattr(self, family), FAMILY_SECTIONS[family]()
        changed = [
            f.name for f in fields(default) if getattr(section, f.name, None) != getattr(default, f.name)
        ]
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
    CE, the LSTM's surprise) and each param group's grad norm (`gnorm/<group>`), as extra keys."""

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
