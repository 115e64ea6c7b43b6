"""The causality guard: refuse to train a model whose position i can see token j > i.

A model that peeks at the future trains to a beautiful loss and then cannot generate (the seed's
bidirectional wavelet layer did exactly that). The loss curve never shows it, so the engine checks
the property itself before the first step: perturb late tokens and require that every earlier
position's logits stay put. One forward of a 3-row batch, so it costs milliseconds on tiny models.
"""

from __future__ import annotations

import torch

from engine.models.base import LanguageModel
from nexus_core.errors import ConfigError

REL_TOL = 1e-5
"""Allowed change at earlier positions, relative to the largest logit (at least 1): float noise only."""


def check_causality(model: LanguageModel, vocab_size: int, seq_len: int, device: torch.device | str) -> None:
    """Raise ConfigError naming the family when an earlier position's logits depend on a later token.

    Perturbs the token at the middle and at the last position of a random window (drawn from a private
    generator: the global RNG is untouched). Runs in eval mode under no_grad; train/eval mode and any
    carried state (the nested LSTM's) are put back as they were.
    """
    if seq_len < 2 or vocab_size < 2:
        return  # nothing later to perturb
    family = getattr(getattr(model, "config", None), "family", type(model).__name__)
    gen = torch.Generator().manual_seed(0)
    base = torch.randint(0, vocab_size, (seq_len,), generator=gen)
    cuts = sorted({seq_len // 2, seq_len - 1})
    rows = [base]
    for j in cuts:
        row = base.clone()
        row[j] = (row[j] + 1 + torch.randint(0, vocab_size - 1, (), generator=gen)) % vocab_size
        rows.append(row)
    idx = torch.stack(rows).to(device)

    was_training = model.training
    carried = {k: v.detach().clone() for k, v in model.state_tensors().items()}
    model.eval()
    model.reset_state()
    try:
        with torch.no_grad():
            logits = model(idx).logits.float()
    finally:
        model.reset_state()
        if carried:
            model.load_state_tensors(carried)
        model.train(was_training)

    tol = REL_TOL * max(1.0, float(logits[0].abs().max()))
    for cut_row, j in enumerate(cuts, start=1):
        moved = (logits[cut_row, :j] - logits[0, :j]).abs().amax(dim=-1) > tol
        if bool(moved.any()):
            i = int(moved.nonzero()[0])
            raise ConfigError(
                f"model {family!r} sees the future: position {i} changed when token {j} > {i} was altered; "
                "its token mixing must use only past positions"
            )
