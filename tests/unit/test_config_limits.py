"""Every config value is range-checked before any tensor exists, with one line that says what to fix.

A hypothesis test gives every numeric field of every section nan, inf, huge and negative values: the
validator raises nothing but ConfigError, and what it accepts is finite and fits torch's int64. The
real CLI's refusals are in tests/integration/test_config_limits_cli.py.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_core import config as C
from nexus_core.errors import ConfigError


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
NASTY = [
    math.nan,
    math.inf,
    -math.inf,
    1e39,
    -1e39,
    1e308,
    -1.0,
    -1,
    0,
    0.0,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**70,
    -(2**63) - 1,
    5e-324,
]


def _toml(v: float | int) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def test_every_numeric_field_declares_its_limits() -> None:
    """The whole class, not the examples: no int or float field is left without a Range."""
    bare = [
        f"{s}.{k}"
        for s, part in C.all_sections(C.Config())
        for k, (kind, rng, ch) in C.field_limits(part).items()
        if kind in (int, float, list) and not ch and rng is None
    ]
    assert bare == [] and len(NUMERIC) > 40
    assert {s for s, _, _ in NUMERIC} >= {"model.transformer", "model.hybrid", "model.engram", "model.lstm"}


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(NUMERIC),
    value=st.one_of(
        st.sampled_from(NASTY),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**1100), max_value=2**1100),
    ),
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
