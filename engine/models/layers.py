"""Building blocks shared by the model families: norm, rotary, GQA attention, SwiGLU, a pre-norm block,
the nanoGPT-style init and the (loss, ce) pair every family reports.

They live apart from any one family so the hybrid, Engram and LSTM models reuse the exact same
attention and MLP as the baseline: a comparison between families then measures the family, not a
subtly different attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import ModelOutput
from nexus_core.config import ModelConfig

RESIDUAL_PROJ_NAMES = ("o_proj", "down_proj")
"""Linear layers that write into the residual stream; `init_weights_` shrinks them with depth."""


class RMSNorm(nn.RMSNorm):
    """torch's RMSNorm with a learnable gain and eps fixed at 1e-6 (so bf16 and fp32 runs agree)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps=eps)


class Rotary(nn.Module):
    """Rotary position embedding (RoPE, half-split layout as in GPT-NeoX / Llama).

    cos/sin are precomputed for `seq_len` positions into non-persistent buffers: they follow the
    module to the device but stay out of checkpoints (they are a pure function of the config).
    A longer input grows the tables instead of failing.
    """

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary needs an even head size, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        cos, sin = self._tables(seq_len, torch.device("cpu"))
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _tables(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = 1.0 / (
            self.base ** (torch.arange(0, self.head_dim, 2, device=device).float() / self.head_dim)
        )
        angles = torch.outer(torch.arange(seq_len, device=device).float(), inv_freq)  # [T, D/2]
        return angles.cos(), angles.sin()

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Rotate x [B, H, T, D] as if its first position were `offset`."""
        t = x.shape[-2]
        if offset + t > self.cos.shape[0]:
            self.cos, self.sin = self._tables(offset + t, self.cos.device)
        # Cast to x's dtype so bf16 q/k stay bf16 (SDPA wants q, k, v in one dtype).
        cos = self.cos[offset : offset + t].to(x.dtype)
        sin = self.sin[offset : offset + t].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention with grouped-query KV heads and rotary positions.

    Query head h reads KV head h // (n_heads / n_kv_heads) (repeat_interleave, the layout
    `scaled_dot_product_attention(enable_gqa=True)` uses), so n_kv_heads == n_heads is plain MHA.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.n_heads % cfg.n_kv_heads:
            raise ValueError(f"n_heads ({cfg.n_heads}) must be divisible by n_kv_heads ({cfg.n_kv_heads})")
        self.n_heads = cfg.n_heads
        self.n_kv_heads = cfg.n_kv_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.dropout = cfg.dropout
        kv_dim = self.n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * self.head_dim, cfg.d_model, bias=False)
        self.rotary = Rotary(self.head_dim, cfg.seq_len, cfg.rope_base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rotary(q), self.rotary(k)
        group = self.n_heads // self.n_kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class SwiGLU(nn.Module):
    """Gated MLP: down(silu(gate(x)) * up(x)), hidden width cfg.resolved_d_ff()."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = cfg.resolved_d_ff()
        self.gate_proj = nn.Linear(cfg.d_model, hidden, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm residual block: x + mixer(norm(x)), then x + mlp(norm(x)).

    `mixer` defaults to CausalSelfAttention; a family passes its own token mixer (an SSM, a wavelet
    layer) to keep the same norm/MLP/residual layout around it.
    """

    def __init__(self, cfg: ModelConfig, mixer: nn.Module | None = None) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model)
        self.mixer = mixer if mixer is not None else CausalSelfAttention(cfg)
        self.norm2 = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.mixer(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


def init_weights_(model: nn.Module, depth: int, std: float = 0.02) -> None:
    """nanoGPT init: every Linear/Embedding ~ N(0, std), biases 0, and the residual projections
    (`RESIDUAL_PROJ_NAMES`) ~ N(0, std / sqrt(2 * depth)) so the residual stream's variance does not
    grow with the number of blocks. `depth` counts blocks as run (n_layers * loop_count).
    Norm gains keep their ones. Tied weights are simply drawn twice; the last draw wins.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
    for name, p in model.named_parameters():
        if name.endswith(tuple(f"{n}.weight" for n in RESIDUAL_PROJ_NAMES)):
            nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * depth))


def lm_losses(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, ce) for logits [..., V] against targets [...] (target -1 = ignore).

    `loss` is label-smoothed when asked and is what to backpropagate; `ce` is the pure un-smoothed
    cross-entropy, detached, the number reported and compared (smoothing has a floor above zero,
    so a smoothed loss is not comparable across settings). Computed in fp32 for stable log-softmax.
    """
    flat = logits.reshape(-1, logits.shape[-1]).float()
    tgt = targets.reshape(-1)
    loss = F.cross_entropy(flat, tgt, ignore_index=-1, label_smoothing=label_smoothing)
    if label_smoothing == 0.0:
        return loss, loss.detach()
    with torch.no_grad():
        ce = F.cross_entropy(flat, tgt, ignore_index=-1)
    return loss, ce


def lm_output(
    logits: torch.Tensor, targets: torch.Tensor | None, label_smoothing: float = 0.0
) -> ModelOutput:
    """The ModelOutput of a single-head model: logits alone, or with (loss, ce) when there are targets."""
    if targets is None:
        return ModelOutput(logits=logits)
    loss, ce = lm_losses(logits, targets, label_smoothing)
    return ModelOutput(logits=logits, loss=loss, ce=ce)
