"""The nested LSTM: multi-timescale updates (bit-exact with a plain loop when every period is 1, and
equal to a hand-written chunked reference otherwise), persistent state across batches, checkpointed
state, surprise kept out of `ce`, and that it learns."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from support.models import model_config

from engine.data import contiguous_streams
from engine.models import build_model
from engine.models.layers import lm_losses
from engine.models.lstm import NestedLSTM
from engine.optim import build_optimizer
from nexus_core.config import ModelConfig, OptimConfig, load_preset
from nexus_core.errors import ConfigError

torch.set_num_threads(1)

TOKENS = torch.tensor(list(b"the cat sat on the mat. the dog sat on the log. " * 40), dtype=torch.long)


def small(**kw: object) -> ModelConfig:
    base: dict[str, object] = dict(vocab_size=256, d_model=24, seq_len=12, levels=[1, 1])
    base.update(kw)
    return model_config("lstm", **base)


def fresh(cfg: ModelConfig, seed: int = 0) -> NestedLSTM:
    torch.manual_seed(seed)
    model = build_model(cfg)
    assert isinstance(model, NestedLSTM)
    return model


def batch(cfg: ModelConfig, position: int) -> tuple[torch.Tensor, torch.Tensor]:
    return contiguous_streams(TOKENS, 3, cfg.seq_len, position)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_every_period_one_equals_a_plain_loop_bit_for_bit() -> None:
    cfg = small(levels=[1, 1, 1])
    plain, hooked = fresh(cfg), fresh(cfg)
    opt_a, opt_b = build_optimizer(plain, OptimConfig()), build_optimizer(hooked, OptimConfig())
    for step in range(1, 6):
        x, y = batch(cfg, step - 1)
        for model, opt, hook in ((plain, opt_a, False), (hooked, opt_b, True)):
            opt.zero_grad(set_to_none=True)
            model(x, y).loss.backward()
            if hook:
                with model.hold_gradients(step):
                    opt.step()
            else:
                opt.step()
    a, b = snapshot(plain), snapshot(hooked)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(a["levels.0.o_proj.weight"], snapshot(fresh(cfg))["levels.0.o_proj.weight"])


def test_level_l_steps_floor_s_over_c_times() -> None:
    cfg = small(levels=[1, 3, 5])
    model = fresh(cfg)
    opt = build_optimizer(model, OptimConfig())
    changes = [0, 0, 0]
    steps = 11
    for step in range(1, steps + 1):
        before = snapshot(model)
        x, y = batch(cfg, step - 1)
        opt.zero_grad(set_to_none=True)
        model(x, y).loss.backward()
        with model.hold_gradients(step):
            opt.step()
        opt.zero_grad(set_to_none=True)
        after = snapshot(model)
        for level in range(3):
            names = [n for n in after if n.startswith(f"levels.{level}.")]
            moved = [not torch.equal(before[n], after[n]) for n in names]
            assert all(moved) or not any(moved), (step, level, moved)  # a level moves as one
            changes[level] += all(moved)
        assert not torch.equal(before["embed.weight"], after["embed.weight"])  # level 0 owns the embedding
    assert changes == [steps // 1, steps // 3, steps // 5]


def test_slow_level_steps_on_the_mean_gradient_of_its_chunk() -> None:
    """Against a hand-written reference: a second optimizer for level 1 fed the chunk's mean gradient."""
    cfg = small(levels=[1, 4])
    hooked, ref = fresh(cfg), fresh(cfg)
    opt = build_optimizer(hooked, OptimConfig(weight_decay=0.0))
    slow_names = {n for n, _ in ref.named_parameters() if n.startswith("levels.1.")}
    fast = [p for n, p in ref.named_parameters() if n not in slow_names]
    slow = [p for n, p in ref.named_parameters() if n in slow_names]
    ref_fast = torch.optim.AdamW(fast, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0, foreach=False)
    ref_slow = torch.optim.AdamW(slow, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0, foreach=False)
    acc = [torch.zeros_like(p) for p in slow]
    for step in range(1, 9):
        x, y = batch(cfg, step - 1)
        opt.zero_grad(set_to_none=True)
        hooked(x, y).loss.backward()
        with hooked.hold_gradients(step):
            opt.step()
        ref_fast.zero_grad(set_to_none=True)
        ref_slow.zero_grad(set_to_none=True)
        ref(x, y).loss.backward()
        ref_fast.step()
        for a, p in zip(acc, slow, strict=True):
            a.add_(p.grad)
        if step % 4 == 0:
            for a, p in zip(acc, slow, strict=True):
                p.grad = a / 4
                a.zero_()
            ref_slow.step()
    a, b = snapshot(hooked), snapshot(ref)
    for n in a:
        assert torch.allclose(a[n], b[n], atol=1e-6, rtol=1e-5), n


