"""The baseline: a pre-norm GQA transformer with rotary positions and SwiGLU MLPs (Llama-style, small).

Options on top of the plain model, all in [model.transformer] (cfg.transformer):
- Multi-token prediction (`mtp_heads = D > 0`), the parallel-heads variant of Gloeckle et al.
  (arXiv 2404.19737): D extra heads branch from the trunk's final hidden state; head k (1..D) is one
  more Block followed by the shared final norm and the shared unembedding, and predicts token t+1+k.
  L = CE_main + (mtp_weight / D) * sum_k CE_k. The main path is exactly the model without MTP, so
  `ce` (main head only) and sampling (which never runs the extra heads) compare across settings.
  Each head's pure CE is in the output's `aux` as `mtp/head<k>_ce` (a series on the dashboard).
- Looped layers (`loop_count = n`): the block stack runs n times with shared weights, a deeper
  computation for the same parameter count.
- Causal Haar-wavelet token mixing (`wavelet_layers`, engine/models/wavelet.py) instead of attention
  in the listed layers, and mHC-lite residual streams (`hc_streams = n > 0`, engine/models/hyper.py).
  With both off the model is exactly the plain one.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.base import LanguageModel, ModelOutput, register
from engine.models.hyper import HyperStreams
from engine.models.layers import Block, RMSNorm, init_weights_, lm_losses
from engine.models.wavelet import wavelet_mixer_for
from nexus_core.config import ModelConfig


@register("transformer")
class Transformer(LanguageModel):
    """Token embedding -> n_layers Blocks (x loop_count) -> RMSNorm -> LM head (tied by default)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, mixer=wavelet_mixer_for(cfg, i)) for i in range(cfg.n_layers))
        opts = cfg.transformer
        self.mtp_blocks = nn.ModuleList(Block(cfg) for _ in range(opts.mtp_heads))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_weights_(self, depth=cfg.n_layers * opts.loop_count)
        if cfg.tie_embeddings:
            # After init, so both names point at the embedding's N(0, 0.02) draw.
            self.head.weight = self.embed.weight
        # Built after init_weights_ (it sets its own init), so hc_streams=0 draws the same weights.
        self.hc = HyperStreams(cfg) if opts.hc_streams != 0 else None

    def trunk(self, idx: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, T, d] after the (looped) block stack, before the final norm."""
        x = self.drop(self.embed(idx))
        if self.hc is not None:
            return self.hc(x, self.blocks, self.config.transformer.loop_count)
        for _ in range(self.config.transformer.loop_count):
            for block in self.blocks:
                x = block(x)
        return x

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> ModelOutput:
        """Logits for every position; with targets [B, T] (targets[t] = token t+1) also loss and ce."""
        h = self.trunk(idx)
        logits = self.head(self.norm(h))
        if targets is None:
            return ModelOutput(logits=logits)
        loss, ce = lm_losses(logits, targets, label_smoothing)
        aux: dict[str, torch.Tensor] = {}
        if self.mtp_blocks:
            weight = self.config.transformer.mtp_weight / len(self.mtp_blocks)
            loss = loss + weight * self._mtp_loss(h, targets, label_smoothing, aux)
        return ModelOutput(logits=logits, loss=loss, ce=ce, aux=aux)

    def _mtp_loss(
        self, h: torch.Tensor, targets: torch.Tensor, label_smoothing: float, aux: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Sum over k = 1..D of head k's CE against token t+1+k, i.e. targets shifted left by k;
        each head's pure CE goes into `aux` as `mtp/head<k>_ce`.

        Positions whose token t+1+k lies past the window are dropped (a window of T tokens offers
        T-k such pairs); a head with no pair left (k >= T) adds nothing.
        """
        total = h.new_zeros((), dtype=torch.float32)
        for k, block in enumerate(self.mtp_blocks, start=1):
            if k >= targets.shape[1]:
                break
            logits_k = self.head(self.norm(block(h[:, :-k])))
            loss_k, ce_k = lm_losses(logits_k, targets[:, k:], label_smoothing)
            aux[f"mtp/head{k}_ce"] = ce_k
            total = total + loss_k
        return total

    def muon_params(self) -> list[tuple[str, nn.Parameter]]:
        """The 2-D matrices inside the blocks (q/k/v/o, MLP, MTP blocks); never embedding, head, norms."""
        return [
            (name, p)
            for name, p in self.named_parameters()
            if p.ndim == 2 and name.startswith(("blocks.", "mtp_blocks."))
        ]
