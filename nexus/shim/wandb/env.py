"""wandb.env: the setters HF's hyperparameter search calls; they set the variables wandb reads."""

import os
from typing import Any


def set_entity(value: str, env: dict[str, Any] | None = None) -> None:
    (os.environ if env is None else env)["WANDB_ENTITY"] = value


def set_project(value: str, env: dict[str, Any] | None = None) -> None:
    (os.environ if env is None else env)["WANDB_PROJECT"] = value
