"""The hybrid family: layer layout, causality, Muon routing, learning, and the hybrid-tiny preset."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from support.models import model_config

from engine.models import build_model
from engine.models.hybrid import Hybrid, attention_layers
from engine.models.layers import CausalSelfAttention
from engine.models.ssm import SelectiveSSM
from engine.optim import build_optimizer
from nexus_core.config import ModelConfig, OptimConfig, load_preset
from nexus_core.errors import ConfigError

torch.set_num_threads(1)


def _cfg(**kw: object) -> ModelConfig:
    base = dict(
        family="hybrid",
        vocab_size=64,
        d_model=32,
        n_layers=3,
        n_heads=4,
        n_kv_heads=2,
        seq_len=24,
        ssm_state=4,
        ssm_chunk=4,
    )
    base.update(kw)
    return model_config(**base)  # type: ignore[arg-type]


def _model(**kw: object) -> Hybrid:
    torch.manual_seed(0)
    model = build_model(_cfg(**kw))
    assert isinstance(model, Hybrid)
    return model


@pytest.mark.parametrize(
    ("n_layers", "every", "offset", "expected"),
    [
        (6, 8, 4, [4]),  # the 6-layer seed model: 1 attention + 5 SSM
        (16, 8, 4, [4, 12]),  # Jamba's 1:7
        (4, 8, 4, [3]),  # offset past the last layer: clamped, still one attention layer
        (1, 8, 4, [0]),
        (6, 2, 1, [1, 3, 5]),
    ],
)
def test_attention_layout(n_layers: int, every: int, offset: int, expected: list[int]) -> None:
    cfg = _cfg(n_layers=n_layers, attn_every=every, attn_offset=offset)
    assert attention_layers(cfg) == expected
    if n_layers <= 6:
        model = build_model(cfg)
        kinds = [type(b.mixer) for b in model.blocks]
        assert [i for i, k in enumerate(kinds) if k is CausalSelfAttention] == expected
        assert all(k in (CausalSelfAttention, SelectiveSSM) for k in kinds)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"attn_offset": 8}, r"model.hybrid.attn_offset must be in \[0, attn_every\)"),
        ({"attn_every": 0}, "model.hybrid.attn_every must be between 1"),
        ({"ssm_state": 0}, "model.hybrid.ssm_state must be between 1"),
        ({"ssm_chunk": 0}, "model.hybrid.ssm_chunk must be between 1"),
    ],
)
def test_bad_options_give_one_line_config_errors(override: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_model(_cfg(**override))
    assert "\n" not in str(err.value)


def test_a_transformer_option_on_a_hybrid_is_refused_at_build_too() -> None:
    cfg = _cfg()
    cfg.transformer.mtp_heads = 2
    with pytest.raises(
        ConfigError,
        match="model.transformer.mtp_heads = 2 is read only by the transformer family, "
        "and model.family is hybrid",
    ) as err:
        build_model(cfg)
    assert "\n" not in str(err.value)


def test_causal_under_perturbation() -> None:
    model = _model().double().eval()
    idx = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(idx).logits
        for j in (0, 5, 12, 23):  # chunk 4: inside chunks and on their edges
            idx2 = idx.clone()
            idx2[:, j] = (idx2[:, j] + 7) % 64
            out = model(idx2).logits
            torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-12)
            assert (out[:, j] - base[:, j]).abs().max() > 1e-6


def test_forward_loss_and_ce() -> None:
    model = _model()
    idx = torch.randint(0, 64, (2, 24))
    tgt = torch.randint(0, 64, (2, 24))
    out = model(idx, tgt)
    assert out.logits.shape == (2, 24, 64)
    manual = F.cross_entropy(out.logits.reshape(-1, 64), tgt.reshape(-1))
    torch.testing.assert_close(out.ce, manual.detach())
    torch.testing.assert_close(out.loss.detach(), out.ce)
    smoothed = model(idx, tgt, label_smoothing=0.1)
    torch.testing.assert_close(smoothed.ce, out.ce)  # ce never includes the smoothing
    assert smoothed.loss > smoothed.ce
    assert model(idx).loss is None


def test_muon_params_are_hidden_projections_only() -> None:
    model = _model(n_layers=3, attn_every=3, attn_offset=1)
    muon = dict(model.muon_params())
    for name in muon:
        assert muon[name].ndim == 2
        for word in ("A_log", "mixer.D", "conv1d", "dt_proj", "embed", "head", "norm"):
            assert word not in name, f"{name} must stay with AdamW/Lion"
    ssm_expected = {f"blocks.{i}.mixer.{p}.weight" for i in (0, 2) for p in ("in_proj", "x_proj", "out_proj")}
    attn_expected = {f"blocks.1.mixer.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
    mlp_expected = {
        f"blocks.{i}.mlp.{p}.weight" for i in range(3) for p in ("gate_proj", "up_proj", "down_proj")
    }
    assert set(muon) == ssm_expected | attn_expected | mlp_expected
    # A_log is 2-D, so a plain "every 2-D block matrix" rule would have taken it.
    assert model.blocks[0].mixer.A_log.ndim == 2


def test_init_keeps_ssm_specials() -> None:
    """The family-wide N(0, 0.02) init must not erase Mamba's A, D and dt initialisation."""
    model = _model()
    for ssm in model.ssm_mixers():
        torch.testing.assert_close(ssm.A_log[0].exp(), torch.arange(1.0, 5.0))
        assert torch.equal(ssm.D.detach(), torch.ones_like(ssm.D))
        dt = F.softplus(ssm.dt_proj.bias.detach())
        assert dt.min() >= 0.999e-3 and dt.max() <= 0.1001
    assert model.head.weight is model.embed.weight


