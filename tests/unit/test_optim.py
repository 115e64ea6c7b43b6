"""Optimizers: Newton–Schulz properties, group routing, the update rules, exact resume, and learning."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from support.models import model_config
from torch import nn
from torch.nn import functional as F

from engine.models.base import LanguageModel, ModelOutput
from engine.optim import (
    LION_BETAS,
    NexusOptimizer,
    build_optimizer,
    set_lr_multiplier,
    zeropower_via_newtonschulz5,
)
from nexus_core.config import ModelConfig, OptimConfig
from nexus_core.errors import ConfigError

torch.set_num_threads(1)
VOCAB = 16


class TinyLM(LanguageModel):
    """Embedding -> Linear -> GELU -> Linear -> RMSNorm -> head: every kind of parameter Muon must sort."""

    def __init__(self, d: int = 16, hidden: int = 48) -> None:
        super().__init__()
        self.config = ModelConfig(vocab_size=VOCAB, d_model=d)
        self.embed = nn.Embedding(VOCAB, d)
        self.up = nn.Linear(d, hidden)
        self.down = nn.Linear(hidden, d, bias=False)
        self.norm = nn.RMSNorm(d)
        self.head = nn.Linear(d, VOCAB, bias=False)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> ModelOutput:  # type: ignore[override]
        x = self.embed(idx)
        x = self.norm(x + self.down(F.gelu(self.up(x))))
        logits = self.head(x)
        if targets is None:
            return ModelOutput(logits)
        ce = F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))
        return ModelOutput(logits, ce, ce)


def _model(seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable toy language: the next token is (3 * token + 1) mod VOCAB."""
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, VOCAB, (8, 12), generator=g)
    return idx, (3 * idx + 1) % VOCAB


CONFIGS = {
    "adamw": OptimConfig(name="adamw", lr=1e-2),
    "lion": OptimConfig(name="lion", lr=3e-3, weight_decay=0.3),
    "muon+adamw": OptimConfig(name="muon", lr=1e-2, muon_lr=0.02, fallback="adamw"),
    "muon+lion": OptimConfig(name="muon", lr=3e-3, muon_lr=0.02, fallback="lion", weight_decay=0.3),
}


def _train(model: TinyLM, opt: torch.optim.Optimizer, steps: int) -> list[float]:
    idx, tgt = _batch()
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# -- Newton–Schulz ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(32, 96), (96, 32), (64, 128), (200, 40)])
def test_newton_schulz_singular_values_and_polar_factor(shape: tuple[int, int]) -> None:
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[0]))
    X = zeropower_via_newtonschulz5(G, 5)
    assert X.shape == G.shape and X.dtype == G.dtype
    s = torch.linalg.svdvals(X)
    assert s.min().item() > 0.67 and s.max().item() < 1.15, (s.min(), s.max())
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    assert F.cosine_similarity(X.flatten(), (U @ Vh).flatten(), dim=0).item() > 0.98


def test_newton_schulz_ignores_scale() -> None:
    G = torch.randn(48, 80, generator=torch.Generator().manual_seed(3))
    base = zeropower_via_newtonschulz5(G, 5)
    for c in (1e-3, 7.0, 1e3):
        assert torch.allclose(zeropower_via_newtonschulz5(c * G, 5), base, atol=1e-4)
    assert not torch.allclose(base, G / G.norm(), atol=1e-2)  # it did change the matrix


def test_newton_schulz_refuses_vectors() -> None:
    with pytest.raises(ValueError, match="2-D"):
        zeropower_via_newtonschulz5(torch.randn(16), 5)


