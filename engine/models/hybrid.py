"""The Nexus hybrid: mostly selective-SSM layers with a few GQA attention layers (Jamba-style ratio).

Layer i is attention when i % attn_every == attn_offset ([model.hybrid]), else a Mamba-1 mixer (ssm.py);
every layer sits in the same pre-norm residual Block with a SwiGLU MLP as the baseline transformer
(engine/models/layers.py), so a comparison between the two measures the token mixing alone. The SSM
layers carry order by their recurrence; rotary positions live in the attention layers only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.models.base import LanguageModel, ModelOutput, register
from engine.models.layers import Block, RMSNorm, init_weights_, lm_output
from engine.models.ssm import SelectiveSSM
from nexus_core.config import ModelConfig


def attention_layers(cfg: ModelConfig) -> list[int]:
    """Indices of the attention layers: i % attn_every == attn_offset.

    The offset is clamped to the last layer, so a model shallower than the offset (the Jamba layout
    8/4 on 4 layers) still gets one attention layer instead of silently none.
    """
    every, offset = cfg.hybrid.attn_every, min(cfg.hybrid.attn_offset, cfg.n_layers - 1)
    return [i for i in range(cfg.n_layers) if i % every == offset]


@register("hybrid")
class Hybrid(LanguageModel):
    """Token embedding -> n_layers Blocks (attention or SSM mixer) -> RMSNorm -> LM head (tied)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.attn_layers = attention_layers(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg, mixer=None if i in self.attn_layers else self._ssm(cfg)) for i in range(cfg.n_layers)
        )
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_weights_(self, depth=cfg.n_layers)
        with torch.no_grad():
            for mixer in self.ssm_mixers():
                # out_proj writes into the residual stream like o_proj: same depth-scaled init.
                nn.init.normal_(mixer.out_proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
                mixer.reset_dt_()  # init_weights_ zeroed the dt bias
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    @staticmethod
    def _ssm(cfg: ModelConfig) -> SelectiveSSM:
        h = cfg.hybrid
        return SelectiveSSM(
            cfg.d_model, d_state=h.ssm_state, expand=h.ssm_expand, d_conv=h.ssm_conv, chunk=h.ssm_chunk
        )

    def ssm_mixers(self) -> list[SelectiveSSM]:
        """The blocks' mixers that are a SelectiveSSM."""
        return [b.mixer for b in self.blocks if isinstance(b.mixer, SelectiveSSM)]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> ModelOutput:
        """Logits for every position; with targets [B, T] (targets[t] = token t+1) also loss and ce."""
        x = self.drop(self.embed(idx))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))
        return lm_output(logits, targets, label_smoothing)

    def muon_params(self) -> list[tuple[str, nn.Parameter]]:
        """2-D hidden projections: q/k/v/o, MLP, SSM in/x/out.

        Never A_log (2-D, but a log-rate per channel and state, not a map), dt_proj, D, conv,
        embeddings, head or norms: those stay with AdamW/Lion.
        """
        special = set()
        for i, block in enumerate(self.blocks):
            if isinstance(block.mixer, SelectiveSSM):
                special |= {f"blocks.{i}.mixer.{n}" for n in block.mixer.special_param_names()}
        return [
            (name, p)
            for name, p in self.named_parameters()
            if p.ndim == 2 and name.startswith("blocks.") and name not in special
        ]