def test_a_few_steps_on_a_fixed_batch_reduce_the_loss() -> None:
    model = _model()
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 64, (4, 24), generator=g)
    tgt = torch.roll(idx, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        out = model(idx, tgt)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.2, losses
    for ssm in model.ssm_mixers():  # the special tensors do train
        assert ssm.A_log.grad is not None and ssm.A_log.grad.abs().sum() > 0


def _expected_params(cfg: ModelConfig) -> int:
    """The parameter count from the architecture's formula, independent of the module code."""
    d, v, f = cfg.d_model, cfg.vocab_size, cfg.resolved_d_ff()
    hd = d // cfg.n_heads
    attn = d * cfg.n_heads * hd + 2 * d * cfg.n_kv_heads * hd + cfg.n_heads * hd * d
    di, n, k = cfg.hybrid.ssm_expand * d, cfg.hybrid.ssm_state, cfg.hybrid.ssm_conv
    r = math.ceil(d / 16)
    ssm = d * 2 * di + di * k + di + di * (r + 2 * n) + r * di + di + di * n + di + di * d
    per_block = 2 * d + 3 * d * f  # two norms, SwiGLU
    n_attn = len(attention_layers(cfg))
    return v * d + d + cfg.n_layers * per_block + n_attn * attn + (cfg.n_layers - n_attn) * ssm


def test_hybrid_tiny_preset() -> None:
    cfg = load_preset("hybrid-tiny").validate()
    cfg.model.vocab_size = 256
    assert cfg.model.family == "hybrid" and 4 <= cfg.model.n_layers <= 6
    model = build_model(cfg.model)
    assert len(model.attn_layers) == 1
    assert model.num_params() == _expected_params(cfg.model)
    assert 0.7e6 <= model.num_params() <= 1.3e6


def test_muon_optimizer_routes_every_parameter_once() -> None:
    """Through the engine's real optimizer router: SSM specials land in the AdamW groups."""
    model = _model()
    opt = build_optimizer(model, OptimConfig(name="muon"))
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len({id(p) for p in model.parameters()})
    muon_group = next(g for g in opt.param_groups if g["kind"] == "muon")
    assert {id(p) for p in muon_group["params"]} == {id(p) for _, p in model.muon_params()}
    a_log = model.ssm_mixers()[0].A_log
    assert any(a_log is p for g in opt.param_groups if g["kind"] == "adamw" for p in g["params"])