# -- routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(CONFIGS))
def test_every_parameter_in_exactly_one_group(key: str) -> None:
    model = _model()
    opt = build_optimizer(model, CONFIGS[key])
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    assert len(seen) == len(set(seen))
    for g in opt.param_groups:
        assert g["kind"] in ("adamw", "lion", "muon")
        assert g["lr"] == g["base_lr"]
        if g["kind"] == "muon":
            assert g["base_lr"] == CONFIGS[key].muon_lr
            assert all(p.ndim == 2 for p in g["params"])
        else:
            assert g["base_lr"] == CONFIGS[key].lr
        if g["weight_decay"] > 0:
            assert all(p.ndim >= 2 for p in g["params"]), "norm gains and biases are never decayed"


def test_muon_takes_exactly_the_hidden_matrices() -> None:
    model = _model()
    opt = build_optimizer(model, CONFIGS["muon+lion"])
    kinds = {id(p): g["kind"] for g in opt.param_groups for p in g["params"]}
    assert kinds[id(model.up.weight)] == kinds[id(model.down.weight)] == "muon"
    for p in (model.embed.weight, model.head.weight, model.norm.weight, model.up.bias):
        assert kinds[id(p)] == "lion"


def test_muon_group_rejects_vectors_and_bad_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="2-D"):
        NexusOptimizer([{"kind": "muon", "params": [nn.Parameter(torch.ones(4))], "lr": 0.02}])
    with pytest.raises(ConfigError, match="optim.name"):
        build_optimizer(_model(), OptimConfig(name="sgd"))
    with pytest.raises(ConfigError, match="optim.fallback"):
        build_optimizer(_model(), OptimConfig(name="muon", fallback="muon"))


def test_set_lr_multiplier_scales_each_group_from_its_own_peak() -> None:
    opt = build_optimizer(_model(), CONFIGS["muon+adamw"])
    set_lr_multiplier(opt, 0.25)
    set_lr_multiplier(opt, 0.5)  # from base_lr, not compounding
    lrs = {g["kind"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"muon": 0.02 * 0.5, "adamw": 1e-2 * 0.5}


# -- update rules ----------------------------------------------------------------------------------


def test_lion_first_step_is_minus_lr_sign_g_and_momentum_is_scaled_grad() -> None:
    lr = 1e-3
    for gscale in (1e-4, 1.0, 1e4):  # the step does not depend on the gradient's scale
        w = nn.Parameter(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)))
        w0 = w.detach().clone()
        g = gscale * torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
        opt = NexusOptimizer(
            [{"kind": "lion", "params": [w], "lr": lr, "betas": LION_BETAS, "weight_decay": 0.0}]
        )
        w.grad = g.clone()
        opt.step()
        assert torch.equal(w.detach(), w0 - lr * torch.sign(g))
        assert torch.allclose(opt.state[w]["exp_avg"], (1 - LION_BETAS[1]) * g, rtol=1e-6, atol=0)


def test_lion_weight_decay_is_decoupled() -> None:
    w = nn.Parameter(torch.full((3, 3), 2.0))
    opt = NexusOptimizer(
        [{"kind": "lion", "params": [w], "lr": 0.1, "betas": LION_BETAS, "weight_decay": 0.5}]
    )
    w.grad = torch.ones(3, 3)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((3, 3), 2.0 * (1 - 0.05) - 0.1))


