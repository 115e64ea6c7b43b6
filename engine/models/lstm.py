"""Nested LSTM: a recurrent model whose state persists across batches and whose levels learn on
different clocks (Behrouz et al., Nested Learning, NeurIPS 2025; the memory view of Titans).

    embedding -> level 0 -> level 1 -> ... -> RMSNorm -> head (tied)
    level l:  x = x + o_proj(LSTM_l(RMSNorm(x)))

- Persistent state. In training mode each forward starts from the (h, c) the previous forward ended
  with and stores its own final state, detached (truncated BPTT over one window). The trainer feeds
  contiguous streams (`wants_streams`), so row b of batch s+1 continues row b of batch s and the
  carried state stays meaningful. In eval mode every forward starts from zeros and stores nothing:
  eval batches are random windows, and sampling re-runs a sliding window, so a carried state would
  be wrong there. The state is a checkpoint tensor (`state_tensors`), so a resume continues exactly.
- Multi-timescale updates. Level l has period C_l = cfg.lstm.levels[l]: it takes an optimizer step
  only at steps that are multiples of C_l, on the mean of the gradients of its chunk of C_l steps.
  `hold_gradients` does that around `optimizer.step()` without the optimizer knowing: the gradients
  of levels not due are added to a stash the model keeps (and checkpoints), and their `.grad` set to
  None so every optimizer skips them. Embedding, head and final norm belong to level 0.
- Surprise (cfg.lstm.surprise_weight > 0): an auxiliary loss, 1 - cos(predicted, actual) between a
  projection of the last hidden state and the (stop-gradient) embedding of the next token: how
  surprised the memory is by its next input. Added to `loss`, never to `ce`; its value is in the
  output's `aux` as `lstm/surprise` (a series on the dashboard).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import LanguageModel, ModelOutput, register
from engine.models.layers import RMSNorm, init_weights_, lm_losses
from nexus_core.config import ModelConfig
from nexus_core.errors import ConfigError

GRAD_KEY = "grad."
"""Prefix of stashed-gradient entries in `state_tensors` (hidden state uses 'h.<l>' and 'c.<l>')."""


class LSTMLevel(nn.Module):
    """One level: pre-norm LSTM with a residual output projection (the same layout as a Block)."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.lstm = nn.LSTM(d_model, d_model, batch_first=True)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():  # forget-gate bias 1: remember by default (Jozefowicz et al. 2015)
            self.lstm.get_parameter("bias_ih_l0")[d_model : 2 * d_model].fill_(1.0)
            self.lstm.get_parameter("bias_hh_l0")[d_model : 2 * d_model].zero_()

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        y, (h, c) = self.lstm(self.norm(x), state)
        return x + self.drop(self.o_proj(y)), (h, c)


