"""The interface every model family implements, and the registry that builds one from a config.

The trainer, the optimizer router, checkpoints and sampling only ever see this interface, so a new
family plugs in by subclassing `LanguageModel` and calling `register`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nexus_core.config import ModelConfig
from nexus_core.errors import ConfigError


@dataclass
class ModelOutput:
    """What a forward pass returns.

    `loss` is what the optimizer minimises (label smoothing, MTP heads, aux losses included);
    `ce` is the pure next-token cross-entropy of the main head, the number to compare across runs.
    Both are None when no targets were given.
    `aux` holds a family's own training signals as 0-d tensors, named with a section
    (`mtp/head1_ce`, `lstm/surprise`): the trainer averages them like `loss` and records them as
    series of their own, read off the training thread (engine/stepping.py). Empty when none.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    ce: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


class LanguageModel(nn.Module):
    """A causal language model over token ids [B, T] -> logits [B, T, V]."""

    config: ModelConfig

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> ModelOutput:
        raise NotImplementedError

    def muon_params(self) -> list[tuple[str, nn.Parameter]]:
        """2-D hidden weight matrices that Muon may orthogonalise.

        Default: every 2-D parameter except embeddings and output heads (any module that is an
        nn.Embedding, or whose name contains 'embed', 'head' or 'table'). Families with other
        special matrices (SSM A_log, Engram tables) override or rely on those names.
        """
        skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        out = []
        for name, p in self.named_parameters():
            if p.ndim != 2 or id(p) in skip:
                continue
            if any(word in name for word in ("embed", "head", "table")):
                continue
            out.append((name, p))
        return out

    def num_params(self) -> int:
        """Unique parameters (tied weights counted once)."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    # Persistent state (the nested LSTM carries hidden state across batches). Stateless models
    # keep these defaults.
    def reset_state(self) -> None:
        """Forget any state carried across batches (called before eval and sampling)."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Extra tensors a checkpoint must keep so a resume continues exactly."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `state_tensors` returned."""

    wants_streams: bool = False
    """True when carried state needs contiguous streams (row b of batch s+1 continues row b of batch s)
    instead of random windows; the trainer then feeds `data.contiguous_streams`."""

    @contextmanager
    def hold_gradients(self, step: int) -> Iterator[None]:
        """Wrap `optimizer.step()` for optimizer step number `step` (1-based: the trainer's step + 1).

        A family whose parameter groups update on slower clocks (the nested LSTM) sets `.grad = None`
        on the groups not due, so every optimizer skips them, and keeps their gradients itself until
        they are. The default holds nothing, so stateless families step every parameter every time.
        """
        yield


_REGISTRY: dict[str, Callable[[ModelConfig], LanguageModel]] = {}


def register(family: str) -> Callable[[Any], Any]:
    """Class decorator: `@register("transformer")` makes `build_model` know the family."""

    def wrap(cls: Any) -> Any:
        _REGISTRY[family] = cls
        return cls

    return wrap


def build_model(cfg: ModelConfig) -> LanguageModel:
    """Build the model for `cfg.family` (vocab_size must already be resolved). The model section checks
    itself first, so a model built without Config.validate() still refuses a bad option in one line."""
    _import_families()
    cfg.check("model")
    if cfg.family not in _REGISTRY:
        raise ConfigError(
            f"model.family {cfg.family!r} is not available; known: {', '.join(sorted(_REGISTRY))}"
        )
    if cfg.vocab_size <= 0:
        raise ConfigError("model.vocab_size must be resolved from the tokenizer before building the model")
    return _REGISTRY[cfg.family](cfg)


def _import_families() -> None:
    """Import every family module so each registers itself; a missing one is simply not offered."""
    import importlib

    for module in ("transformer", "hybrid", "engram", "lstm"):
        try:
            importlib.import_module(f"engine.models.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"engine.models.{module}":
                raise