def test_state_carries_across_calls_like_one_long_window_and_resets() -> None:
    cfg = small()
    model = fresh(cfg).train()
    x1, _ = batch(cfg, 0)
    x2, _ = batch(cfg, 1)
    with torch.no_grad():
        whole = model(torch.cat([x1, x2], dim=1)).logits
        model.reset_state()
        model(x1)
        continued = model(x2).logits
        model.reset_state()
        cold = model(x2).logits
    assert torch.allclose(continued, whole[:, cfg.seq_len :], atol=1e-5)
    assert not torch.allclose(continued, cold, atol=1e-3)
    model.reset_state()
    model.eval()
    with torch.no_grad():
        model(x1)
        assert model.state_tensors() == {}  # eval forwards neither read nor store the state
        assert torch.allclose(model(x2).logits, cold, atol=1e-6)


def test_state_is_detached_each_step() -> None:
    cfg = small()
    model = fresh(cfg).train()
    for pos in range(3):
        x, y = batch(cfg, pos)
        model(x, y).loss.backward()  # a second backward through a kept graph would raise
    assert all(not t.requires_grad for t in model.state_tensors().values())


def test_state_tensors_round_trip_through_safetensors_continues_exactly(tmp_path: Path) -> None:
    cfg = small(levels=[1, 4])
    model = fresh(cfg)
    opt = build_optimizer(model, OptimConfig())
    for step in range(1, 4):  # step 3 of a 4-step chunk: the stash holds gradients
        x, y = batch(cfg, step - 1)
        opt.zero_grad(set_to_none=True)
        model(x, y).loss.backward()
        with model.hold_gradients(step):
            opt.step()
    state = model.state_tensors()
    assert any(k.startswith("grad.levels.1.") for k in state) and "h.1" in state and "c.0" in state
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "state.safetensors"))

    twin = fresh(cfg, seed=1)
    twin.load_state_dict(model.state_dict())
    twin_opt = build_optimizer(twin, OptimConfig())
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch would share tensors
    twin.load_state_tensors(load_file(str(tmp_path / "state.safetensors")))
    for step in range(4, 6):
        x, y = batch(cfg, step - 1)
        for m, o in ((model, opt), (twin, twin_opt)):
            o.zero_grad(set_to_none=True)
            m(x, y).loss.backward()
            with m.hold_gradients(step):
                o.step()
    a, b = snapshot(model), snapshot(twin)
    assert all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(ConfigError, match="cannot hold"):
        twin.load_state_tensors({"grad.levels.7.lstm.weight_ih_l0": torch.zeros(3)})


def test_ce_excludes_the_surprise_loss() -> None:
    cfg = small(surprise_weight=0.5)
    model = fresh(cfg)
    x, y = batch(cfg, 0)
    out = model(x, y)
    _, ce = lm_losses(out.logits, y)
    assert torch.equal(out.ce, ce)
    surprise = model._surprise_loss(_final_hidden(model, x), y)
    assert torch.allclose(out.loss - out.ce, 0.5 * surprise, atol=1e-6)
    assert out.loss.item() > out.ce.item()
    plain = fresh(small())(x, y)
    assert torch.equal(plain.loss.detach(), plain.ce)


def _final_hidden(model: NestedLSTM, x: torch.Tensor) -> torch.Tensor:
    """The normed last hidden state, recomputed from the same (reset) starting state."""
    model.reset_state()
    h = model.embed(x)
    for level in model.levels:
        h, _ = level(h, None)
    return model.norm(h)


def test_loss_falls_on_a_small_fixed_stream() -> None:
    cfg = small(d_model=32, levels=[1, 4])
    model = fresh(cfg)
    opt = build_optimizer(model, OptimConfig(lr=1e-2))
    losses = []
    for step in range(1, 41):
        x, y = batch(cfg, step - 1)
        opt.zero_grad(set_to_none=True)
        out = model(x, y)
        out.loss.backward()
        with model.hold_gradients(step):
            opt.step()
        losses.append(out.ce.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


@pytest.mark.parametrize("levels", [[], [0, 4], [1, -2]])
def test_bad_levels_are_one_line_config_errors(levels: list[int]) -> None:
    with pytest.raises(ConfigError, match="model.lstm.levels") as info:
        build_model(small(levels=levels))
    assert "\n" not in str(info.value)


def test_preset_is_about_a_million_parameters() -> None:
    cfg = load_preset("lstm-tiny").validate()
    cfg.model.vocab_size = 256
    model = build_model(cfg.model)
    assert model.wants_streams
    assert 0.8e6 < model.num_params() < 1.3e6