def test_adamw_matches_torch_adamw() -> None:
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(7, 5))
    b = nn.Parameter(a.detach().clone())
    ours = NexusOptimizer(
        [{"kind": "adamw", "params": [a], "lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}]
    )
    ref = torch.optim.AdamW([b], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False)
    for i in range(10):
        g = torch.randn(7, 5, generator=torch.Generator().manual_seed(i))
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def test_muon_update_is_orthogonal_and_scaled_for_tall_matrices() -> None:
    for shape, scale in (((24, 64), 1.0), ((64, 16), 2.0)):
        w = nn.Parameter(torch.zeros(*shape))
        opt = NexusOptimizer(
            [
                {
                    "kind": "muon",
                    "params": [w],
                    "lr": 0.02,
                    "momentum": 0.95,
                    "nesterov": True,
                    "ns_steps": 5,
                    "weight_decay": 0.0,
                }
            ]
        )
        w.grad = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
        opt.step()
        s = torch.linalg.svdvals(w.detach() / (-0.02 * scale))
        assert s.min().item() > 0.67 and s.max().item() < 1.15
        assert torch.equal(opt.state[w]["momentum_buffer"], 0.05 * w.grad)


# -- state, determinism, learning ------------------------------------------------------------------


def _is_plain(x: Any) -> bool:
    if isinstance(x, torch.Tensor) or x is None or isinstance(x, (bool, int, float, str)):
        return True
    if isinstance(x, (list, tuple)):
        return all(_is_plain(v) for v in x)
    if isinstance(x, dict):
        return all(isinstance(k, (int, str)) and _is_plain(v) for k, v in x.items())
    return False


def _to_files(sd: dict[str, Any]) -> tuple[bytes, str]:
    """What a checkpoint writer does: tensors to safetensors, everything else to JSON."""
    tensors = {
        f"{pid}.{k}": v
        for pid, st in sd["state"].items()
        for k, v in st.items()
        if isinstance(v, torch.Tensor)
    }
    plain = {
        str(pid): {k: v for k, v in st.items() if not isinstance(v, torch.Tensor)}
        for pid, st in sd["state"].items()
    }
    return st_save(tensors), json.dumps({"state": plain, "param_groups": sd["param_groups"]})


def _from_files(blob: bytes, text: str) -> dict[str, Any]:
    meta, tensors = json.loads(text), st_load(blob)
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in meta["state"].items()}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    return {"state": state, "param_groups": meta["param_groups"]}


@pytest.mark.parametrize("key", list(CONFIGS))
def test_resume_through_safetensors_and_json_is_bit_identical(key: str) -> None:
    cfg = CONFIGS[key]
    straight = _model()
    opt = build_optimizer(straight, cfg)
    set_lr_multiplier(opt, 0.7)
    _train(straight, opt, 6)

    first = _model()
    opt1 = build_optimizer(first, cfg)
    set_lr_multiplier(opt1, 0.7)
    _train(first, opt1, 3)
    sd = opt1.state_dict()
    assert _is_plain(sd)
    blob, text = _to_files(sd)
    model_blob = st_save({k: v.clone() for k, v in first.state_dict().items()})

    resumed = _model(seed=99)  # different init: everything must come from the files
    resumed.load_state_dict(st_load(model_blob))
    opt2 = build_optimizer(resumed, cfg)
    opt2.load_state_dict(_from_files(blob, text))
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt1.param_groups]
    _train(resumed, opt2, 3)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("key", list(CONFIGS))
def test_each_optimizer_learns_the_toy_language(key: str) -> None:
    model = _model()
    losses = _train(model, build_optimizer(model, CONFIGS[key]), 60)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_same_inputs_give_bit_identical_params() -> None:
    runs = []
    for _ in range(2):
        model = _model()
        _train(model, build_optimizer(model, CONFIGS["muon+lion"]), 4)
        runs.append(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(runs[0].values(), runs[1].values(), strict=True))


def test_real_model_families_route_hidden_matrices_to_muon_only() -> None:
    """Every family registered so far: Muon gets only 2-D hidden matrices, never embeddings or heads."""
    from engine.models.base import _REGISTRY, _import_families, build_model

    _import_families()
    assert "transformer" in _REGISTRY
    for family in sorted(_REGISTRY):
        torch.manual_seed(0)
        cfg = ModelConfig(
            family=family, vocab_size=256, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, seq_len=16
        )
        model = build_model(cfg)
        opt = build_optimizer(model, OptimConfig(name="muon"))
        names = {id(p): n for n, p in model.named_parameters()}
        seen = [id(p) for g in opt.param_groups for p in g["params"]]
        assert sorted(seen) == sorted(names) and len(seen) == len(set(seen)), family
        muon = [names[id(p)] for g in opt.param_groups if g["kind"] == "muon" for p in g["params"]]
        assert muon, family
        assert not any(w in n for n in muon for w in ("embed", "head", "norm", "table")), (family, muon)
        idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
        losses = []
        for _ in range(5):
            opt.zero_grad(set_to_none=True)
            loss = model(idx[:, :-1], idx[:, 1:]).loss
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], (family, losses)


