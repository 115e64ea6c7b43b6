"""The causal Haar-wavelet mixer: its window means match a brute-force loop, it never reads a later
token (alone and inside an all-wavelet transformer), it does mix earlier tokens, and it learns a task
that needs token mixing."""

from __future__ import annotations

import pytest
import torch
from support.models import model_config

from engine.guard import check_causality
from engine.models import build_model
from engine.models.wavelet import CausalHaarMixer, causal_window_means, haar_mix
from engine.optim import build_optimizer
from nexus_core.config import ModelConfig, OptimConfig
from nexus_core.errors import ConfigError

torch.set_num_threads(1)


def small(**kw: object) -> ModelConfig:
    base = dict(
        vocab_size=16, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=16, wavelet_layers=[0, 1]
    )
    base.update(kw)
    return model_config(**base)  # type: ignore[arg-type]


def test_window_means_match_a_brute_force_loop() -> None:
    v = torch.randn(2, 13, 3, dtype=torch.float64)
    lengths = [1, 2, 4, 8]
    for length, (recent, older) in zip(lengths, causal_window_means(v, lengths), strict=True):
        for t in range(13):
            r = v[:, max(0, t - length + 1) : t + 1].mean(dim=1)
            o_win = v[:, max(0, t - 2 * length + 1) : max(0, t - length + 1)]
            o = o_win.mean(dim=1) if o_win.shape[1] else torch.zeros(2, 3, dtype=v.dtype)
            assert torch.allclose(recent[:, t], r) and torch.allclose(older[:, t], o), (length, t)


@pytest.mark.parametrize("t", [1, 5, 16, 17])
def test_fused_mix_equals_the_sum_of_its_scales(t: int) -> None:
    """The mixer's one-pass `haar_mix` is exactly w_id*v + sum w_L*detail_L + w_c*approx from the means."""
    g = torch.Generator().manual_seed(t)
    v = torch.randn(2, t, 3, dtype=torch.float64, generator=g)
    lengths = [1, 2, 4, 8, 16]
    w = [torch.randn(3, dtype=torch.float64, generator=g) for _ in range(len(lengths) + 2)]
    means = causal_window_means(v, lengths)
    want = w[0] * v + w[-1] * means[-1][0]
    for gain, (recent, older) in zip(w[1:-1], means, strict=True):
        want = want + gain * (recent - older)
    assert torch.allclose(haar_mix(v, w[0], w[1:-1], w[-1], lengths), want, atol=1e-12)


def test_constant_input_has_zero_details_once_both_halves_are_full() -> None:
    v = torch.full((1, 16, 2), 3.0)
    for length, (recent, older) in zip([1, 2, 4], causal_window_means(v, [1, 2, 4]), strict=True):
        assert torch.allclose(recent, v)
        assert torch.allclose((recent - older)[:, 2 * length - 1 :], torch.zeros(1, 16 - 2 * length + 1, 2))


def test_mixer_never_reads_later_positions_but_does_read_earlier_ones() -> None:
    torch.manual_seed(0)
    mixer = CausalHaarMixer(small()).double()
    x = torch.randn(2, 16, 32, dtype=torch.float64)
    for j in (0, 7, 15):
        changed = x.clone()
        changed[:, j] += torch.randn(32, dtype=torch.float64)
        a, b = mixer(x), mixer(changed)
        assert torch.equal(a[:, :j], b[:, :j]), j
        assert not torch.allclose(a[:, j:], b[:, j:]), j
    changed = x.clone()
    changed[:, 3] += 1.0
    assert (mixer(x)[:, 12] - mixer(changed)[:, 12]).abs().max() > 1e-6  # position 12 hears token 3


def test_all_wavelet_transformer_passes_the_guard_and_has_no_attention() -> None:
    torch.manual_seed(0)
    cfg = small(seq_len=32)
    model = build_model(cfg)
    assert all(isinstance(b.mixer, CausalHaarMixer) for b in model.blocks)
    check_causality(model, cfg.vocab_size, cfg.seq_len, "cpu")
    mixed = build_model(small(wavelet_layers=[1]))
    assert not isinstance(mixed.blocks[0].mixer, CausalHaarMixer) and isinstance(
        mixed.blocks[1].mixer, CausalHaarMixer
    )


def test_muon_never_gets_the_wavelet_gains() -> None:
    model = build_model(small())
    opt = build_optimizer(model, OptimConfig(name="muon"))
    muon = {id(p) for g in opt.param_groups if g["kind"] == "muon" for p in g["params"]}
    gains = [p for n, p in model.named_parameters() if ".w_" in n]
    assert gains and not any(id(p) in muon for p in gains)


def test_it_learns_a_task_that_needs_token_mixing() -> None:
    """Rows 'abab...' with random a != b: the next token is the one before the current one, which a
    model without token mixing cannot know (its best is ln 15 = 2.7 nats)."""
    torch.manual_seed(0)
    cfg = small(n_layers=1, wavelet_layers=[0])
    model = build_model(cfg)
    opt = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.0))
    g = torch.Generator().manual_seed(1)
    ces = []
    for _ in range(100):
        a = torch.randint(0, 16, (16, 1), generator=g)
        b = (a + torch.randint(1, 16, (16, 1), generator=g)) % 16
        rows = torch.cat([a, b], dim=1).repeat(1, 9)[:, : cfg.seq_len + 1]
        out = model(rows[:, :-1], rows[:, 1:])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        ces.append(out.ce.item())
    assert sum(ces[-5:]) / 5 < 1.5, ces  # ln 15 = 2.71 without mixing


@pytest.mark.parametrize("layers", [[2], [-1], [0, 5]])
def test_layers_out_of_range_are_one_line_config_errors(layers: list[int]) -> None:
    with pytest.raises(ConfigError, match="model.transformer.wavelet_layers") as info:
        build_model(small(wavelet_layers=layers))
    assert "\n" not in str(info.value)
