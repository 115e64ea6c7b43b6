"""Each model family's own options, in a sub-section of [model] named after the family.

`[model.hybrid]` holds what only the hybrid reads, `[model.lstm]` what only the nested LSTM reads, and
so on: which family reads which option is the structure itself, so the config check, the models and
`nexus compare` read it from here instead of keeping tables of their own. An option of a family other
than `model.family` is refused in one line (it used to be silently ignored).

Run folders written before the split keep every family's options side by side in a flat [model]
table. `migrate()` moves the chosen family's into its sub-section and drops the others' (no run ever
read them), so old runs still resume, compare and report; each field names its flat key in `was`.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated, Any, ClassVar, Protocol

from nexus_core.errors import ConfigError
from nexus_core.limits import Layers, R, Section, Weight


class SharedModelOptions(Protocol):
    """What a family's `fits` reads of the [model] table (config_schema.ModelConfig, which imports
    this module: declared here, so the two form no import cycle)."""

    n_layers: int


MAX_HC_STREAMS = 4
"""Hyper-connection streams: n! permutations are mixed; 4 streams (24 permutations) is what mHC uses
and plenty for small models; more cost memory with no reported gain."""
MAX_ENGRAM_ORDER = 8


def was(flat_key: str) -> dict[str, str]:
    """Field metadata: the key's name in the flat [model] table of configs written before the split."""
    return {"was": flat_key}


@dataclass  # no fields of its own: a dataclass so `fields()` of any family type-checks
class FamilyOptions(Section):
    """The options one family reads; `family` is both the [model.<family>] table and model.family's value."""

    family: ClassVar[str]

    def fits(self, model: SharedModelOptions, name: str) -> None:
        """Checks against the shared model options (a layer index below n_layers)."""


@dataclass
class TransformerOptions(FamilyOptions):
    """[model.transformer]: variants of the baseline transformer, each off by default."""

    family: ClassVar[str] = "transformer"
    mtp_heads: Annotated[int, R(0, 16, hint=" (0 = off)")] = field(default=0, metadata=was("mtp_heads"))
    """Extra multi-token-prediction heads (head k predicts token t+1+k); 0 = off."""
    mtp_weight: Weight = field(default=0.3, metadata=was("mtp_weight"))
    """lambda in L = CE_main + (lambda / D) * sum_k CE_k."""
    hc_streams: Annotated[int, R(0, MAX_HC_STREAMS, hint=" (0 = off)")] = field(
        default=0, metadata=was("hc_streams")
    )
    """mHC-lite residual streams; 0 = plain residual."""
    loop_count: Annotated[int, R(1, 64)] = field(default=1, metadata=was("loop_count"))
    """Repeat the block stack this many times with shared weights."""
    wavelet_layers: Layers = field(default_factory=list, metadata=was("wavelet_layers"))
    """Layers whose token mixing is a causal Haar-wavelet layer instead of attention."""

    def fits(self, model: SharedModelOptions, name: str) -> None:
        bad = [i for i in self.wavelet_layers if not i < model.n_layers]
        if bad:
            raise ConfigError(
                f"{name}.wavelet_layers {self.wavelet_layers} names layers outside 0..{model.n_layers - 1}: {bad}"
            )


@dataclass
class HybridOptions(FamilyOptions):
    """[model.hybrid]: the layer layout (which layers are attention) and the selective-SSM sizes."""

    family: ClassVar[str] = "hybrid"
    attn_every: Annotated[int, R(1, 1024)] = field(default=8, metadata=was("attn_every"))
    """Layer i is attention when i % attn_every == attn_offset, else SSM."""
    attn_offset: Annotated[int, R(0, 1023)] = field(default=4, metadata=was("attn_offset"))
    ssm_state: Annotated[int, R(1, 4096)] = field(default=16, metadata=was("ssm_state"))
    ssm_expand: Annotated[int, R(1, 64)] = field(default=2, metadata=was("ssm_expand"))
    ssm_conv: Annotated[int, R(1, 64)] = field(default=4, metadata=was("ssm_conv"))
    ssm_chunk: Annotated[int, R(1, 1 << 16)] = field(default=32, metadata=was("ssm_chunk"))
    """Scan chunk: 1 is the CPU-fast stepwise scan, 32 or more what a GPU wants."""

    def rules(self, name: str) -> None:
        if self.attn_offset >= self.attn_every:
            raise ConfigError(
                f"{name}.attn_offset must be in [0, attn_every) = [0, {self.attn_every}), got {self.attn_offset}"
            )

    def attention_layers(self, n_layers: int) -> list[int]:
        """Indices of the attention layers: i % attn_every == attn_offset. The offset is clamped to the
        last layer, so a model shallower than the offset (the Jamba layout 8/4 on 4 layers) still gets
        one attention layer instead of silently none."""
        offset = min(self.attn_offset, n_layers - 1)
        return [i for i in range(n_layers) if i % self.attn_every == offset]


