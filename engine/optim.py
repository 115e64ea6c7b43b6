"""Optimizers: AdamW, Lion, and Muon (2-D hidden weights) with AdamW or Lion for the rest.

Everything is one `torch.optim.Optimizer` (`NexusOptimizer`) whose param groups each carry a `kind`
("adamw" | "lion" | "muon"): a checkpoint saves a single state_dict, the schedule scales every group
alike through `base_lr`, and every parameter sits in exactly one group. The state holds only tensors
and plain numbers/strings, so checkpoints are safetensors + JSON and loading never unpickles.

Updates are plain per-tensor torch ops (no foreach/fused kernels), so on the CPU the same inputs give
bit-identical results, which exact resume depends on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from engine.models.base import LanguageModel
from nexus_core.config import OptimConfig
from nexus_core.errors import ConfigError

NS_COEFFS = (3.4445, -4.7750, 2.0315)
"""Quintic Newton–Schulz coefficients (KellerJordan/Muon): fast to push singular values near 1."""
LION_BETAS = (0.9, 0.99)
"""Lion's paper defaults; OptimConfig's beta1/beta2 are AdamW's (β2 0.95 is too short a memory for Lion)."""


@torch.no_grad()
def zeropower_via_newtonschulz5(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate the orthogonal polar factor U Vᵀ of a 2-D G (singular values pushed into ~[0.7, 1.1]).

    Runs in bf16 on CUDA (fast, and NS tolerates it) and fp32 elsewhere; returns G's dtype.
    """
    if G.ndim != 2:
        raise ValueError(f"Newton–Schulz needs a 2-D matrix, got shape {tuple(G.shape)}")
    a, b, c = NS_COEFFS
    X = G.bfloat16() if G.is_cuda else G.float()
    tall = X.size(0) > X.size(1)
    if tall:  # work on the wide side so X Xᵀ is the small Gram matrix
        X = X.T
    X = X / (X.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1, inside NS's basin
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    if tall:
        X = X.T
    return X.to(G.dtype)


class NexusOptimizer(torch.optim.Optimizer):
    """One optimizer, three update rules chosen per param group by `group["kind"]`.

    Group keys: kind, lr, base_lr, weight_decay, betas (adamw/lion), eps (adamw), momentum, nesterov,
    ns_steps (muon). Weight decay is decoupled (W *= 1 - lr·wd) for every kind.
    """

    KINDS = ("adamw", "lion", "muon")

    def __init__(self, param_groups: list[dict[str, Any]]) -> None:
        for group in param_groups:
            if group.get("kind") not in self.KINDS:
                raise ConfigError(
                    f"param group kind must be one of {', '.join(self.KINDS)}; got {group.get('kind')!r}"
                )
            if group["kind"] == "muon" and any(p.ndim != 2 for p in group["params"]):
                raise ConfigError(
                    "Muon only takes 2-D matrices; route 1-D and N-D parameters to adamw or lion"
                )
            group.setdefault("base_lr", group["lr"])
        defaults = {
            "weight_decay": 0.0,
            "betas": (0.9, 0.95),
            "eps": 1e-8,
            "momentum": 0.95,
            "nesterov": True,
            "ns_steps": 5,
        }
        super().__init__(param_groups, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = {"adamw": self._adamw, "lion": self._lion, "muon": self._muon}[group["kind"]]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("NexusOptimizer does not support sparse gradients")
                update(p, p.grad, self.state[p], group)
        return loss

    @staticmethod
    def _adamw(p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """AdamW as torch.optim.AdamW computes it (bias-corrected moments, eps outside the sqrt)."""
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        p.mul_(1 - lr * wd)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))

    @staticmethod
    def _lion(p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Lion: the sign of an interpolated momentum, so every coordinate moves by exactly lr."""
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
        m = state["exp_avg"]
        p.mul_(1 - lr * wd)
        p.add_(torch.sign(m.lerp(g, 1 - beta1)), alpha=-lr)
        m.lerp_(g, 1 - beta2)

    @staticmethod
    def _muon(p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Muon: Nesterov momentum, orthogonalised by Newton–Schulz, scaled for non-square shapes."""
        lr, wd, beta = group["lr"], group["weight_decay"], group["momentum"]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.lerp_(g, 1 - beta)
        u = g.lerp(buf, beta) if group["nesterov"] else buf
        o = zeropower_via_newtonschulz5(u, group["ns_steps"])
        # Keep the update's RMS comparable for tall matrices (fewer cols than rows => larger per-entry).
        scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
        p.mul_(1 - lr * wd)
        p.add_(o, alpha=-lr * scale)


def build_optimizer(model: LanguageModel, cfg: OptimConfig) -> NexusOptimizer:
    """The optimizer `cfg.name` names, over every trainable parameter of `model`, each in one group.

    adamw / lion: weight decay on >=2-D params only (norm gains and biases are not shrunk).
    muon: `model.muon_params()` that are 2-D get Muon at `cfg.muon_lr` with `cfg.muon_weight_decay`;
    the rest go to `cfg.fallback`.
    """
    if cfg.name not in ("adamw", "lion", "muon"):
        raise ConfigError(f"optim.name must be one of adamw, muon, lion; got {cfg.name!r}")
    if cfg.name == "muon" and cfg.fallback not in ("adamw", "lion"):
        raise ConfigError(f"optim.fallback must be one of adamw, lion; got {cfg.fallback!r}")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = []
    rest = params
    if cfg.name == "muon":
        muon_ids = {id(p) for _, p in model.muon_params() if p.ndim == 2 and p.requires_grad}
        hidden = [p for _, p in params if id(p) in muon_ids]
        rest = [(n, p) for n, p in params if id(p) not in muon_ids]
        for name, wd, chosen in (
            ("muon", cfg.muon_weight_decay, [p for p in hidden if not _no_decay_marked(p)]),
            ("muon_no_decay", 0.0, [p for p in hidden if _no_decay_marked(p)]),
        ):
            if chosen:
                groups.append(
                    {
                        "name": name,
                        "kind": "muon",
                        "params": chosen,
                        "lr": cfg.muon_lr,
                        "weight_decay": wd,
                        "momentum": cfg.muon_momentum,
                        "nesterov": True,
                        "ns_steps": cfg.muon_ns_steps,
                    }
                )
    kind = cfg.fallback if cfg.name == "muon" else cfg.name
    groups += _decay_split(kind, rest, cfg)
    if not groups:
        raise ConfigError("the model has no trainable parameters to optimize")
    return NexusOptimizer(groups)


def _decay_split(
    kind: str, named: Iterable[tuple[str, nn.Parameter]], cfg: OptimConfig
) -> list[dict[str, Any]]:
    """Two groups of `kind`: matrices/embeddings with weight decay, the rest without.

    The rest: vectors (norm gains, biases) and any tensor marked `_no_weight_decay` (Mamba's marker on
    A_log and D: decay would drag every channel's memory length toward one value and its skip to 0).
    """
    named = list(named)
    betas = (cfg.beta1, cfg.beta2) if kind == "adamw" else LION_BETAS
    decayed = [p.ndim >= 2 and not _no_decay_marked(p) for _, p in named]
    out = []
    for suffix, wd, chosen in (
        ("decay", cfg.weight_decay, [p for (_, p), yes in zip(named, decayed, strict=True) if yes]),
        ("no_decay", 0.0, [p for (_, p), yes in zip(named, decayed, strict=True) if not yes]),
    ):
        if chosen:
            out.append(
                {
                    "name": f"{kind}_{suffix}",
                    "kind": kind,
                    "params": chosen,
                    "lr": cfg.lr,
                    "weight_decay": wd,
                    "betas": betas,
                    "eps": cfg.eps,
                }
            )
    return out


def _no_decay_marked(p: nn.Parameter) -> bool:
    """Mamba's convention: a model sets `p._no_weight_decay = True` on tensors decay would harm."""
    return bool(getattr(p, "_no_weight_decay", False))


def set_lr_multiplier(optimizer: torch.optim.Optimizer, mult: float) -> None:
    """Apply a schedule multiplier: every group's lr = its base_lr * mult."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * mult


def group_grad_norms(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Each param group's gradient L2 norm, by the group's name ("adamw_decay", "muon", ...), as 0-d
    tensors (never read here); groups with no gradient are left out. The norm of these norms is the
    total grad norm, so the trainer clips with it instead of computing every gradient's norm twice."""
    out: dict[str, torch.Tensor] = {}
    for i, group in enumerate(optimizer.param_groups):
        grads = [p.grad for p in group["params"] if p.grad is not None]
        if grads:
            out[str(group.get("name", f"group{i}"))] = torch.nn.utils.get_total_norm(grads)
    return out
