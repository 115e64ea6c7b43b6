"""The Engram family: hashing, causality, Muon routing, learning, and the engram-tiny preset."""

from __future__ import annotations

import math

import pytest
import torch
from support.models import model_config

from engine.models import build_model
from engine.models.engram import (
    CONV_KERNEL,
    HEADS_PER_ORDER,
    Engram,
    _is_prime,
    hash_multipliers,
    hash_ngrams,
    table_primes,
)
from engine.optim import build_optimizer
from nexus_core.config import ModelConfig, OptimConfig, load_preset
from nexus_core.errors import ConfigError

torch.set_num_threads(1)


def _cfg(**kw: object) -> ModelConfig:
    base = dict(
        family="engram",
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        seq_len=24,
        layers=[1],
        orders=[2, 3],
        table_mult=4,
    )
    base.update(kw)
    return model_config(**base)  # type: ignore[arg-type]


def _model(**kw: object) -> Engram:
    torch.manual_seed(0)
    model = build_model(_cfg(**kw))
    assert isinstance(model, Engram)
    return model


def test_primes_are_distinct_primes_at_least_the_target() -> None:
    primes = table_primes([0, 3], n_orders=2, target=2048)
    flat = primes[0] + primes[3]
    assert len(flat) == 2 * 2 * HEADS_PER_ORDER == len(set(flat))
    assert all(_is_prime(p) and p >= 2048 for p in flat)
    assert max(flat) < 2048 * 1.1  # "about table_mult * vocab rows"


def test_multipliers_are_odd_seeded_per_layer_and_cannot_overflow() -> None:
    m1, m1b, m2 = hash_multipliers(1, 3, 50000), hash_multipliers(1, 3, 50000), hash_multipliers(2, 3, 50000)
    assert torch.equal(m1, m1b) and not torch.equal(m1, m2)
    assert bool((m1 % 2 == 1).all()) and bool((m1 > 0).all())
    assert int(m1.max()) * 50000 < 2**63  # the pad id (= vocab) times a multiplier fits int64


@pytest.mark.parametrize("vocab", [64, 50000])
def test_hashed_ids_in_range(vocab: int) -> None:
    orders = [2, 3]
    primes = table_primes([0], len(orders), 8 * vocab)[0]
    idx = torch.randint(0, vocab, (4, 300), generator=torch.Generator().manual_seed(0))
    ids = hash_ngrams(idx, hash_multipliers(0, 3, vocab), orders, primes, pad_id=vocab)
    assert ids.shape == (4, 300, len(primes)) and ids.dtype == torch.int64
    for h, p in enumerate(primes):
        assert int(ids[..., h].min()) >= 0 and int(ids[..., h].max()) < p
    # A good spread: most of a head's rows get used by 1200 random n-grams (no degenerate mixing).
    assert len(torch.unique(ids[..., -1])) > 0.5 * min(1200, primes[-1])


def test_repeated_ngrams_hash_equal_and_depend_only_on_the_last_n_tokens() -> None:
    mult = hash_multipliers(0, 3, 64)
    primes = table_primes([0], 2, 256)[0]
    seq = torch.tensor([[5, 9, 7, 3, 5, 9, 7, 1, 9, 7]])
    ids = hash_ngrams(seq, mult, [2, 3], primes, pad_id=64)
    bigram, trigram = slice(0, HEADS_PER_ORDER), slice(HEADS_PER_ORDER, 2 * HEADS_PER_ORDER)
    # (5, 9) at t = 1 and t = 5; (5, 9, 7) at t = 2 and t = 6; (9, 7) at t = 2, 6 and 9.
    assert torch.equal(ids[0, 1, bigram], ids[0, 5, bigram])
    assert torch.equal(ids[0, 2], ids[0, 6])
    assert torch.equal(ids[0, 2, bigram], ids[0, 9, bigram])
    assert not torch.equal(ids[0, 2, trigram], ids[0, 9, trigram])  # (5, 9, 7) vs (1, 9, 7)
    # Position 0 sees the pad before it, not a wrapped-around token.
    assert not torch.equal(ids[0, 0, bigram], ids[0, 4, bigram])