# -- weight decay: Muon's own, and the _no_weight_decay marker -------------------------------------


def _zero_grad_step(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """One step with all-zero gradients: every update rule moves nothing, so only weight decay acts."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return before


@pytest.mark.parametrize("muon_wd", [0.0, 0.05])
def test_muon_groups_decay_by_muon_weight_decay_only(muon_wd: float) -> None:
    model = _model()
    cfg = OptimConfig(name="muon", lr=1e-2, muon_lr=0.02, weight_decay=0.1, muon_weight_decay=muon_wd)
    opt = build_optimizer(model, cfg)
    assert {g["kind"]: g["weight_decay"] for g in opt.param_groups if g["kind"] == "muon"} == {
        "muon": muon_wd
    }
    before = _zero_grad_step(model, opt)
    for name in ("up.weight", "down.weight"):  # Muon: W *= 1 - muon_lr * muon_weight_decay
        torch.testing.assert_close(
            dict(model.named_parameters())[name].detach(), before[name] * (1 - 0.02 * muon_wd)
        )
    # The AdamW matrices still shrink by their own weight_decay.
    torch.testing.assert_close(model.embed.weight.detach(), before["embed.weight"] * (1 - 1e-2 * 0.1))


def test_muon_weight_decay_defaults_to_zero_as_in_the_reference() -> None:
    assert OptimConfig().muon_weight_decay == 0.0
    opt = build_optimizer(_model(), OptimConfig(name="muon"))
    assert [g["weight_decay"] for g in opt.param_groups if g["kind"] == "muon"] == [0.0]


@pytest.mark.parametrize("key", list(CONFIGS))
def test_params_marked_no_weight_decay_are_never_decayed(key: str) -> None:
    model = _model()
    model.keep = nn.Parameter(torch.ones(4, 3))  # 2-D, so it would be decayed without the marker
    model.keep._no_weight_decay = True  # type: ignore[attr-defined]
    model.shrink = nn.Parameter(torch.ones(4, 3))
    # Muon's own decay on too, so a marked matrix that Muon takes must also be exempted.
    opt = build_optimizer(model, dataclasses.replace(CONFIGS[key], muon_weight_decay=0.1))
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert group_of[id(model.keep)]["weight_decay"] == 0.0
    assert group_of[id(model.shrink)]["weight_decay"] > 0.0
    _zero_grad_step(model, opt)
    assert torch.equal(model.keep.detach(), torch.ones(4, 3))
    assert model.shrink.detach().max() < 1.0


@pytest.mark.parametrize("name", ["adamw", "lion", "muon"])
def test_ssm_a_log_and_d_are_not_decayed_in_a_real_hybrid(name: str) -> None:
    from engine.models.base import build_model

    torch.manual_seed(0)
    cfg = model_config(
        "hybrid",
        vocab_size=256,
        d_model=32,
        n_layers=2,
        n_heads=2,
        n_kv_heads=1,
        seq_len=16,
        attn_every=2,
        attn_offset=1,
        ssm_state=4,
    )
    model = build_model(cfg)
    opt = build_optimizer(model, OptimConfig(name=name, weight_decay=0.1, muon_weight_decay=0.1))
    wd = {
        n: g["weight_decay"]
        for n, p in model.named_parameters()
        for g in opt.param_groups
        if any(q is p for q in g["params"])
    }
    marked = [n for n in wd if n.endswith(("mixer.A_log", "mixer.D"))]
    assert len(marked) == 2 and all(wd[n] == 0.0 for n in marked), {n: wd[n] for n in marked}
    assert wd["blocks.0.mixer.in_proj.weight"] == 0.1
