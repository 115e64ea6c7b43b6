"""Config: presets, TOML files, overrides and validation give one clear line for every mistake."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine import config as C
from engine.errors import ConfigError

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
        ("model.engram_layers=[0, 2]", lambda c: c.model.engram_layers == [0, 2]),
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
        ("train.steps=0", "train.steps must be at least 1"),
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


def test_run_names_cannot_escape_the_runs_folder() -> None:
    for bad in ("a/b", "..", "."):
        cfg = C.Config(name=bad)
        with pytest.raises(ConfigError, match="plain folder name"):
            cfg.validate()


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
