"""mHC-lite: n residual streams mixed by doubly stochastic matrices (manifold-constrained
hyper-connections, arXiv 2409.19606 and 2512.24880; lucidrains/hyper-connections).

Around every sub-layer F (attention or MLP) of every block, with x_l the n streams [B, T, n, d]:

    x_{l+1} = H_res · x_l + H_postᵀ · F(H_pre · x_l)

- H_pre [n] (sigmoid) reads F's input as a weighted sum of the streams; H_post [n] (2·sigmoid)
  writes F's output back into each stream.
- H_res [n, n] is doubly stochastic: the "lite" form writes it as a convex combination (softmax
  weights) of all n! permutation matrices, which is doubly stochastic by construction, exactly,
  with no Sinkhorn iterations. Columns summing to 1 means H_res conserves the sum of the streams,
  so the residual path can neither blow up nor fade with depth (the mHC paper's point).
- All three are dynamic, computed per position from that position's streams (so still causal):
  bias + alpha · (RMSNorm(flattened streams) @ phi), alpha starting at 0.01 and phi small, so a fresh
  model starts near the static init: H_pre = 1/n (the mean), H_post = 1, H_res ≈ identity, which
  makes n identical streams behave like a plain residual stream (exactly so with phi = 0).
- The streams are expanded once after the embedding (n copies) and reduced once before the final
  norm (their mean).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from engine.models.layers import Block, RMSNorm
from nexus_core.config import ModelConfig

PHI_STD = 0.02
"""Init std of the dynamic projection (times alpha = 0.01: a fresh model is the static one to ~1e-3)."""
IDENTITY_LOGIT = 4.0
"""Initial softmax logit of the identity permutation (others 0): H_res starts close to identity."""


def permutation_matrices(n: int) -> torch.Tensor:
    """All n! permutation matrices [n!, n, n], the identity first."""
    perms = list(itertools.permutations(range(n)))
    eye = torch.eye(n)
    return torch.stack([eye[list(p)] for p in perms])


class HyperConnection(nn.Module):
    """The mHC-lite wrapper of one sub-layer: streams [B, T, n, d] -> streams [B, T, n, d]."""

    perms: torch.Tensor

    def __init__(self, d_model: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.register_buffer("perms", permutation_matrices(n), persistent=False)
        k = self.perms.shape[0]
        self.norm = RMSNorm(n * d_model)
        # Small random phi breaks the symmetry between streams: from n identical copies, zero phi would
        # give every stream the same gradient forever, and n streams would train as one.
        self.phi = nn.Parameter(torch.randn(n * d_model, k + 2 * n) * PHI_STD)
        self.alpha = nn.Parameter(torch.full((3,), 0.01))
        res_bias = torch.zeros(k)
        res_bias[0] = IDENTITY_LOGIT
        self.res_bias = nn.Parameter(res_bias)
        self.pre_bias = nn.Parameter(torch.full((n,), -math.log(n - 1) if n > 1 else 10.0))  # sigmoid = 1/n
        self.post_bias = nn.Parameter(torch.zeros(n))  # 2 * sigmoid(0) = 1

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(H_res [B, T, n, n], H_pre [B, T, n], H_post [B, T, n]) for streams x [B, T, n, d]."""
        k = self.perms.shape[0]
        z = self.norm(x.flatten(-2)) @ self.phi
        z_res, z_pre, z_post = z.split([k, self.n, self.n], dim=-1)
        weights = torch.softmax(self.alpha[0] * z_res + self.res_bias, dim=-1)
        h_res = torch.einsum("btk,kij->btij", weights, self.perms.to(weights.dtype))
        h_pre = torch.sigmoid(self.alpha[1] * z_pre + self.pre_bias)
        h_post = 2.0 * torch.sigmoid(self.alpha[2] * z_post + self.post_bias)
        return h_res, h_pre, h_post

    def forward(self, x: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        h_res, h_pre, h_post = self.coefficients(x)
        h_res, h_pre, h_post = h_res.to(x.dtype), h_pre.to(x.dtype), h_post.to(x.dtype)
        out = f(torch.einsum("btn,btnd->btd", h_pre, x))
        return torch.einsum("btij,btjd->btid", h_res, x) + h_post[..., None] * out[..., None, :]


class HyperStreams(nn.Module):
    """Runs a stack of Blocks over n streams: expand, two HyperConnections per block, reduce."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n = cfg.transformer.hc_streams
        self.layers = nn.ModuleList(HyperConnection(cfg.d_model, self.n) for _ in range(2 * cfg.n_layers))

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> n copies [B, T, n, d]."""
        return x.unsqueeze(-2).expand(*x.shape[:-1], self.n, x.shape[-1]).contiguous()

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, n, d] -> their mean [B, T, d] (n equal streams give back the one stream)."""
        return x.mean(dim=-2)

    def forward(self, x: torch.Tensor, blocks: nn.ModuleList, loop_count: int = 1) -> torch.Tensor:
        """The block stack (looped `loop_count` times, sharing weights) on n streams; [B, T, d] in and out."""
        streams = self.expand(x)
        for _ in range(loop_count):
            for i, block in enumerate(blocks):
                attn, mlp = sublayers(cast(Block, block))  # a ModuleList is untyped: it holds Blocks
                streams = self.layers[2 * i](streams, attn)
                streams = self.layers[2 * i + 1](streams, mlp)
        return self.reduce(streams)


def sublayers(
    block: Block,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """The two residual branches of a pre-norm Block, without their residual additions."""
    return (
        lambda h: block.drop(block.mixer(block.norm1(h))),
        lambda h: block.drop(block.mlp(block.norm2(h))),
    )
