"""A causal Haar-wavelet token mixer: attention's replacement in the layers cfg.wavelet_layers names.

The seed's wavelet layer transformed the whole window at once, so every position mixed in tokens
after it: a splendid training loss and a model that could not generate. This one is the undecimated
("à trous") Haar transform read backwards in time. For scales L = 1, 2, 4, ... up to the window:

    approx_L[t] = mean(v[t-L+1 .. t])                    (the last L tokens)
    detail_L[t] = approx_L[t] - mean(v[t-2L+1 .. t-L])   (the last L minus the L before them)

Every term ends at t, so position t never sees a later token. Each window sum is a difference of
one running sum (O(T) for all scales together); windows that reach before the start average only
the tokens that exist. The mixer is

    y = o_proj( 2·sigmoid(gate(x)) * (w_id * v + sum_L w_L * detail_L + w_c * approx_coarsest) ),  v = in_proj(x)

with per-channel learned gains w: a multi-resolution summary of the past, gated by the present token.
The gate starts near 1 (gate weights are small), so a fresh layer is a plain linear filter and learns
to gate; a silu gate starting near 0 learned a lag-one copy task about twice as slowly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ModelConfig
from engine.errors import ConfigError


def causal_window_means(v: torch.Tensor, lengths: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each L: (mean of v over [t-L+1, t], mean over [t-2L+1, t-L]) at every t, for v [B, T, d].

    Windows clipped at the start average the tokens they hold; an empty window gives 0.
    """
    b, t, d = v.shape
    # Running sum with a leading zero row: sum(v[a..c]) = S[c+1] - S[a]; at least fp32 (bf16 sums drift).
    s = F.pad(v.to(torch.promote_types(v.dtype, torch.float32)).cumsum(dim=1), (0, 0, 1, 0))
    pos = torch.arange(t, device=v.device)
    out = []
    for length in lengths:
        recent_start = (pos - length + 1).clamp_min(0)
        older_start = (pos - 2 * length + 1).clamp_min(0)
        recent = s[:, pos + 1] - s[:, recent_start]
        older = s[:, recent_start] - s[:, older_start]
        n_recent = (pos + 1 - recent_start).to(s.dtype)[:, None]
        n_older = (recent_start - older_start).to(s.dtype).clamp_min(1)[:, None]
        out.append(((recent / n_recent).to(v.dtype), (older / n_older).to(v.dtype)))
    return out


class CausalHaarMixer(nn.Module):
    """Token mixing by causal multi-scale Haar averages and differences (a drop-in for attention)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        n_scales = max(1, math.ceil(math.log2(max(cfg.seq_len, 2))))
        self.lengths = [2**k for k in range(n_scales)]
        self.in_proj = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        # 1-D gains (a ParameterList, not one matrix) so Muon never orthogonalises them.
        self.w_id = nn.Parameter(torch.ones(d))
        self.w_detail = nn.ParameterList(nn.Parameter(torch.full((d,), 0.5)) for _ in self.lengths)
        self.w_coarse = nn.Parameter(torch.full((d,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.in_proj(x)
        mixed = self.w_id * v
        means = causal_window_means(v, self.lengths)
        for w, (recent, older) in zip(self.w_detail, means, strict=True):
            mixed = mixed + w * (recent - older)
        mixed = mixed + self.w_coarse * means[-1][0]
        return self.o_proj(2.0 * torch.sigmoid(self.gate(x)) * mixed)


def wavelet_mixer_for(cfg: ModelConfig, layer: int) -> nn.Module | None:
    """The mixer layer `layer` uses: a CausalHaarMixer when listed in cfg.wavelet_layers, else None
    (Block's default attention)."""
    bad = [i for i in cfg.wavelet_layers if not 0 <= i < cfg.n_layers]
    if bad:
        raise ConfigError(
            f"model.wavelet_layers {cfg.wavelet_layers} names layers outside 0..{cfg.n_layers - 1}: {bad}"
        )
    return CausalHaarMixer(cfg) if layer in cfg.wavelet_layers else None
