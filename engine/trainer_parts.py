"""What the Trainer's two mixins (`Stepping`, `SideWork`) may use of the Trainer, declared once.

The attributes are built in `engine.trainer.Trainer.__init__`/`_setup`; the methods live on the
Trainer or on the other mixin. Declaring them here lets the type checker check each mixin on its own
instead of seeing every `self.model` as unknown. Nothing here runs: annotations and, under
TYPE_CHECKING, signatures only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil
    import torch

    from engine.data import Corpus
    from engine.distributed import Dist
    from engine.health import HealthWatch, SkipTally
    from engine.models import LanguageModel
    from engine.report import Reporter
    from nexus_core.config import Config
    from nexus_core.schedule import Schedule


class TrainerParts:
    """The Trainer's state and helpers as its mixins see them."""

    cfg: Config
    run_dir: Path
    step: int
    tokens: int
    best_val_loss: float
    last_eval: tuple[int, float] | None
    lr_scale: float
    rollbacks: int
    state: str
    started: float
    health: HealthWatch
    skips: SkipTally
    _process: psutil.Process
    dist: Dist
    device: torch.device
    amp: torch.dtype | None
    corpus: Corpus
    model: LanguageModel
    forward: Callable[..., Any]
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    tokens_per_step: int
    stateful: bool
    _eval_data: list[tuple[torch.Tensor, torch.Tensor]]
    report: Reporter

    if TYPE_CHECKING:

        def pause(self, reason: str) -> None: ...

        def _set_state(self, state: str, reason: str = "", exit_code: int | None = None) -> None: ...

        def _lr(self) -> float: ...