def test_changing_token_t_changes_outputs_only_at_or_after_t() -> None:
    model = _model().double().eval()
    mem = model.memories["1"]
    idx = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    h = torch.randn(2, 24, 32, dtype=torch.float64)
    with torch.no_grad():
        base_logits, base_mem = model(idx).logits, mem(h, idx)
        for t in (0, 6, 23):
            idx2 = idx.clone()
            idx2[:, t] = (idx2[:, t] + 11) % 64
            logits, out = model(idx2).logits, mem(h, idx2)
            torch.testing.assert_close(logits[:, :t], base_logits[:, :t], rtol=0, atol=1e-12)
            torch.testing.assert_close(out[:, :t], base_mem[:, :t], rtol=0, atol=1e-12)
            # The memory itself reacts at t (its n-grams changed), not just the attention path.
            assert (out[:, t] - base_mem[:, t]).abs().max() > 1e-8
            if t + 2 < 24:  # a trigram still contains token t two steps later
                assert (out[:, t + 2] - base_mem[:, t + 2]).abs().max() > 1e-8


def test_muon_params_exclude_tables_and_embeddings() -> None:
    model = _model()
    muon = dict(model.muon_params())
    assert not any("table" in n or "embed" in n or "head" in n or "norm" in n for n in muon)
    assert "memories.1.key_proj.weight" in muon and "memories.1.value_proj.weight" in muon
    assert "blocks.0.mixer.q_proj.weight" in muon and "blocks.1.mlp.down_proj.weight" in muon
    assert all(p.ndim == 2 for p in muon.values())
    assert "memories.1.table.weight" in dict(model.named_parameters())
    assert "memories.1.multipliers" not in model.state_dict()  # derived from the config, not learned


def test_a_few_steps_on_a_fixed_batch_reduce_the_loss_and_train_the_tables() -> None:
    model = _model()
    idx = torch.randint(0, 64, (4, 24), generator=torch.Generator().manual_seed(2))
    tgt = torch.roll(idx, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)  # decay would move every row
    table = model.memories["1"].table.weight
    before = table.detach().clone()
    losses = []
    for _ in range(8):
        out = model(idx, tgt)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.2, losses
    changed_rows = (table.detach() - before).abs().sum(-1) > 0
    assert 0 < int(changed_rows.sum()) < table.shape[0]  # only the looked-up rows move


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"layers": [5]}, "model.engram.layers"),
        ({"layers": []}, "model.engram.layers"),
        ({"orders": [1, 2]}, "model.engram.orders"),
        ({"orders": [2, 2]}, "model.engram.orders"),
        ({"table_mult": 0}, "model.engram.table_mult"),
    ],
)
def test_bad_options_give_one_line_config_errors(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_model(_cfg(**override))
    assert "\n" not in str(err.value)


def _expected_params(cfg: ModelConfig) -> int:
    """Parameter count from the architecture's formula, independent of the module code."""
    d, v, f = cfg.d_model, cfg.vocab_size, cfg.resolved_d_ff()
    hd = d // cfg.n_heads
    attn = d * cfg.n_heads * hd + 2 * d * cfg.n_kv_heads * hd + cfg.n_heads * hd * d
    blocks = cfg.n_layers * (attn + 3 * d * f + 2 * d)
    n_heads = len(cfg.engram.orders) * HEADS_PER_ORDER
    primes = table_primes(sorted(cfg.engram.layers), len(cfg.engram.orders), cfg.engram.table_mult * v)
    mem_dim = (d // n_heads) * n_heads
    memories = sum(
        sum(ps) * (d // n_heads) + 2 * mem_dim * d + 3 * d + d * CONV_KERNEL for ps in primes.values()
    )
    return v * d + d + blocks + memories


def test_engram_tiny_preset() -> None:
    cfg = load_preset("engram-tiny").validate()
    cfg.model.vocab_size = 256
    assert cfg.model.family == "engram"
    model = build_model(cfg.model)
    assert model.num_params() == _expected_params(cfg.model)
    assert 0.8e6 <= model.num_params() <= 1.3e6
    rows = model.memories[str(cfg.model.engram.layers[0])].table.weight.shape[0]
    per_table = rows / (len(cfg.model.engram.orders) * HEADS_PER_ORDER)
    assert 1.0 <= per_table / (cfg.model.engram.table_mult * 256) < 1.1


def test_muon_optimizer_routes_every_parameter_once() -> None:
    """Through the engine's real optimizer router: the tables land in an AdamW group."""
    model = _model()
    opt = build_optimizer(model, OptimConfig(name="muon"))
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len({id(p) for p in model.parameters()})
    table = model.memories["1"].table.weight
    assert any(table is p for g in opt.param_groups if g["kind"] == "adamw" for p in g["params"])
