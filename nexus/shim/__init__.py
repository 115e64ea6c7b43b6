"""The switch for code that cannot be edited: a `wandb` package that is Nexus.

Hugging Face's `report_to="wandb"` callback and Lightning's `WandbLogger` run `import wandb`
themselves. Putting this folder first on PYTHONPATH (`nexus run -- python train.py` does, or
`export PYTHONPATH=$(nexus shim-path)`) makes that import resolve to `shim/wandb/`, which hands every
name to `nexus`, so their runs are written as Nexus runs and shown in the dashboard. The
`wandb-*.dist-info` beside it answers "is wandb installed, which version" for libraries that ask the
package metadata (Lightning's RequirementCache) where the real wandb is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent
"""The folder to put first on PYTHONPATH."""


def env_with_shim(env: dict[str, str]) -> dict[str, str]:
    """`env` with SHIM_DIR first on PYTHONPATH and NEXUS_WANDB=1 (what `nexus run` hands the script)."""
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != SHIM_DIR]
    return {**env, "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), *parts]), "NEXUS_WANDB": "1"}
