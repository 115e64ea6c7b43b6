"""The one tiny test preset (`test-tiny.toml`), as the engine's `--set` arguments or as the
`section.key=value` overrides the launch form and the supervisor take, always over the `tiny` preset."""

from __future__ import annotations

import json
from pathlib import Path

from nexus_core.config import Config, apply_override, load_preset, read_toml

PRESET = Path(__file__).with_name("test-tiny.toml")
BASE = "tiny"
"""The shipped preset the test preset is applied over (the engine's default preset)."""


def _toml_value(value: object) -> str:
    """A value as `apply_override` parses it back (a TOML literal)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _overrides(path: Path) -> list[str]:
    table = read_toml(path)
    return [
        f"{section}.{key}={_toml_value(value)}"
        for section, keys in table.items()
        for key, value in keys.items()
    ]


TINY_OVERRIDES: list[str] = _overrides(PRESET)
"""`section.key=value` strings, for the supervisor's and the launch form's overrides."""

TINY: list[str] = [arg for kv in TINY_OVERRIDES for arg in ("--set", kv)]
"""`--set section.key=value ...` for `python -m engine train` (over its default preset, `tiny`)."""


def sets(*overrides: str) -> list[str]:
    """`--set` arguments for the test preset followed by a test's own overrides (later ones win)."""
    return [*TINY, *(arg for kv in overrides for arg in ("--set", kv))]


def config(*overrides: str, name: str = "test") -> Config:
    """The test preset as a validated Config (over `tiny`, then `overrides`), for a Trainer built in
    process: the same settings an engine child gets from TINY."""
    cfg = load_preset(BASE)
    cfg.name = name
    for text in [*TINY_OVERRIDES, *overrides]:
        apply_override(cfg, text)
    return cfg.validate()
