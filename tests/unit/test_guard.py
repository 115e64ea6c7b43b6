"""The causality guard: every registered family (and the transformer's wavelet / mHC variants) passes,
models that peek at the future fail with one line naming the family, and the guard leaves the model's
mode, carried state and the global RNG as it found them."""

from __future__ import annotations

import pytest
import torch
from support.leaky import Leaky
from support.models import model_config

from engine.guard import check_causality
from engine.models.base import _REGISTRY, _import_families, build_model
from nexus_core.config import ModelConfig
from nexus_core.errors import ConfigError

torch.set_num_threads(1)

_import_families()


def tiny(family: str, **kw: object) -> ModelConfig:
    base: dict[str, object] = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=24)
    if family == "lstm":
        base["levels"] = [1, 4]
    base.update(kw)
    return model_config(family, **base)


@pytest.mark.parametrize("family", sorted(_REGISTRY))
def test_every_registered_family_is_causal(family: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(family)
    check_causality(build_model(cfg), cfg.vocab_size, cfg.seq_len, "cpu")


@pytest.mark.parametrize(
    "opts",
    [
        {"wavelet_layers": [0, 1]},
        {"hc_streams": 2},
        {"hc_streams": 3, "wavelet_layers": [1]},
        {"mtp_heads": 1, "loop_count": 2},
    ],
)
def test_transformer_variants_are_causal(opts: dict) -> None:
    torch.manual_seed(0)
    cfg = tiny("transformer", **opts)
    check_causality(build_model(cfg), cfg.vocab_size, cfg.seq_len, "cpu")


def test_a_causal_toy_passes_so_the_toy_itself_is_sound() -> None:
    torch.manual_seed(0)
    cfg = tiny("leaky")
    check_causality(Leaky(cfg, 0), cfg.vocab_size, cfg.seq_len, "cpu")


@pytest.mark.parametrize(
    ("shift", "where"),
    [
        (1, "position 11 changed when token 12"),
        (5, "position 7 changed when token 12"),
        (None, "position 0 changed when token 12"),
    ],
)
def test_models_that_see_the_future_fail_naming_the_family(shift: int | None, where: str) -> None:
    torch.manual_seed(0)
    cfg = tiny("leaky")
    with pytest.raises(ConfigError) as info:
        check_causality(Leaky(cfg, shift), cfg.vocab_size, cfg.seq_len, "cpu")
    text = str(info.value)
    assert text.startswith("model 'leaky' sees the future") and where in text and "\n" not in text


def test_mode_carried_state_and_global_rng_are_left_alone() -> None:
    torch.manual_seed(0)
    cfg = tiny("lstm")
    model = build_model(cfg).train()
    with torch.no_grad():
        model(torch.randint(0, 64, (3, 24)))  # train mode: the LSTM now carries state
    before = {k: v.clone() for k, v in model.state_tensors().items()}
    assert before
    rng = torch.get_rng_state()
    check_causality(model, cfg.vocab_size, cfg.seq_len, "cpu")
    assert model.training
    after = model.state_tensors()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(torch.get_rng_state(), rng)
    model.eval()
    check_causality(model, cfg.vocab_size, cfg.seq_len, "cpu")
    assert not model.training
