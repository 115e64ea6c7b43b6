"""Engram: the baseline transformer plus a hashed n-gram memory gated into the residual stream.

After Cheng et al. (arXiv 2601.07372) and deepseek-ai/Engram's engram_demo_v1.py. At each chosen
layer, the last n tokens (n in `engram_orders`) are hashed into a few embedding tables; the looked-up
vectors are concatenated, gated per position by how well they agree with the hidden state, smoothed
by a short causal conv and added to the residual stream. A lookup is O(1) whatever the table size,
so the memory adds capacity (local n-gram statistics) for almost no compute.

Hashing is plain int64 arithmetic on token ids inside forward: deterministic, on the ids' device,
and cheap next to one matmul, so the data path stays the same for every family.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import LanguageModel, ModelOutput, register
from engine.models.layers import Block, RMSNorm, init_weights_, lm_output
from nexus_core.config import ModelConfig

HEADS_PER_ORDER = 2
"""Hash functions (each with its own prime-sized table) per n-gram order: two collisions at once are rarer."""
CONV_KERNEL = 4
HASH_SEED = 0
LAYER_SEED_PRIME = 10007
"""Per-layer seeds are HASH_SEED + LAYER_SEED_PRIME * layer, as in the reference demo."""


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % f for f in range(3, math.isqrt(n) + 1, 2))


def table_primes(layers: list[int], n_orders: int, target: int) -> dict[int, list[int]]:
    """A distinct prime >= target for every (layer, order, head) table, in that order.

    Prime moduli spread the XOR mix evenly over the rows; distinct ones keep two tables from
    colliding on the same n-grams.
    """
    out: dict[int, list[int]] = {}
    candidate = max(2, target)
    for layer in layers:
        primes = []
        for _ in range(n_orders * HEADS_PER_ORDER):
            while not _is_prime(candidate):
                candidate += 1
            primes.append(candidate)
            candidate += 1
        out[layer] = primes
    return out


def hash_multipliers(layer: int, max_order: int, vocab_size: int) -> torch.Tensor:
    """Odd random int64 multipliers, one per n-gram position, seeded by the layer.

    Bounded so token * multiplier never overflows int64 (pad id = vocab_size included); odd so the
    multiplication is a bijection modulo 2^63 and loses no bits of the token id.
    """
    half_bound = max(1, (2**63 - 1) // (vocab_size + 1) // 2)
    gen = torch.Generator().manual_seed(HASH_SEED + LAYER_SEED_PRIME * layer)
    return torch.randint(0, half_bound, (max_order,), generator=gen, dtype=torch.int64) * 2 + 1


def hash_ngrams(
    idx: torch.Tensor, multipliers: torch.Tensor, orders: list[int], primes: list[int], pad_id: int
) -> torch.Tensor:
    """Row ids [B, T, len(orders) * HEADS_PER_ORDER] into each head's own table.

    For order n at position t: mix = XOR_{k<n} (tok_{t-k} * m_k), then mix mod the head's prime.
    Positions before the window start read `pad_id`, so only tokens <= t ever enter position t.
    """
    T = idx.shape[1]
    shifted = [idx] + [F.pad(idx, (k, 0), value=pad_id)[:, :T] for k in range(1, max(orders))]
    heads = []
    it = iter(primes)
    for n in orders:
        mix = shifted[0] * multipliers[0]
        for k in range(1, n):
            mix = torch.bitwise_xor(mix, shifted[k] * multipliers[k])
        for _ in range(HEADS_PER_ORDER):
            heads.append(torch.remainder(mix, next(it)))  # remainder: >= 0 even for a negative mix
    return torch.stack(heads, dim=-1)


class EngramMemory(nn.Module):
    """Hashed n-gram lookup -> sqrt-sign gate against the hidden state -> short causal conv.

    Parameter names: the embedding rows live in `table` (the optimizer router keeps any name with
    'table' away from Muon); key_proj / value_proj are ordinary 2-D projections.
    """

    multipliers: torch.Tensor
    offsets: torch.Tensor

    def __init__(self, cfg: ModelConfig, layer: int, primes: list[int]) -> None:
        super().__init__()
        d = cfg.d_model
        self.orders = list(cfg.engram.orders)
        self.pad_id = cfg.vocab_size  # outside the token range: "before the window" hashes apart
        n_heads = len(primes)
        self.head_dim = max(1, d // n_heads)
        mem_dim = self.head_dim * n_heads
        # Pure functions of the config: non-persistent, so checkpoints carry only learned tensors.
        self.register_buffer(
            "multipliers", hash_multipliers(layer, max(self.orders), cfg.vocab_size), persistent=False
        )
        offsets = torch.tensor([0, *primes[:-1]], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.primes = primes
        self.table = nn.Embedding(sum(primes), self.head_dim)
        self.key_proj = nn.Linear(mem_dim, d, bias=False)
        self.value_proj = nn.Linear(mem_dim, d, bias=False)
        self.key_norm = RMSNorm(d)
        self.query_norm = RMSNorm(d)
        self.conv_norm = RMSNorm(d)
        dilation = max(self.orders)
        self.conv = nn.Conv1d(
            d, d, CONV_KERNEL, groups=d, bias=False, dilation=dilation, padding=(CONV_KERNEL - 1) * dilation
        )

    def hash(self, idx: torch.Tensor) -> torch.Tensor:
        """Row ids [B, T, heads], each in [0, its head's prime)."""
        return hash_ngrams(idx, self.multipliers, self.orders, self.primes, self.pad_id)

    def forward(self, h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """What to add to the residual stream h [B, T, d] given the token ids idx [B, T]."""
        T = h.shape[1]
        e = self.table(self.hash(idx) + self.offsets).flatten(-2)  # [B, T, heads * head_dim]
        s = (self.key_norm(self.key_proj(e)) * self.query_norm(h)).sum(-1) / math.sqrt(h.shape[-1])
        # sqrt keeps the gate's logit from saturating the sigmoid; clamp keeps its gradient finite at 0.
        gate = torch.sigmoid(s.sign() * s.abs().clamp_min(1e-6).sqrt())
        v = gate.unsqueeze(-1) * self.value_proj(e)
        conv = self.conv(self.conv_norm(v).transpose(1, 2))[..., :T].transpose(1, 2)  # causal: left pad only
        return v + F.silu(conv)


@register("engram")
class Engram(LanguageModel):
    """The transformer stack (layers.Block) with an EngramMemory added before each of [model.engram] layers."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers = sorted(set(cfg.engram.layers))
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        primes = table_primes(layers, len(cfg.engram.orders), cfg.engram.table_mult * cfg.vocab_size)
        self.memories = nn.ModuleDict({str(i): EngramMemory(cfg, i, primes[i]) for i in layers})
        init_weights_(self, depth=cfg.n_layers)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> ModelOutput:
        """Logits for every position; with targets [B, T] (targets[t] = token t+1) also loss and ce."""
        x = self.drop(self.embed(idx))
        for i, block in enumerate(self.blocks):
            if str(i) in self.memories:
                x = x + self.memories[str(i)](x, idx)
            x = block(x)
        logits = self.head(self.norm(x))
        return lm_output(logits, targets, label_smoothing)

    def muon_params(self) -> list[tuple[str, nn.Parameter]]:
        """2-D projections in the blocks and the memories' key/value maps; never tables, embed, head."""
        return [
            (name, p)
            for name, p in self.named_parameters()
            if p.ndim == 2 and name.startswith(("blocks.", "memories.")) and "table" not in name
        ]
