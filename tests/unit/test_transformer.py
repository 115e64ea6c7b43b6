"""The baseline transformer and the shared layers: causality, GQA head mapping, MTP and label-smoothing
loss accounting, size of the tiny preset, init, the Muon parameter split, and that it learns."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from support.models import model_config

from engine.models import build_model
from engine.models.layers import CausalSelfAttention, lm_losses
from engine.models.transformer import Transformer
from nexus_core.config import ModelConfig, load_preset

torch.set_num_threads(1)


def small(**kw: object) -> ModelConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=16)
    base.update(kw)
    return model_config(**base)  # type: ignore[arg-type]


def batch(cfg: ModelConfig, b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, cfg.vocab_size, (b, cfg.seq_len + 1), generator=g)
    return data[:, :-1], data[:, 1:]


@pytest.mark.parametrize("opts", [{}, {"loop_count": 2}, {"mtp_heads": 2}, {"n_kv_heads": 1}])
def test_changing_token_t_leaves_earlier_logits_unchanged(opts: dict) -> None:
    torch.manual_seed(0)
    cfg = small(**opts)
    model = Transformer(cfg).eval()
    idx, _ = batch(cfg)
    t = 9
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % cfg.vocab_size
    with torch.no_grad():
        a, b = model(idx).logits, model(changed).logits
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)
    assert not torch.allclose(a[:, t:], b[:, t:], atol=1e-4)


def _reference_mha(attn: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Textbook multi-head attention (explicit masked softmax) with attn's weights, one KV per head."""
    b, t, _ = x.shape
    h, d = attn.n_heads, attn.head_dim
    q = attn.rotary((x @ attn.q_proj.weight.T).view(b, t, h, d).transpose(1, 2))
    k = attn.rotary((x @ attn.k_proj.weight.T).view(b, t, h, d).transpose(1, 2))
    v = (x @ attn.v_proj.weight.T).view(b, t, h, d).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return y.transpose(1, 2).reshape(b, t, h * d) @ attn.o_proj.weight.T


def test_gqa_with_as_many_kv_heads_as_query_heads_is_plain_mha() -> None:
    torch.manual_seed(1)
    attn = CausalSelfAttention(small(n_kv_heads=4))
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        assert torch.allclose(attn(x), _reference_mha(attn, x), atol=1e-5)


def test_gqa_query_head_h_reads_kv_head_h_div_group() -> None:
    """GQA with 2 KV heads for 4 query heads == MHA whose KV weights repeat each KV head twice in place."""
    torch.manual_seed(2)
    gqa = CausalSelfAttention(small(n_kv_heads=2))
    mha = CausalSelfAttention(small(n_kv_heads=4))
    d = gqa.head_dim
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        for name in ("k_proj", "v_proj"):
            rows = getattr(gqa, name).weight.view(2, d, -1).repeat_interleave(2, dim=0)  # heads 0,0,1,1
            getattr(mha, name).weight.copy_(rows.reshape(4 * d, -1))
        x = torch.randn(2, 16, 32)
        assert torch.allclose(gqa(x), mha(x), atol=1e-5)
        # Mapping h -> h % n_kv instead (heads 0,1,0,1) would give a different result.
        for name in ("k_proj", "v_proj"):
            rows = getattr(gqa, name).weight.view(2, d, -1).repeat(2, 1, 1)
            getattr(mha, name).weight.copy_(rows.reshape(4 * d, -1))
        assert not torch.allclose(gqa(x), mha(x), atol=1e-4)


@pytest.mark.parametrize("opts", [{"mtp_heads": 0}, {"mtp_heads": 2, "mtp_weight": 0.0}])
def test_without_mtp_or_label_smoothing_loss_equals_ce(opts: dict) -> None:
    torch.manual_seed(3)
    cfg = small(**opts)
    out = Transformer(cfg)(*batch(cfg))
    assert out.loss is not None and out.ce is not None
    assert out.loss.item() == out.ce.item()
    assert out.ce.item() == pytest.approx(
        F.cross_entropy(out.logits.flatten(0, 1), batch(cfg)[1].flatten()).item()
    )


def test_label_smoothing_raises_loss_and_leaves_ce_unchanged() -> None:
    torch.manual_seed(4)
    cfg = small()
    model = Transformer(cfg)
    idx, tgt = batch(cfg)
    plain, smooth = model(idx, tgt), model(idx, tgt, label_smoothing=0.1)
    assert smooth.ce.item() == pytest.approx(plain.ce.item(), abs=1e-6)
    assert smooth.loss.item() > plain.loss.item() + 1e-3


