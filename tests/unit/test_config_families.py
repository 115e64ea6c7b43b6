"""Each model family's options live in its own [model.<family>] table: the structure says which family
reads which option, an option the chosen family does not read is one line naming both, and configs
written before the tables (every option flat in [model]) still load, migrated.

The flat files in tests/fixtures/flat_config/ are config.toml files exactly as the engine wrote them
before the split (each shipped preset's, after the tokenizer resolved vocab_size).
"""

from __future__ import annotations

import sys
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from support import ROOT

from nexus_core import config as C
from nexus_core import families as F
from nexus_core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FLAT = ROOT / "tests" / "fixtures" / "flat_config"
FLAT_FILES = sorted(FLAT.glob("*.toml"))


def _validated(*overrides: str, preset: str = "tiny") -> C.Config:
    cfg = C.load_preset(preset)
    for text in overrides:
        C.apply_override(cfg, text)
    return cfg.validate()


def _refused(*overrides: str, preset: str = "tiny") -> str:
    with pytest.raises(ConfigError) as info:
        _validated(*overrides, preset=preset)
    text = str(info.value)
    assert "\n" not in text and text
    return text


def test_each_family_has_exactly_one_table_named_after_it() -> None:
    choices = typing.get_args(typing.get_type_hints(C.ModelConfig, include_extras=True)["family"])
    assert choices == F.FAMILIES, "model.family's choices and the family tables are the same list"
    model = C.ModelConfig()
    assert {name: type(sub) for name, sub in C.subsections(model).items()} == F.FAMILY_SECTIONS
    shared = set(C.SHARED_MODEL_OPTIONS)
    for family, keys in F.FAMILY_OPTIONS.items():
        assert keys and not shared & set(keys), family
        assert F.option_family(f"model.{family}.{keys[0]}") == family
    assert F.option_family("model.d_model") is None and F.option_family("optim.lr") is None


@pytest.mark.parametrize(
    ("family", "table", "check"),
    [
        (
            "transformer",
            "mtp_heads = 2\nmtp_weight = 0.5\nhc_streams = 2\nloop_count = 2\nwavelet_layers = [1]",
            lambda m: (
                (m.transformer.mtp_heads, m.transformer.loop_count, m.transformer.wavelet_layers)
                == (2, 2, [1])
            ),
        ),
        (
            "hybrid",
            "attn_every = 2\nattn_offset = 1\nssm_state = 4\nssm_chunk = 1",
            lambda m: (m.hybrid.attn_every, m.hybrid.ssm_state, m.hybrid.ssm_chunk) == (2, 4, 1),
        ),
        (
            "engram",
            "layers = [0, 3]\norders = [2, 4]\ntable_mult = 2",
            lambda m: (m.engram.layers, m.engram.orders, m.engram.table_mult) == ([0, 3], [2, 4], 2),
        ),
        (
            "lstm",
            "levels = [1, 2]\nsurprise_weight = 0.1",
            lambda m: (m.lstm.levels, m.lstm.surprise_weight) == ([1, 2], 0.1),
        ),
    ],
)
def test_each_family_table_loads_and_round_trips(tmp_path: Path, family: str, table: str, check) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[model]\nfamily = "{family}"\n\n[model.{family}]\n{table}\n')
    cfg = C.load_toml(path).validate()
    assert check(cfg.model) and cfg.model.options is getattr(cfg.model, family)
    written = tomllib.loads(cfg.to_toml())
    tables = {k for k, v in written["model"].items() if isinstance(v, dict)}
    assert tables == {family}, "only the chosen family's table is written"
    assert set(written["model"][family]) == set(F.FAMILY_OPTIONS[family]), "every default of it"
    path.write_text(cfg.to_toml())
    assert C.load_toml(path).validate().to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    ("preset", "overrides", "says"),
    [
        (
            "tiny",
            ["model.hybrid.ssm_state=8"],
            "model.hybrid.ssm_state = 8 is read only by the hybrid family, and model.family is transformer",
        ),
        (
            "tiny",
            ["model.hybrid.ssm_chunk=32"],
            "model.hybrid.ssm_chunk = 32 is read only by the hybrid family",
        ),
        ("tiny", ["model.ssm_chunk=32"], "model.hybrid.ssm_chunk = 32 is read only by the hybrid family"),
        ("tiny", ["model.engram_layers=[0]"], "model.engram.layers = [0] is read only by the engram family"),
        (
            "hybrid-tiny",
            ["model.transformer.mtp_heads=2"],
            "model.transformer.mtp_heads = 2 is read only by the transformer family, and model.family is hybrid",
        ),
        (
            "hybrid-tiny",
            ["model.hc_streams=2"],
            "model.transformer.hc_streams = 2 is read only by the transformer",
        ),
        (
            "lstm-tiny",
            ["model.loop_count=2"],
            "model.transformer.loop_count = 2 is read only by the transformer",
        ),
        ("engram-tiny", ["model.wavelet_layers=[1]"], "model.transformer.wavelet_layers = [1] is read only"),
        (
            "tiny",
            ["model.lstm.surprise_weight=0.1"],
            "model.lstm.surprise_weight = 0.1 is read only by the lstm",
        ),
        (
            "hybrid-tiny",
            ["model.family=transformer"],
            "model.hybrid.attn_every = 4 is read only by the hybrid",
        ),
    ],
)
def test_an_option_the_family_does_not_read_is_one_line_naming_both(
    preset: str, overrides: list[str], says: str
) -> None:
    """Even one set to its default (ssm_chunk 32): it would do nothing, and the person thought it did."""
    text = _refused(*overrides, preset=preset)
    assert says in text, text
    assert "remove it or set model.family = " in text


