"""wandb.sdk.wandb_run.Run is Nexus's Run."""

from nexus.reporter import Run

__all__ = ["Run"]
