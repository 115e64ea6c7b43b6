"""The causality guard: every registered family (and the transformer's wavelet / mHC variants) passes,
models that peek at the future fail with one line naming the family, and the guard leaves the model's
mode, carried state and the global RNG as it found them."""

from __future__ import annotations

import pytest
import torch
from model_helpers import model_config
from torch import nn

from engine.guard import check_causality
from engine.models.base import _REGISTRY, LanguageModel, ModelOutput, _import_families, build_model
from nexus_core.config import ModelConfig
from nexus_core.errors import ConfigError

torch.set_num_threads(1)

_import_families()


def tiny(family: str, **kw: object) -> ModelConfig:
    base: dict[str, object] = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=24)
    if family == "lstm":
        base["levels"] = [1, 4]
    base.update(kw)
    return model_config(family, **base)


@pytest.mark.parametrize("family", sorted(_REGISTRY))
def test_every_registered_family_is_causal(family: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(family)
    check_causality(build_model(cfg), cfg.vocab_size, cfg.seq_len, "cpu")


@pytest.mark.parametrize("opts", [{"wavelet_layers": [0, 1]}, {"hc_streams": 2}, {"hc_streams": 3, "wavelet_layers": [1]},
                                  {"mtp_heads": 1, "loop_count": 2}])
def test_transformer_variants_are_causal(opts: dict) -> None:
    torch.manual_seed(0)
    cfg = tiny("transformer", **opts)
    check_causality(build_model(cfg), cfg.vocab_size, cfg.seq_len, "cpu")


class Leaky(LanguageModel):
    """A deliberately broken model: position t also reads the token `shift` places ahead (0 = none),
    or with shift None the mean of the whole window (a bidirectional mixer)."""

    def __init__(self, cfg: ModelConfig, shift: int | None) -> None:
        super().__init__()
        self.config = cfg
        self.shift = shift
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, idx, targets=None, label_smoothing=0.0):  # type: ignore[no-untyped-def, override]
        x = self.embed(idx)
        if self.shift is None:
            x = x + x.mean(dim=1, keepdim=True)
        elif self.shift > 0:
            ahead = torch.roll(x, -self.shift, dims=1)
            ahead[:, -self.shift :] = 0
            x = x + 0.01 * ahead
        return ModelOutput(logits=self.head(x))


def test_a_causal_toy_passes_so_the_toy_itself_is_sound() -> None:
    torch.manual_seed(0)
    cfg = tiny("leaky")
    check_causality(Leaky(cfg, 0), cfg.vocab_size, cfg.seq_len, "cpu")


@pytest.mark.parametrize(("shift", "where"), [(1, "position 11 changed when token 12"),
                                             (5, "position 7 changed when token 12"),
                                             (None, "position 0 changed when token 12")])
def test_models_that_see_the_future_fail_naming_the_family(shift: int | None, where: str) -> None:
    torch.manual_seed(0)
    cfg = tiny("leaky")
    with pytest.raises(ConfigError) as info:
        check_causality(Leaky(cfg, shift), cfg.vocab_size, cfg.seq_len, "cpu")
    text = str(info.value)
    assert text.startswith("model 'leaky' sees the future") and where in text and "\n" not in text


def test_mode_carried_state_and_global_rng_are_left_alone() -> None:
    torch.manual_seed(0)
    cfg = tiny("lstm")
    model = build_model(cfg).train()
    with torch.no_grad():
        model(torch.randint(0, 64, (3, 24)))  # train mode: the LSTM now carries state
    before = {k: v.clone() for k, v in model.state_tensors().items()}
    assert before
    rng = torch.get_rng_state()
    check_causality(model, cfg.vocab_size, cfg.seq_len, "cpu")
    assert model.training
    after = model.state_tensors()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(torch.get_rng_state(), rng)
    model.eval()
    check_causality(model, cfg.vocab_size, cfg.seq_len, "cpu")
    assert not model.training


def test_a_run_whose_model_sees_the_future_fails_at_start_in_one_line(tmp_path) -> None:
    """The guard is wired into every run start: a real `train` whose transformer is swapped for a
    leaky one exits 2 with one line, in seconds, before any record is written."""
    import subprocess
    import sys
    import time

    from reliability_helpers import ROOT, TINY, engine_env

    boot = ("import sys; sys.path.insert(0, 'tests'); from engine.models import base; base._import_families(); "
            "from test_guard import Leaky; base._REGISTRY['transformer'] = lambda cfg: Leaky(cfg, 1); "
            "from engine.cli import main; sys.exit(main(sys.argv[1:]))")
    run = tmp_path / "peeks"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", boot, "train", "--run-dir", str(run), "--steps", "5", *TINY],
                          env=engine_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees the future" in lines[0] and lines[0].startswith("error: "), lines
    assert not (run / "metrics.msgpack").exists()
    print(f"refused in {took:.1f}s")