@register("lstm")
class NestedLSTM(LanguageModel):
    """Embedding -> one LSTM level per entry of cfg.lstm.levels -> RMSNorm -> LM head."""

    wants_streams = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        periods = list(cfg.lstm.levels)
        self.config = cfg
        self.periods = periods
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.levels = nn.ModuleList(LSTMLevel(d, cfg.dropout) for _ in periods)
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.surprise = nn.Linear(d, d, bias=False) if cfg.lstm.surprise_weight > 0 else None
        init_weights_(self, depth=len(periods))  # Linear/Embedding only; the LSTMs keep torch's init
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self._state: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._stash: dict[str, torch.Tensor] = {}
        self._level_of = self._assign_levels()

    def _assign_levels(self) -> dict[str, int]:
        """Parameter name -> level index: a level's own LSTM/norm/projection, everything else level 0."""
        out = {}
        for name, _ in self.named_parameters():
            out[name] = int(name.split(".")[1]) if name.startswith("levels.") else 0
        return out

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> ModelOutput:
        """Logits [B, T, V]; in training mode also continues and then updates the carried state."""
        x = self.drop(self.embed(idx))
        carry = self.training
        start = self._state if carry and self._fits(idx) else None
        new_state = []
        for i, level in enumerate(self.levels):
            h0 = None if start is None else tuple(t.to(x.dtype) for t in start[i])
            x, (h, c) = level(x, h0)
            new_state.append((h.detach(), c.detach()))
        if carry:
            self._state = new_state
        h_final = self.norm(x)
        logits = self.head(h_final)
        if targets is None:
            return ModelOutput(logits=logits)
        loss, ce = lm_losses(logits, targets, label_smoothing)
        aux: dict[str, torch.Tensor] = {}
        if self.surprise is not None:
            surprise = self._surprise_loss(h_final, targets)
            aux["lstm/surprise"] = surprise.detach()
            loss = loss + self.config.lstm.surprise_weight * surprise
        return ModelOutput(logits=logits, loss=loss, ce=ce, aux=aux)

    def _fits(self, idx: torch.Tensor) -> bool:
        """The carried state matches this batch (a different batch size starts from zeros)."""
        return self._state is not None and self._state[0][0].shape[1] == idx.shape[0]

    def _surprise_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean 1 - cos(surprise(h_t), embed(token t+1)) over positions with a target."""
        head = self.surprise
        if head is None:
            raise ValueError("this model has no surprise head (lstm.surprise_weight is 0)")
        valid = targets >= 0
        want = self.embed(targets.clamp_min(0)).detach()
        dist = 1.0 - F.cosine_similarity(head(h).float(), want.float(), dim=-1)
        return (dist * valid).sum() / valid.sum().clamp_min(1)

    # -- carried state ---------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Forget the hidden state (stashed gradients stay: they belong to training, not to a stream)."""
        self._state = None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Hidden state per level ('h.<l>', 'c.<l>') and the slow levels' stashed gradients."""
        out: dict[str, torch.Tensor] = {}
        for i, (h, c) in enumerate(self._state or []):
            out[f"h.{i}"], out[f"c.{i}"] = h, c
        for name, g in self._stash.items():
            out[GRAD_KEY + name] = g
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Replace the hidden state and the stash with what `state_tensors` returned."""
        device = self.embed.weight.device
        params = dict(self.named_parameters())
        n = len(self.levels)
        if all(f"h.{i}" in tensors and f"c.{i}" in tensors for i in range(n)):
            self._state = [(tensors[f"h.{i}"].to(device), tensors[f"c.{i}"].to(device)) for i in range(n)]
        else:
            self._state = None
        self._stash = {}
        for key, g in tensors.items():
            if key.startswith(GRAD_KEY):
                name = key[len(GRAD_KEY) :]
                if name not in params or params[name].shape != g.shape:
                    raise ConfigError(
                        f"saved LSTM state has a gradient for {name!r} that this model cannot hold"
                    )
                self._stash[name] = g.to(device=device, dtype=params[name].dtype).clone()

    # -- multi-timescale updates -----------------------------------------------------------------

    @contextmanager
    def hold_gradients(self, step: int) -> Iterator[None]:
        """Around `optimizer.step()` of step number `step` (1-based): only due levels get a gradient.

        A level with period C > 1 adds this step's gradient to its stash; at steps that are multiples
        of C its parameters get the stash's mean over the chunk and the stash empties, otherwise their
        `.grad` is None and the optimizer skips them. Period-1 levels are never touched, so with every
        period 1 the update is bit for bit the plain one. The caller may zero grads afterwards.
        """
        for name, p in self.named_parameters():
            period = self.periods[self._level_of[name]]
            if period == 1 or p.grad is None:
                continue
            acc = self._stash.get(name)
            acc = p.grad.detach().clone() if acc is None else acc.add_(p.grad)
            if step % period == 0:
                p.grad = acc.div_(period)
                self._stash.pop(name, None)
            else:
                self._stash[name] = acc
                p.grad = None
        yield
