"""Every shipped preset loads, validates and builds its model on the meta device (no memory: the 275M
presets cost nothing), trains for real for two steps at a narrow width with its own family options and
optimizer, and the reference presets carry the settings their README row promises."""

from __future__ import annotations

import pytest
import torch
from support import ROOT

from engine.models import build_model
from engine.optim import build_optimizer
from nexus_core import config as C

torch.set_num_threads(1)  # one thread is faster for models this small, and fair to a shared 2-core box

REFERENCE = {  # preset -> (min, max) parameters as the engine builds it
    "hybrid-6m": (5e6, 7e6),
    "hybrid-6m-bpe1000": (5e6, 7e6),
    "engram-275m": (2.2e8, 2.9e8),
    "mtp-275m": (2.2e8, 2.9e8),
    "wavelet-275m": (2.0e8, 2.9e8),
    "lstm-nested-1m": (1.0e6, 1.4e6),
}


def _meta_params(name: str) -> tuple[C.Config, int]:
    cfg = C.load_preset(name).validate()
    m = cfg.model
    m.vocab_size = m.vocab_size or (cfg.data.bpe_vocab if cfg.data.tokenizer == "bpe" else 256)
    with torch.device("meta"):
        model = build_model(m)
    assert all(p.is_meta for p in model.parameters()), "built on the meta device, nothing allocated"
    return cfg, model.num_params()


@pytest.mark.parametrize("name", C.preset_names())
def test_every_preset_builds_its_model_on_the_meta_device(name: str) -> None:
    _, params = _meta_params(name)
    assert params > 0
    if name in REFERENCE:
        low, high = REFERENCE[name]
        assert low <= params <= high, f"{name}: {params:,} parameters"


NARROW = ["model.d_model=32", "model.n_heads=4", "model.n_kv_heads=2", "model.d_ff=0", "model.seq_len=16"]
"""Every preset at width 32 and 16 tokens: its depth, family options, vocabulary and optimizer stay."""


@pytest.mark.parametrize("name", C.preset_names())
def test_every_preset_trains_two_real_steps_at_a_narrow_width(name: str) -> None:
    torch.manual_seed(0)
    cfg = C.load_preset(name)
    for text in NARROW:
        C.apply_override(cfg, text)
    cfg.validate()
    m = cfg.model
    m.vocab_size = cfg.data.bpe_vocab if cfg.data.tokenizer == "bpe" else 256
    model = build_model(m)
    opt = build_optimizer(model, cfg.optim)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randint(0, m.vocab_size, (2, m.seq_len + 1))
    losses = []
    for step in range(1, 3):
        out = model(x[:, :-1], x[:, 1:])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        with model.hold_gradients(step):
            opt.step()
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    moved = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert moved and "embed.weight" in moved, f"{name}: nothing learned"


def test_the_reference_presets_carry_the_reported_settings() -> None:
    hybrid = C.load_preset("hybrid-6m")
    m, t = hybrid.model, hybrid.train
    layers = ["attn" if i % m.hybrid.attn_every == m.hybrid.attn_offset else "ssm" for i in range(m.n_layers)]
    assert layers.count("attn") == 1 and layers.count("ssm") == 5
    assert (m.d_model, m.n_heads, m.n_kv_heads, m.seq_len) == (256, 8, 2, 128)
    assert (t.batch_size, t.grad_accum, t.steps, hybrid.optim.lr) == (4, 4, 2000, 3e-4)
    assert C.load_preset("hybrid-6m-bpe1000").data.bpe_vocab == 1000
    for name in ("engram-275m", "mtp-275m", "wavelet-275m"):
        cfg = C.load_preset(name)
        assert (cfg.optim.name, cfg.optim.fallback, cfg.optim.lr, cfg.optim.muon_lr) == (
            "muon",
            "lion",
            0.012,
            0.012,
        )
        assert (cfg.schedule.name, cfg.schedule.decay_fraction, cfg.train.label_smoothing) == (
            "wsd",
            0.2,
            0.1,
        )
        assert (cfg.model.seq_len, cfg.train.batch_size, cfg.data.bpe_vocab, cfg.optim.grad_clip) == (
            1024,
            2,
            4096,
            1.0,
        )
    assert C.load_preset("engram-275m").model.engram.layers == [0, 19]
    assert C.load_preset("mtp-275m").model.transformer.mtp_heads == 3
    assert C.load_preset("wavelet-275m").model.transformer.wavelet_layers == list(range(20))
    lstm = C.load_preset("lstm-nested-1m")
    assert lstm.model.lstm.levels == [1, 16, 256] and (lstm.train.batch_size, lstm.model.seq_len) == (64, 512)
    assert lstm.model.lstm.surprise_weight == 0.05


def test_the_models_page_lists_every_reference_preset() -> None:
    readme = (ROOT / "docs" / "MODELS.md").read_text()
    for name in REFERENCE:
        assert f"`{name}`" in readme, name
