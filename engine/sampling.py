"""Text from the live model, taken between training steps without disturbing training.

Exact resume (N+N steps == 2N steps) needs the training process's RNG streams, train/eval mode and
carried model state to be the same whether or not someone asked for a sample. So sampling draws from
its own torch.Generator, runs under inference_mode in eval mode, and puts the mode and any carried
state (the nested LSTM's) back exactly as it found them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from engine.models.base import LanguageModel
from engine.tokenizer import Tokenizer
from nexus_core.errors import ConfigError


def generate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    device: torch.device | str,
    seed: int | None = None,
) -> str:
    """The continuation of `prompt` (not including it) as text.

    temperature 0 = greedy (argmax); top_k 0 or >= vocab = no top-k cut. An empty prompt starts from
    a newline. `seed` makes a sampled continuation repeatable; None draws a fresh seed from the OS,
    still without touching torch's global RNG.
    """
    _check(max_new_tokens, temperature, top_k)
    prompt_ids = tokenizer.encode(prompt) if prompt else tokenizer.encode("\n")
    device = torch.device(device)
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)

    was_training = model.training
    # Clone outside inference_mode so the saved tensors are ordinary ones the model can keep using.
    carried = {k: v.clone() for k, v in model.state_tensors().items()}
    model.eval()
    model.reset_state()
    try:
        with torch.inference_mode():
            idx = torch.tensor([prompt_ids], dtype=torch.long, device=device)
            new_ids = list(sample_ids(model, idx, max_new_tokens, temperature, top_k, gen))
    finally:
        model.train(was_training)
        model.reset_state()
        if carried:
            model.load_state_tensors(carried)
    return _continuation(tokenizer, prompt_ids, new_ids)


def sample_ids(
    model: LanguageModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    generator: torch.Generator,
) -> Iterator[int]:
    """Yield new token ids one at a time for the context idx [1, T] (caller sets no-grad and eval).

    No KV cache: each step re-runs the last seq_len tokens. For the prompt + 80 tokens a dashboard
    asks for, that costs milliseconds on small models and keeps every family's forward the only API.
    """
    seq_len = model.config.seq_len
    for _ in range(max_new_tokens):
        logits = model(idx[:, -seq_len:]).logits[:, -1, :].float()
        if temperature <= 0.0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if 0 < top_k < logits.shape[-1]:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, num_samples=1, generator=generator)
        idx = torch.cat((idx, nxt), dim=1)
        yield int(nxt.item())


def _continuation(tokenizer: Tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """Decode prompt + continuation together, then drop the prompt's text: a multi-byte character
    (or BPE merge) split across the boundary then decodes whole instead of as two U+FFFD marks."""
    head = tokenizer.decode(prompt_ids)
    full = tokenizer.decode(prompt_ids + new_ids)
    if full.startswith(head):
        return full[len(head) :]
    return tokenizer.decode(new_ids)


def _check(max_new_tokens: int, temperature: float, top_k: int) -> None:
    if max_new_tokens < 0:
        raise ConfigError(f"sample tokens must be 0 or more, got {max_new_tokens}")
    if not temperature >= 0.0 or temperature == float("inf"):
        raise ConfigError(f"sample temperature must be 0 (greedy) or a positive number, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"sample top-k must be 0 (off) or positive, got {top_k}")
