"""Config: presets, TOML files, overrides and validation give one clear line for every mistake."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nexus_core import config as C
from nexus_core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_every_shipped_preset_loads_and_validates() -> None:
    names = C.preset_names()
    assert "tiny" in names
    for name in names:
        cfg = C.load_preset(name).validate()
        assert cfg.preset == name


def test_tiny_preset_values() -> None:
    cfg = C.load_preset("tiny")
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.data.tokenizer) == (128, 4, "byte")


def test_toml_round_trip_writes_every_default(tmp_path: Path) -> None:
    cfg = C.load_preset("tiny")
    C.apply_override(cfg, "optim.lr=1e-3")
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    data = tomllib.loads(path.read_text())
    assert set(data["train"]) == {f.name for f in C.fields(C.TrainConfig)}
    again = C.load_toml(path)
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ("optim.lr=1e-3", lambda c: c.optim.lr == 1e-3),
        ("train.steps=7", lambda c: c.train.steps == 7),
        ("optim.lr=1", lambda c: c.optim.lr == 1.0 and isinstance(c.optim.lr, float)),
        ("train.device=cuda:1", lambda c: c.train.device == "cuda:1"),
        ("train.sample_prompt=import os", lambda c: c.train.sample_prompt == "import os"),
        ("model.engram.layers=[0, 2]", lambda c: c.model.engram.layers == [0, 2]),
        ("model.hybrid.ssm_state=8", lambda c: c.model.hybrid.ssm_state == 8),
        ("train.compile=true", lambda c: c.train.compile is True),
    ],
)
def test_overrides_parse_values(override: str, check) -> None:
    cfg = C.apply_override(C.Config(), override)
    assert check(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr", "must look like section.key=value"),
        ("nope.lr=1", "unknown section 'nope'"),
        ("optim.nope=1", "unknown key optim.nope"),
        ("optim.lr=fast", "optim.lr must be float"),
        ("train.steps=1.5", "train.steps must be int"),
        ("train.compile=3", "train.compile must be bool"),
    ],
)
def test_bad_overrides_say_what_to_fix(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        C.apply_override(C.Config(), override)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.n_kv_heads=3", "divisible by model.n_kv_heads"),
        ("model.family=rnn", "model.family must be one of"),
        ("train.steps=0", "train.steps must be between 1 and"),
        ("optim.name=sgd", "optim.name must be one of"),
        ("train.device=tpu", "train.device must be"),
        ("train.label_smoothing=1.0", "label_smoothing"),
        ("data.val_fraction=0.9", "val_fraction"),
    ],
)
def test_validation_names_the_bad_value(override: str, message: str) -> None:
    cfg = C.apply_override(C.Config(), override)
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.family=lstm", "model.lstm.levels=[]"], "model.lstm.levels must be a non-empty list"),
        (
            ["model.family=lstm", "model.lstm.levels=[1, 0]"],
            r"model.lstm.levels: every entry must be between 1",
        ),
        (["model.family=lstm", "model.lstm.levels=[4, 16]"], "model.lstm.levels must start with 1"),
        (
            ["model.family=lstm", "model.lstm.surprise_weight=-0.1"],
            "model.lstm.surprise_weight must be between 0",
        ),
        (
            ["model.transformer.hc_streams=5"],
            r"model.transformer.hc_streams must be between 0 and 4 \(0 = off\), got 5",
        ),
        (["model.transformer.hc_streams=-1"], "hc_streams must be between 0"),
        (
            ["model.n_layers=4", "model.transformer.wavelet_layers=[1, 4]"],
            r"model.transformer.wavelet_layers \[1, 4\] names layers outside 0..3: \[4\]",
        ),
        (
            ["model.family=engram", "model.engram.layers=[]"],
            "model.engram.layers must name at least one layer",
        ),
        (["model.family=engram", "model.n_layers=2", "model.engram.layers=[2]"], "must name layers in 0..1"),
        (
            ["model.family=engram", "model.engram.orders=[1, 2]"],
            "model.engram.orders: every entry must be between 2 and 8",
        ),
        (["model.family=engram", "model.engram.orders=[3, 3]"], "distinct n-gram sizes"),
        (["model.family=engram", "model.engram.table_mult=0"], "model.engram.table_mult must be between 1"),
        (["model.family=hybrid", "model.hybrid.ssm_state=0"], "model.hybrid.ssm_state must be between 1"),
        (["model.family=hybrid", "model.hybrid.ssm_chunk=0"], "model.hybrid.ssm_chunk must be between 1"),
        (["model.family=hybrid", "model.hybrid.ssm_expand=-2"], "model.hybrid.ssm_expand must be between 1"),
        (["model.family=hybrid", "model.hybrid.ssm_conv=0"], "model.hybrid.ssm_conv must be between 1"),
        (
            ["model.family=hybrid", "model.hybrid.attn_every=4", "model.hybrid.attn_offset=4"],
            r"model.hybrid.attn_offset must be in \[0, attn_every\) = \[0, 4\), got 4",
        ),
        (["model.transformer.mtp_weight=-1"], "mtp_weight"),
        (["optim.weight_decay=-0.1"], "optim.weight_decay"),
        (["optim.muon_weight_decay=-1"], "muon_weight_decay"),
    ],
)
def test_family_options_are_checked_before_any_model_is_built(overrides: list[str], message: str) -> None:
    cfg = C.Config()
    for text in overrides:
        C.apply_override(cfg, text)
    with pytest.raises(ConfigError, match=message) as info:
        cfg.validate()
    assert "\n" not in str(info.value)


def test_other_families_defaults_are_not_checked() -> None:
    """An lstm run does not care that the (unused) engram.layers default names layer 1 of a 1-layer net."""
    cfg = C.Config()
    for text in ("model.family=lstm", "model.n_layers=1"):
        C.apply_override(cfg, text)
    assert cfg.validate() is cfg


def test_run_names_cannot_escape_the_runs_folder() -> None:
    for bad in ("a/b", "..", ".", ".hidden", "", "x" * 65, "a\x00b"):
        cfg = C.Config(name=bad)
        with pytest.raises(ConfigError, match="starting with a letter or digit"):
            cfg.validate()


def test_one_run_name_rule_for_every_side(tmp_path) -> None:
    """The CLI, the launch form, the supervisor and the config all ask nexus_core.names."""
    from nexus_core.names import next_free_name, run_name_ok

    assert run_name_ok("gpt-6m.v2_1") and run_name_ok("9") and run_name_ok("x" * 64)
    assert not any(run_name_ok(n) for n in (".hidden", "..", "-x", "a b", "a/b", None, "x" * 65))
    (tmp_path / "tiny-1").mkdir()
    assert next_free_name(tmp_path, "tiny") == "tiny-2"
    assert next_free_name(tmp_path, "tiny", taken={"tiny-2"}) == "tiny-3"


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*tiny"):
        C.load_preset("huge")


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        C.load_toml(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\nd_model = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        C.load_toml(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[modle]\nd_model = 3\n")
    with pytest.raises(ConfigError, match="unknown section 'modle'"):
        C.load_toml(unknown)


def test_d_ff_auto() -> None:
    assert C.ModelConfig(d_model=128).resolved_d_ff() == 352
    assert C.ModelConfig(d_ff=100).resolved_d_ff() == 100
