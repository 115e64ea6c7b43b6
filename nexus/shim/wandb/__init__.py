"""`import wandb` answered by Nexus (see nexus/shim/__init__.py): every name is nexus's.

`wandb.run`, `wandb.config` and `wandb.summary` change as runs start and end, so they are read from
`nexus` on each access (a module `__getattr__`), never copied here.
"""

from __future__ import annotations

from typing import Any

import nexus as _nexus
from nexus import *  # noqa: F403 - the whole wandb-shaped surface
from nexus import plot  # noqa: F401

__version__ = "0.31.0+nexus"
_NEXUS = True
"""How a script (or a test) can tell it got Nexus's wandb."""

for _name in ("run", "config", "summary"):
    globals().pop(_name, None)


def __getattr__(name: str) -> Any:
    return getattr(_nexus, name)