def test_the_family_may_be_chosen_before_or_after_its_options() -> None:
    for order in (
        ["model.family=hybrid", "model.hybrid.ssm_state=4"],
        ["model.hybrid.ssm_state=4", "model.family=hybrid"],
    ):
        assert _validated(*order).model.hybrid.ssm_state == 4


def test_a_config_file_with_another_familys_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\nfamily = "lstm"\n\n[model.hybrid]\nssm_state = 16\n')
    with pytest.raises(ConfigError, match="model.hybrid.ssm_state = 16 is read only by the hybrid family"):
        C.load_toml(path).validate()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("model.hybrid=3", "model.hybrid is a table: set model.hybrid.KEY"),
        ("model.hybrid.nope=3", "unknown key model.hybrid.nope; known keys: attn_every"),
        ("model.rnn.size=3", "unknown table model.rnn; tables: engram, hybrid, lstm, transformer"),
        ("model.d_model.x=3", "model.d_model is a value, not a table"),
        ("model.nope=3", "tables: engram, hybrid, lstm, transformer"),
        ("model.hybrid.ssm_state=big", "model.hybrid.ssm_state must be int"),
    ],
)
def test_bad_family_keys_say_what_to_fix(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        C.apply_override(C.Config(), text)


@pytest.mark.parametrize("flat_key", sorted(F.FLAT_KEYS))
def test_every_old_flat_override_still_works_under_its_new_name(flat_key: str) -> None:
    family, key = F.FLAT_KEYS[flat_key]
    value = getattr(getattr(C.load_preset("tiny").model, family), key)
    cfg = C.apply_override(C.Config(), f"model.family={family}")
    C.apply_override(cfg, f"model.{flat_key}={value!r}".replace("'", '"'))
    assert getattr(cfg.model.options, key) == value and cfg.validate()


@pytest.mark.parametrize("path", FLAT_FILES, ids=lambda p: p.stem)
def test_an_old_flat_run_config_migrates_on_read(path: Path) -> None:
    """What the engine wrote before the split loads with no error, as the same run it was."""
    old = tomllib.loads(path.read_text())
    cfg = C.load_toml(path).validate()
    preset = C.load_preset(path.stem)
    assert cfg.model.family == preset.model.family
    assert cfg.model.options == preset.model.options, "the chosen family's options moved, values kept"
    for flat_key, (family, key) in F.FLAT_KEYS.items():
        if family == cfg.model.family:
            assert getattr(cfg.model.options, key) == old["model"][flat_key]
    written = tomllib.loads(cfg.to_toml())
    assert not set(F.FLAT_KEYS) & set(written["model"]), "written back in the new shape"


def test_an_old_run_config_loads_even_with_options_its_family_never_read(tmp_path: Path) -> None:
    """Before the split `--set model.ssm_state=32` on a transformer was silently ignored and written
    to config.toml: that run folder still loads (the value never did anything), but the same flat
    file given as a new config is refused, naming the new key."""
    text = (FLAT / "tiny.toml").read_text().replace("ssm_state = 16", "ssm_state = 32")
    path = tmp_path / "config.toml"
    path.write_text(text)
    cfg = C.load_toml(path).validate()
    assert cfg.model.family == "transformer" and cfg.model.hybrid == F.HybridOptions()
    with pytest.raises(
        ConfigError,
        match=r"model.ssm_state \(now model.hybrid.ssm_state\) = 32 is read only by the "
        r"hybrid family, and model.family is transformer",
    ):
        C.from_mapping(tomllib.loads(text), origin=str(path))
    assert C.from_mapping(tomllib.loads((FLAT / "tiny.toml").read_text())).validate(), "all defaults: fine"


def test_migrate_leaves_what_it_does_not_know_alone() -> None:
    for value in (
        None,
        3,
        [],
        {},
        {"model": 3},
        {"model": {"family": "rnn", "ssm_state": 1}},
        {"model": {"d_model": 8}},
        {"optim": {"lr": 1}},
    ):
        assert F.migrate(value) == value
    assert F.migrate({"model": {"ssm_state": 8}}) == {"model": {}}, (
        "no family said: the old default, transformer"
    )
    moved = F.migrate({"model": {"family": "hybrid", "ssm_state": 8, "hybrid": {"ssm_conv": 2}}})
    assert moved == {"model": {"family": "hybrid", "hybrid": {"ssm_state": 8, "ssm_conv": 2}}}


def test_every_shipped_preset_is_written_in_the_family_tables() -> None:
    for name in C.preset_names():
        path = next(p for folder in C.preset_folders() if (p := folder / f"{name}.toml").exists())
        model = tomllib.loads(path.read_text()).get("model", {})
        assert not set(F.FLAT_KEYS) & set(model), f"{name}: flat family keys {set(F.FLAT_KEYS) & set(model)}"
        tables = {k for k, v in model.items() if isinstance(v, dict)}
        assert tables <= {model["family"]}, f"{name}: tables {tables} for family {model['family']}"


def test_every_family_option_declares_its_limits() -> None:
    for family, cls in F.FAMILY_SECTIONS.items():
        for key, (kind, rng, choices) in C.field_limits(cls()).items():
            assert kind in (int, float, list) and rng is not None and not choices, f"{family}.{key}"
        assert all("was" in f.metadata for f in fields(cls)), "each option names its old flat key"
