"""Checkpoints in-process: exact round trips (tied weights, optimizer, RNG), atomic pointers and pruning,
and one-line CheckpointErrors for corrupt, truncated and mismatched checkpoints."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from engine import checkpoint as ckpt
from engine.models import build_model
from engine.optim import build_optimizer
from nexus_core.config import Config
from nexus_core.errors import CheckpointError
from nexus_core.schedule import Schedule


def _cfg(optim: str = "adamw", d_model: int = 32) -> Config:
    cfg = Config()
    cfg.model.n_layers, cfg.model.d_model, cfg.model.n_heads, cfg.model.n_kv_heads = 1, d_model, 2, 1
    cfg.model.seq_len, cfg.model.vocab_size = 16, 256
    cfg.optim.name = optim
    return cfg.validate()


def _trained(cfg: Config, steps: int = 2) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt = build_optimizer(model, cfg.optim)
    for _ in range(steps):
        x = torch.randint(0, 256, (2, 16))
        model(x, x).loss.backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _meta(cfg: Config, step: int, **extra) -> dict:
    return {
        "step": step,
        "tokens": step * 32,
        "schedule": Schedule.from_config(cfg.schedule, 10).to_dict(),
        "config": cfg.to_dict(),
        **extra,
    }


@pytest.mark.parametrize("optim", ["adamw", "muon", "lion"])
def test_round_trip_restores_weights_optimizer_and_rng(tmp_path: Path, optim: str) -> None:
    cfg = _cfg(optim)
    model, opt = _trained(cfg)
    torch.manual_seed(123)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 2))
    expected_draw = torch.rand(3)

    torch.manual_seed(999)  # a fresh model with other weights and an empty optimizer
    model2 = build_model(cfg.model)
    opt2 = build_optimizer(model2, cfg.optim)
    meta = ckpt.load_checkpoint(path, model2, opt2, config=cfg.to_dict())

    assert meta["step"] == 2
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert model2.head.weight is model2.embed.weight, "tied weights stay tied after loading"
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid, entries in s1["state"].items():
        for key, value in entries.items():
            other = s2["state"][pid][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert torch.equal(torch.rand(3), expected_draw), "the CPU RNG continues where it was saved"


def test_tied_weights_are_stored_once(tmp_path: Path) -> None:
    from safetensors import safe_open

    cfg = _cfg()
    model, opt = _trained(cfg, steps=0)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 0))
    with safe_open(str(path / ckpt.MODEL_FILE), "pt") as f:
        keys = set(f.keys())  # noqa: SIM118
        aliases = json.loads(f.metadata()["aliases"])
    assert len(keys & {"embed.weight", "head.weight"}) == 1
    assert set(aliases) | keys == set(model.state_dict())


def test_pointers_pruning_and_best(tmp_path: Path) -> None:
    cfg = _cfg()
    model, opt = _trained(cfg, steps=0)
    ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 10), best=True, keep_last=2)
    for step in (20, 30, 40):
        ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, step), keep_last=2)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["step_000010", "step_000030", "step_000040"], "last two plus the best survive"
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_000040"
    assert ckpt.resolve_checkpoint(tmp_path, "best").name == "step_000010"
    assert ckpt.resolve_checkpoint(tmp_path, "30").name == "step_000030"
    assert not [p for p in ckpt.checkpoints_root(tmp_path).iterdir() if p.name.startswith(".")], (
        "no temp left"
    )


def test_saving_the_same_step_twice_replaces_it(tmp_path: Path) -> None:
    cfg = _cfg()
    model, opt = _trained(cfg, steps=0)
    ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 5, reason="first"))
    ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 5, reason="second"))
    assert ckpt.read_meta(ckpt.resolve_checkpoint(tmp_path))["reason"] == "second"
    assert len(ckpt.list_checkpoints(tmp_path)) == 1


def test_nan_model_is_never_best(tmp_path: Path) -> None:
    cfg = _cfg()
    model, opt = _trained(cfg, steps=0)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith("blocks"))[0] = math.nan
    path, best = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 3), best=True)
    assert best is False
    assert ckpt.read_meta(path)["finite"] is False
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        ckpt.resolve_checkpoint(tmp_path, "best")


def test_truncated_weights_raise_one_line(tmp_path: Path) -> None:
    cfg = _cfg()
    model, opt = _trained(cfg, steps=1)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 1))
    weights = path / ckpt.MODEL_FILE
    weights.write_bytes(weights.read_bytes()[: os.path.getsize(weights) // 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="corrupt") as err:
        ckpt.load_checkpoint(path, model, opt)
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "model untouched"


@pytest.mark.parametrize("damage", ["garbage", "missing", "partial"])
def test_bad_meta_raises(tmp_path: Path, damage: str) -> None:
    cfg = _cfg()
    model, opt = _trained(cfg, steps=0)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 1))
    meta = path / ckpt.META_FILE
    if damage == "garbage":
        meta.write_bytes(b"\x00\xff not json")
    elif damage == "missing":
        meta.unlink()
    else:
        meta.write_text(json.dumps({"format": 1, "step": 1}))
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(path, model, opt)


def test_other_model_lists_the_mismatched_keys(tmp_path: Path) -> None:
    small, big = _cfg(d_model=32), _cfg(d_model=64)
    model, opt = _trained(small, steps=0)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(small, 1))
    other = build_model(big.model)
    with pytest.raises(CheckpointError, match=r"model\.d_model: checkpoint 32, config 64"):
        ckpt.load_checkpoint(path, other, build_optimizer(other, big.optim), config=big.to_dict())
    with pytest.raises(CheckpointError, match=r"shape differs: blocks\.0\..*k_proj\.weight"):
        ckpt.load_checkpoint(path, other)  # without the config check the weights' shapes catch it


def test_other_optimizer_is_refused(tmp_path: Path) -> None:
    cfg = _cfg("adamw")
    model, opt = _trained(cfg)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 2))
    lion = _cfg("lion")
    with pytest.raises(CheckpointError, match="optim.name: checkpoint 'adamw', config 'lion'"):
        ckpt.load_checkpoint(path, model, build_optimizer(model, lion.optim), config=lion.to_dict())


def test_unknown_checkpoint_names_what_exists(tmp_path: Path) -> None:
    cfg = _cfg()
    model, opt = _trained(cfg, steps=0)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        ckpt.resolve_checkpoint(tmp_path)
    ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 7))
    with pytest.raises(CheckpointError, match="available: step_000007"):
        ckpt.resolve_checkpoint(tmp_path, "step_000099")


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    cfg = _cfg()
    model, opt = _trained(cfg)
    path, _ = ckpt.save_checkpoint(tmp_path, model, opt, _meta(cfg, 2))

    def refuse(*a, **k):
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    ckpt.load_checkpoint(path, model, opt)
