"""Every config value is range-checked before any tensor exists, with one line that says what to fix.

Values that used to be accepted and fail later (an LR of nan crashing step 1, a negative top-k
crashing the first sample ~100 steps in, a seed torch cannot take) are given to the real CLI: it
exits 2 with one `error:` line and creates no run folder. A hypothesis test gives every numeric
field of every section nan, inf, huge and negative values: the validator raises nothing but
ConfigError, and what it accepts is finite and fits torch's int64.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_core import config as C
from nexus_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def nexus(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nexus_tui", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("optim.lr=nan", "optim.lr must be a finite number"),
        ("optim.lr=inf", "optim.lr must be a finite number"),
        ("optim.lr=-inf", "optim.lr"),
        ("optim.lr=1e39", r"optim.lr must be in \(0, 1e\+30\]"),
        ("model.rope_base=0", "model.rope_base must be"),
        ("model.dropout=5", r"model.dropout must be in \[0, 1\)"),
        (f"train.seed={2**70}", "train.seed must be between 0 and"),
        ("train.seed=2**70", "train.seed must be int"),
        ("train.sample_temperature=-1", "train.sample_temperature must be between 0 and 5"),
        ("train.sample_top_k=-1", "train.sample_top_k must be between 0"),
        ("train.sample_tokens=-1", "train.sample_tokens must be between 0"),
        ("optim.beta1=2", r"optim.beta1 must be in \[0, 1\)"),
        ("optim.eps=-1", r"optim.eps must be in \(0, 1\]"),
        ("optim.grad_clip=nan", "optim.grad_clip must be a finite number"),
        ("schedule.warmup_steps=-5", "schedule.warmup_steps"),
        (f"model.d_model={2**64}", "model.d_model must be between 1 and"),
        ("schedule.decay_shape=cubic", "schedule.decay_shape must be one of linear, sqrt, exp"),
    ],
)
def test_the_cli_refuses_in_one_line_before_any_folder(tmp_path: Path, override: str, says: str) -> None:
    run_dir = tmp_path / "runs" / "r"
    done = nexus("train", "--preset", "tiny", "--run-dir", str(run_dir), "--device", "cpu", "--set", override,
                 cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    import re

    assert re.search(says, lines[0]), lines[0]
    assert "Traceback" not in done.stderr and not run_dir.exists() and not (tmp_path / "runs").exists()


def test_a_config_file_with_nan_is_refused_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[optim]\nbeta2 = nan\n[train]\nsample_top_k = -1\n")
    done = nexus("train", "--config", str(tmp_path / "c.toml"), "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: optim.beta2 must be a finite number")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("raw", ["9" * 400, "9" * 5000, "-" + "9" * 400, "1e400", "[1, 2]", '"3e-4"'])
def test_absurd_spellings_are_one_line_too(raw: str) -> None:
    for section, key, _ in NUMERIC:
        with pytest.raises(ConfigError):
            C.apply_override(C.Config(), f"{section}.{key}={raw}").validate()


def _numeric_fields() -> list[tuple[str, str, type]]:
    """(section, key, kind) of every int and float, the family tables' (model.hybrid, ..) included."""
    out = []
    for section, part in C.all_sections(C.Config()):
        for key, (kind, _rng, choices) in C.field_limits(part).items():
            if kind in (int, float) and not choices:
                out.append((section, key, kind))
    return out


NUMERIC = _numeric_fields()
NASTY = [math.nan, math.inf, -math.inf, 1e39, -1e39, 1e308, -1.0, -1, 0, 0.0, 1, 2**31, 2**63 - 1, 2**63, 2**70,
         -(2**63) - 1, 5e-324]


def _toml(v: float | int) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def test_every_numeric_field_declares_its_limits() -> None:
    """The whole class, not the examples: no int or float field is left without a Range."""
    bare = [f"{s}.{k}" for s, part in C.all_sections(C.Config())
            for k, (kind, rng, ch) in C.field_limits(part).items() if kind in (int, float, list) and not ch and rng is None]
    assert bare == [] and len(NUMERIC) > 40
    assert {s for s, _, _ in NUMERIC} >= {"model.transformer", "model.hybrid", "model.engram", "model.lstm"}


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(NUMERIC),
    value=st.one_of(st.sampled_from(NASTY), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-(2**1100), max_value=2**1100)),
    preset=st.sampled_from(C.preset_names()),
)
def test_no_numeric_value_gets_past_validation_unless_it_is_sane(field, value, preset) -> None:
    section, key, kind = field
    cfg = C.load_preset(preset)
    try:
        C.apply_override(cfg, f"{section}.{key}={_toml(value)}")
        cfg.validate()
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
        return
    got = getattr(dict(C.all_sections(cfg))[section], key)
    if kind is float:
        assert math.isfinite(got)
    else:
        assert isinstance(got, int) and -(2**63) <= got < 2**63
