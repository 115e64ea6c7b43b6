"""A model that sees the future, for the causality guard's tests (in process, and swapped into a real
`train` by tests/integration/test_guard_run.py)."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.base import LanguageModel, ModelOutput
from nexus_core.config import ModelConfig


class Leaky(LanguageModel):
    """A deliberately broken model: position t also reads the token `shift` places ahead (0 = none),
    or with shift None the mean of the whole window (a bidirectional mixer)."""

    def __init__(self, cfg: ModelConfig, shift: int | None) -> None:
        super().__init__()
        self.config = cfg
        self.shift = shift
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, idx, targets=None, label_smoothing=0.0):  # type: ignore[no-untyped-def, override]
        x = self.embed(idx)
        if self.shift is None:
            x = x + x.mean(dim=1, keepdim=True)
        elif self.shift > 0:
            ahead = torch.roll(x, -self.shift, dims=1)
            ahead[:, -self.shift :] = 0
            x = x + 0.01 * ahead
        return ModelOutput(logits=self.head(x))
