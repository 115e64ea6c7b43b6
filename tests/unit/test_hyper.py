"""mHC-lite residual streams: H_res is doubly stochastic, the residual path conserves the stream sum,
a fresh model is exactly the plain transformer, causality holds with the dynamic coefficients active,
hc_streams=0 leaves the transformer as it was, and a model with streams learns."""

from __future__ import annotations

import pytest
import torch
from support.models import model_config

from engine.guard import check_causality
from engine.models import build_model
from engine.models.hyper import HyperConnection, permutation_matrices
from engine.models.transformer import Transformer
from engine.optim import build_optimizer
from nexus_core.config import ModelConfig, OptimConfig
from nexus_core.errors import ConfigError

torch.set_num_threads(1)


def small(**kw: object) -> ModelConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=16, hc_streams=2)
    base.update(kw)
    return model_config(**base)  # type: ignore[arg-type]


def stir(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every HyperConnection random dynamic weights, so H_pre/H_post/H_res vary per position."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for hc in (m for m in module.modules() if isinstance(m, HyperConnection)):
            hc.phi.copy_(torch.randn(hc.phi.shape, generator=g))
            hc.alpha.fill_(0.5)
            hc.res_bias.copy_(torch.randn(hc.res_bias.shape, generator=g))


def test_permutation_matrices_are_all_distinct_permutations() -> None:
    p = permutation_matrices(3)
    assert p.shape == (6, 3, 3) and torch.equal(p[0], torch.eye(3))
    assert torch.equal(p.sum(1), torch.ones(6, 3)) and torch.equal(p.sum(2), torch.ones(6, 3))
    assert len({tuple(m.flatten().tolist()) for m in p}) == 6


@pytest.mark.parametrize("n", [2, 3, 4])
def test_h_res_is_doubly_stochastic_and_not_trivial(n: int) -> None:
    hc = HyperConnection(8, n).double()
    stir(hc, seed=n)
    x = torch.randn(2, 5, n, 8, dtype=torch.float64)
    h_res, h_pre, h_post = hc.coefficients(x)
    assert (h_res >= 0).all()
    assert torch.allclose(h_res.sum(-1), torch.ones(2, 5, n, dtype=torch.float64))
    assert torch.allclose(h_res.sum(-2), torch.ones(2, 5, n, dtype=torch.float64))
    assert (h_res - torch.eye(n, dtype=torch.float64)).abs().max() > 0.05  # it does mix the streams
    assert not torch.allclose(h_res[0, 0], h_res[0, 1])  # and per position
    assert ((h_pre > 0) & (h_pre < 1)).all() and ((h_post > 0) & (h_post < 2)).all()


def test_residual_path_conserves_the_stream_sum() -> None:
    """Columns of H_res sum to 1, so with F = 0 the sum over streams passes through unchanged; with a
    real F the sum grows by exactly (sum of H_post) * F."""
    hc = HyperConnection(8, 3).double()
    stir(hc)
    x = torch.randn(2, 5, 3, 8, dtype=torch.float64)
    out = hc(x, torch.zeros_like)
    assert torch.allclose(out.sum(-2), x.sum(-2))
    f_out = {}

    def f(h: torch.Tensor) -> torch.Tensor:
        f_out["y"] = torch.tanh(h)
        return f_out["y"]

    out = hc(x, f)
    _, _, h_post = hc.coefficients(x)
    assert torch.allclose(out.sum(-2), x.sum(-2) + h_post.sum(-1, keepdim=True) * f_out["y"])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_static_init_computes_exactly_the_plain_transformer(n: int) -> None:
    """With the dynamic part off (phi = 0), n copies of the stream are the plain residual stream;
    a fresh model (small random phi) stays close to it."""
    torch.manual_seed(0)
    plain = Transformer(small(hc_streams=0))
    torch.manual_seed(0)
    streams = Transformer(small(hc_streams=n))
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        want = plain(idx).logits
        assert torch.allclose(streams(idx).logits, want, atol=1e-3)
        for hc in streams.hc.layers:
            hc.phi.zero_()
        assert torch.allclose(streams(idx).logits, want, atol=1e-5)


def test_zero_streams_leave_the_transformer_unchanged() -> None:
    torch.manual_seed(0)
    plain = Transformer(small(hc_streams=0))
    torch.manual_seed(0)
    streams = Transformer(small(hc_streams=2))
    assert plain.hc is None
    a, b = plain.state_dict(), streams.state_dict()
    assert sorted(b) == sorted(list(a) + [k for k in b if k.startswith("hc.")])
    assert all(torch.equal(a[k], b[k]) for k in a)  # the option draws no extra randomness before init
    idx = torch.randint(0, 64, (2, 16))
    x = plain.embed(idx)
    for block in plain.blocks:
        x = block(x)
    assert torch.equal(plain.trunk(idx), x)


@pytest.mark.parametrize("opts", [{}, {"hc_streams": 4, "loop_count": 2}, {"mtp_heads": 1}])
def test_streams_stay_causal_with_dynamic_coefficients(opts: dict) -> None:
    torch.manual_seed(0)
    cfg = small(**opts)
    model = build_model(cfg)
    stir(model)
    check_causality(model, cfg.vocab_size, cfg.seq_len, "cpu")


def test_streams_train_and_hc_weights_get_gradients() -> None:
    torch.manual_seed(0)
    cfg = small(vocab_size=32)
    model = build_model(cfg)
    opt = build_optimizer(model, OptimConfig(name="muon"))
    muon = {id(p) for g in opt.param_groups if g["kind"] == "muon" for p in g["params"]}
    assert not any(id(p) in muon for p in model.hc.parameters())
    data = torch.tensor(list(range(32)) * 8)
    losses = []
    for step in range(30):
        start = torch.tensor([(step * 5 + 7 * r) % 200 for r in range(4)])
        rows = data[start[:, None] + torch.arange(17)]
        out = model(rows[:, :-1], rows[:, 1:])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if step == 0:
            assert (
                model.hc.layers[0].phi.grad.abs().max() > 0 and model.hc.layers[0].alpha.grad.abs().max() > 0
            )
        opt.step()
        losses.append(out.ce.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("n", [-1, 5])
def test_bad_stream_counts_are_one_line_config_errors(n: int) -> None:
    with pytest.raises(ConfigError, match="model.transformer.hc_streams") as info:
        build_model(small(hc_streams=n))
    assert "\n" not in str(info.value)
