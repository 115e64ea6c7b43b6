"""Building a small ModelConfig in a test: one keyword list, each family option sent to its own table."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from nexus_core.config import ModelConfig
from nexus_core.families import FAMILY_SECTIONS


def model_config(family: str = "transformer", **kw: Any) -> ModelConfig:
    """ModelConfig(family=..., shared fields..., <family>=<its table>): `model_config("hybrid", d_model=32,
    ssm_state=4)`. A key that is neither shared nor the family's own fails here, as it would in a config.
    A family with no table (a test's own toy model) takes shared fields only."""
    if family not in FAMILY_SECTIONS:
        return ModelConfig(family=family, **kw)  # type: ignore[arg-type]
    cls = FAMILY_SECTIONS[family]
    own = {f.name for f in fields(cls)}
    table = cls(**{k: v for k, v in kw.items() if k in own})
    return ModelConfig(family=family, **{k: v for k, v in kw.items() if k not in own}, **{family: table})