@dataclass
class EngramOptions(FamilyOptions):
    """[model.engram]: the hashed n-gram memory added to the transformer stack."""

    family: ClassVar[str] = "engram"
    layers: Layers = field(default_factory=lambda: [1], metadata=was("engram_layers"))
    """The layers that get a memory before their block."""
    orders: Annotated[list[int], R(2, MAX_ENGRAM_ORDER)] = field(
        default_factory=lambda: [2, 3], metadata=was("engram_orders")
    )
    """The n-gram sizes hashed (distinct)."""
    table_mult: Annotated[int, R(1, 1024)] = field(default=8, metadata=was("engram_table_mult"))
    """Each hashed n-gram table has about table_mult * vocab_size rows."""

    def rules(self, name: str) -> None:
        if not self.layers:
            raise ConfigError(f"{name}.layers must name at least one layer")
        if not self.orders or len(set(self.orders)) != len(self.orders):
            raise ConfigError(
                f"{name}.orders {self.orders} must be distinct n-gram sizes in 2..{MAX_ENGRAM_ORDER}"
            )

    def fits(self, model: SharedModelOptions, name: str) -> None:
        if any(not i < model.n_layers for i in self.layers):
            raise ConfigError(f"{name}.layers {self.layers} must name layers in 0..{model.n_layers - 1}")


@dataclass
class LSTMOptions(FamilyOptions):
    """[model.lstm]: the nested LSTM's levels and its auxiliary surprise loss."""

    family: ClassVar[str] = "lstm"
    levels: Annotated[list[int], R(1, 1 << 20)] = field(
        default_factory=lambda: [1, 16, 256], metadata=was("lstm_levels")
    )
    """Update period (in steps) of each nested level."""
    surprise_weight: Weight = field(default=0.0, metadata=was("surprise_weight"))
    """Weight of the auxiliary loss 1 - cos(predicted, actual next hidden state); 0 = off."""

    def rules(self, name: str) -> None:
        if not self.levels:
            raise ConfigError(f"{name}.levels must be a non-empty list of periods >= 1, got {self.levels}")
        if self.levels[0] != 1:
            raise ConfigError(
                f"{name}.levels must start with 1 (the first level, which also holds the embedding and "
                f"head, learns every step), got {self.levels}"
            )


FAMILY_SECTIONS: dict[str, type[FamilyOptions]] = {
    cls.family: cls for cls in (TransformerOptions, HybridOptions, EngramOptions, LSTMOptions)
}
FAMILIES = tuple(FAMILY_SECTIONS)

FAMILY_OPTIONS: dict[str, tuple[str, ...]] = {
    family: tuple(f.name for f in fields(cls)) for family, cls in FAMILY_SECTIONS.items()
}
"""family -> the keys of its [model.<family>] table, in declaration order."""

FLAT_KEYS: dict[str, tuple[str, str]] = {
    f.metadata["was"]: (family, f.name)
    for family, cls in FAMILY_SECTIONS.items()
    for f in fields(cls)
    if "was" in f.metadata
}
"""An old flat [model] key -> (its family, its key in [model.<family>]): 'ssm_state' -> ('hybrid', 'ssm_state')."""


def option_family(key: str) -> str | None:
    """The one family that reads a dotted config key ('model.hybrid.ssm_state' -> 'hybrid'), None for
    a key every family reads."""
    parts = key.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "model" and parts[1] in FAMILY_SECTIONS else None


def new_key(flat_key: str) -> str:
    """'ssm_state' -> 'model.hybrid.ssm_state'."""
    family, key = FLAT_KEYS[flat_key]
    return f"model.{family}.{key}"


def _default(family: str, key: str) -> Any:
    f = next(f for f in fields(FAMILY_SECTIONS[family]) if f.name == key)
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def migrate(config: Any, family: str = "transformer", strict: bool = False) -> Any:
    """A config mapping with any old flat family keys of [model] moved into [model.<family>].

    The chosen family's options move; the other families' are dropped, since before the split every
    config.toml wrote all of them and no run read them. With `strict` (a config a person gives, not a
    run folder's), an other family's option that is not its default is a ConfigError naming its new key,
    as it would be had it been written in the new shape. `family` is the one to assume when the
    mapping does not say. Anything that is not a Nexus config comes back as it was; so does a new one."""
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not any(k in FLAT_KEYS for k in model):
        return config
    chosen = model.get("family", family)
    if chosen not in FAMILY_SECTIONS:
        return config  # the check of model.family will say what is wrong
    moved: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for key, value in model.items():
        if key not in FLAT_KEYS:
            out[key] = value
            continue
        owner, new = FLAT_KEYS[key]
        if owner == chosen:
            moved[new] = value
        elif strict and value != _default(owner, new):
            raise ConfigError(
                f"model.{key} (now {new_key(key)}) = {value!r} is read only by the {owner} family, "
                f"and model.family is {chosen}: remove it or set model.family = {owner}"
            )
    if moved:
        table = out.get(chosen)
        out[chosen] = {**moved, **table} if isinstance(table, dict) else (table if chosen in out else moved)
    return {**config, "model": out}