def test_mtp_head_k_is_scored_against_token_t_plus_1_plus_k() -> None:
    """loss = CE_main + (w/D) * sum_k CE(head_k[:, :T-k], targets[:, k:]), ce = CE_main alone."""
    torch.manual_seed(5)
    cfg = small(mtp_heads=2, mtp_weight=0.3)
    model = Transformer(cfg)
    idx, tgt = batch(cfg)
    out = model(idx, tgt)
    plain = Transformer(small())
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("mtp_")})
    assert out.ce.item() == pytest.approx(plain(idx, tgt).ce.item(), abs=1e-6)
    with torch.no_grad():
        h = model.trunk(idx)
        extra = []
        for k in (1, 2):
            logits_k = model.head(model.norm(model.mtp_blocks[k - 1](h)))[:, : cfg.seq_len - k]
            extra.append(F.cross_entropy(logits_k.flatten(0, 1), tgt[:, k:].flatten()))
    want = out.ce.item() + 0.3 / 2 * sum(e.item() for e in extra)
    assert out.loss.item() == pytest.approx(want, abs=1e-5)


def test_tiny_preset_has_about_a_million_parameters() -> None:
    cfg = load_preset("tiny").model
    cfg.vocab_size = 256
    model = build_model(cfg)
    assert isinstance(model, Transformer)
    assert 0.7e6 <= model.num_params() <= 1.2e6


def test_tied_head_shares_the_embedding_and_untied_does_not() -> None:
    tied, untied = Transformer(small()), Transformer(small(tie_embeddings=False))
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight is not untied.embed.weight
    assert untied.num_params() == tied.num_params() + 64 * 32


def test_init_scales_residual_projections_with_depth() -> None:
    torch.manual_seed(7)
    cfg = small(d_model=128, n_layers=4, loop_count=2, n_heads=4, n_kv_heads=4, d_ff=512)
    model = Transformer(cfg)
    resid = torch.cat([b.mixer.o_proj.weight.flatten() for b in model.blocks])
    other = torch.cat([b.mixer.q_proj.weight.flatten() for b in model.blocks])
    assert other.std().item() == pytest.approx(0.02, rel=0.05)
    assert resid.std().item() == pytest.approx(0.02 / math.sqrt(2 * 4 * 2), rel=0.05)
    assert torch.all(model.norm.weight == 1)


@pytest.mark.parametrize("tie", [True, False])
def test_muon_params_are_exactly_the_hidden_matrices(tie: bool) -> None:
    model = Transformer(small(mtp_heads=1, tie_embeddings=tie))
    names = {name for name, _ in model.muon_params()}
    assert all(p.ndim == 2 for _, p in model.muon_params())
    per_block = {
        "mixer.q_proj.weight",
        "mixer.k_proj.weight",
        "mixer.v_proj.weight",
        "mixer.o_proj.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    }
    want = {f"blocks.{i}.{n}" for i in range(2) for n in per_block} | {f"mtp_blocks.0.{n}" for n in per_block}
    assert names == want
    assert not any(p is model.embed.weight or p is model.head.weight for _, p in model.muon_params())


def test_lm_losses_ignores_minus_one_targets() -> None:
    torch.manual_seed(8)
    logits = torch.randn(2, 5, 11)
    tgt = torch.randint(0, 11, (2, 5))
    masked = tgt.clone()
    masked[:, -2:] = -1
    loss, ce = lm_losses(logits, masked)
    assert loss.item() == pytest.approx(
        F.cross_entropy(logits[:, :3].flatten(0, 1), tgt[:, :3].flatten()).item()
    )
    assert not ce.requires_grad


@pytest.mark.parametrize("opts", [{}, {"mtp_heads": 1, "loop_count": 2}])
def test_a_few_adamw_steps_on_a_fixed_batch_reduce_the_loss(opts: dict) -> None:
    torch.manual_seed(9)
    cfg = small(**opts)
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    idx, tgt = batch(cfg, b=4)
    first = model(idx, tgt).ce.item()
    for _ in range(15):
        out = model(idx, tgt, label_smoothing=0.05)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    last = model(idx, tgt).ce.item()
    assert first == pytest.approx(math.log(64), abs=0.3)  # a fresh model is close to uniform
    assert last < 0.7 * first


def test_rotary_scores_depend_only_on_relative_position_and_tables_stay_out_of_checkpoints() -> None:
    from engine.models.layers import Rotary

    torch.manual_seed(10)
    rot = Rotary(8, seq_len=4)  # shorter than used below: the tables grow on demand
    q, k = torch.randn(8), torch.randn(8)
    seq = torch.zeros(1, 1, 12, 8)

    def at(v: torch.Tensor, pos: int) -> torch.Tensor:
        x = seq.clone()
        x[0, 0, pos] = v
        return rot(x)[0, 0, pos]

    assert (at(q, 5) @ at(k, 2)).item() == pytest.approx((at(q, 9) @ at(k, 6)).item(), abs=1e-5)
    assert (at(q, 5) @ at(k, 2)).item() != pytest.approx((at(q, 5) @ at(k, 4)).item(), abs=1e-5)
    assert torch.allclose(rot(seq + 1)[..., :4, :], Rotary(8, seq_len=4)(seq[..., :4, :] + 1))
    assert not any("rotary" in key for key in Transformer(small()).state_dict())
