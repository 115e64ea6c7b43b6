"""A Lightning 2.x fit reported to Nexus and steered from the dashboard: a Logger and a Callback.

    from nexus.integrations.lightning import NexusCallback, NexusLogger
    trainer = L.Trainer(..., logger=NexusLogger(), callbacks=[NexusCallback()])

- `NexusLogger` streams `log_metrics` (every `self.log(...)`: `val_*`/`val/*` keys go with the evals)
  and `log_hyperparams` (the run's config).
- `NexusCallback` is the loop's `run.step_end()` in `on_train_batch_end`: pause holds the fit there,
  stop sets `trainer.should_stop`, checkpoint calls `trainer.save_checkpoint` into the run folder's
  `checkpoints/`, eval runs the validation loop right after this batch, a ramp goes through the
  optimizer and its LR scheduler (the ramped LR is the one in param_groups, which LearningRateMonitor
  and saved optimizer state read). `NexusCallback(sample=fn)` with
  `fn(module, prompt, tokens, temperature, top_k) -> text` enables the `g` key.
- under DDP (`strategy="ddp"`, torchrun or Lightning's own launcher) global rank 0 reports and listens;
  at each batch end every rank takes part in one small broadcast of what it decided (`nexus/ranks.py`):
  stop, checkpoint (a collective in Lightning) and eval happen on every rank at the same batch, and a
  ramp gives every rank the same LR. A single process does no collective.

Either works alone; together they share one run. `lightning.pytorch` is imported here only (the
older `pytorch_lightning` package works the same when `lightning` is not installed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from nexus.integrations._common import innermost_optimizer, set_total_steps, start_run
from nexus.ranks import Decision, RankSteering
from nexus.reporter import Run

try:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the pre-2.0 package name
    import pytorch_lightning as pl  # type: ignore[no-redef,unused-ignore]
    from pytorch_lightning.loggers.logger import (  # type: ignore[assignment,unused-ignore]
        Logger,
        rank_zero_experiment,
    )
    from pytorch_lightning.utilities import rank_zero_only  # type: ignore[no-redef,unused-ignore]

EVAL_PREFIXES = ("val_", "val/", "valid", "validation", "eval", "test")


class NexusLogger(Logger):
    """Lightning's logger interface onto a Nexus run (`experiment` is the `nexus.Run`). `run`: one to
    report into; default the current `nexus.run`, else a new one from `init_kwargs`, finished when
    Lightning finalizes the logger."""

    def __init__(self, run: Run | None = None, **init_kwargs: Any) -> None:
        super().__init__()
        self._run = run
        self._init_kwargs = init_kwargs
        self._owns = False

    @property
    def name(self) -> str:
        return self._run.name if self._run is not None else str(self._init_kwargs.get("name") or "nexus")

    @property
    def version(self) -> str:
        return ""

    @property
    def root_dir(self) -> str | None:
        return str(self._run.dir.parent) if self._run is not None else None

    @property
    def log_dir(self) -> str | None:
        return str(self._run.dir) if self._run is not None else None

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        if self._run is None or (self._owns and self._run._ended):
            self._run, self._owns = start_run(None, self._init_kwargs)
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        params = params if isinstance(params, dict) else vars(params) if hasattr(params, "__dict__") else {}
        with contextlib.suppress(Exception):
            params = dict(params)  # AttributeDict, OmegaConf-like mappings
        self.experiment.config.update(params, allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        run = self.experiment
        if run._ended:
            return
        if step is not None:
            # Lightning's step counts the optimizer steps done before this batch's; Nexus's, after it
            step = max(int(step) + 1, run._last_committed)  # (a later validate() logs at an old step)
        values = dict(metrics)
        if "epoch" in values and all(k == "epoch" or k.startswith(EVAL_PREFIXES) for k in values):
            del values["epoch"]  # Lightning adds it to a validation's log too: the train record has it
        # Filed at once: Lightning logs a batch after its on_train_batch_end, so waiting for the next
        # step would pair these values with the next optimizer step's LR.
        run.log(values, step=step, commit=True)

    @rank_zero_only
    def save(self) -> None:
        """Nothing to save: the writer thread files records as they come."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        run = self._run
        if run is None or not self._owns or run._ended:
            return
        if status == "failed":
            run.finish(exit_code=1)
        else:
            run.finish()


class NexusCallback(pl.Callback):
    """Steering for a Lightning fit (see the module docstring). Uses the `NexusLogger`'s run when the
    Trainer has one, else the current `nexus.run`, else starts one (with `init_kwargs`) and ends it."""

    def __init__(
        self, run: Run | None = None, sample: Callable[..., str] | None = None, **init_kwargs: Any
    ) -> None:
        self.run = run
        self._sample_fn = sample
        self._init_kwargs = init_kwargs
        self._owns = False
        self._trainer: Any = None
        self._module: Any = None
        self._validate_next = False
        self._eval_asked = False
        self._patched: Any = None
        self._ranks: RankSteering | None = None
        self._ckpt_path: str | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._trainer, self._module = trainer, pl_module
        optimizer = innermost_optimizer(trainer.optimizers[0]) if trainer.optimizers else None
        can_eval = self._patch_validation(trainer, pl_module)  # on every rank: `e` validates on all of them
        if trainer.is_global_zero:
            self._start(trainer, pl_module, optimizer, can_eval)
        if self._ranks is not None:
            self._ranks.close()
        self._ranks = RankSteering(self.run if trainer.is_global_zero else None, optimizer, self._act)

    def _start(self, trainer: Any, pl_module: Any, optimizer: Any, can_eval: bool) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, NexusLogger)), None)
        if logger is not None:
            self.run = logger.experiment
        elif self.run is None or self.run._ended:
            self.run, self._owns = start_run(None, self._init_kwargs)
        run = self.run
        self._has_logger = logger is not None
        with contextlib.suppress(Exception):
            set_total_steps(
                run,
                trainer.max_steps
                if trainer.max_steps and trainer.max_steps > 0
                else trainer.estimated_stepping_batches,
            )
        run.watch(pl_module, log=None)  # its size and device only: no per-layer hooks
        if optimizer is not None:
            configs = getattr(trainer, "lr_scheduler_configs", None) or ()
            schedulers = [
                c.scheduler
                for c in configs
                if innermost_optimizer(getattr(c.scheduler, "optimizer", None)) is optimizer
            ]
            with contextlib.suppress(ValueError):
                run.watch(optimizer, scheduler=schedulers[0] if schedulers else None)
        run.on_checkpoint(self._checkpoint)
        if can_eval:
            run.on_eval(self._evaluate)
        else:
            run.lacks(
                "eval", "the fit has no validation to run: define validation_step and pass val_dataloaders"
            )
        if self._sample_fn is not None:
            run.on_sample(self._sample)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Every rank: rank 0's `run.step_end()` (pause holds here; checkpoint/eval/sample run their
        handlers), and under DDP one broadcast that gives every rank the same decisions and LR."""
        if self.run is not None and trainer.is_global_zero:
            self.run.at_step(trainer.global_step)  # the step-N.ckpt it asks for is recorded at N
        if self._ranks is not None:
            self._ranks.step_end()

    def _act(self, decision: Decision) -> None:
        """On every rank: what rank 0 decided, done the same way everywhere."""
        if decision.save:
            self._save()
        if decision.evaluate:
            self._validate_next = True
        if decision.stop:
            self._trainer.should_stop = True

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Without a NexusLogger, an eval the `e` key asked for is filed from the callback metrics."""
        if not self._eval_asked or self.run is None or self.run._ended:
            return
        self._eval_asked = False
        if self._has_logger:
            return
        values = {k: v for k, v in trainer.callback_metrics.items() if k.startswith(EVAL_PREFIXES)}
        if values:
            self.run.log(values, step=max(self.run._last_committed, 0), commit=True)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """The run ends failed with the exception's line (or killed for Ctrl-C), before Lightning's
        own `finalize("failed")` could say only that it failed."""
        logger = next((lg for lg in trainer.loggers if isinstance(lg, NexusLogger)), None)
        run = self.run or (logger._run if logger is not None else None)
        if run is None or run._ended:
            return
        from nexus.ending import one_line

        if isinstance(exception, KeyboardInterrupt):
            run._end_interrupted()  # Ctrl-C: killed; the dashboard's stop: stopped
        else:
            run._end_as_failed(one_line(exception))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._unpatch()
        if self._ranks is not None:
            self._ranks.close()
            self._ranks = None
        if self.run is not None and self._owns:
            self.run.finish()

    # -- handlers (on the training thread, inside on_train_batch_end) -------------------------

    def _checkpoint(self) -> str:
        """Saved now, on every rank (`save_checkpoint` is a collective; rank 0 writes the file)."""
        run = self.run
        if run is None:  # registered only once a run is attached (on_train_start)
            raise RuntimeError("checkpoint asked for with no run attached")
        self._ckpt_path = str(run.dir.resolve() / "checkpoints" / f"step-{self._trainer.global_step}.ckpt")
        self._ask(Decision(save=True))
        return self._ckpt_path

    def _save(self) -> None:
        path = self._ckpt_path
        if self._ranks is not None and self._ranks.active:
            path = self._trainer.strategy.broadcast(path, src=0)  # rank 0's; a sharded save writes there too
        self._trainer.save_checkpoint(path)

    def _evaluate(self) -> None:
        """The epoch loop runs validation right after this batch, on every rank (its own val loop,
        logging, hooks)."""
        self._eval_asked = True
        self._ask(Decision(evaluate=True))

    def _ask(self, decision: Decision) -> None:
        if self._ranks is not None:
            self._ranks.share(save=decision.save, evaluate=decision.evaluate)
        else:  # a run of the script's own, steered after the fit: nothing is shared any more
            self._act(decision)

    def _sample(self, prompt: str, tokens: int, temperature: float, top_k: int) -> str:
        module, sample_fn = self._module, self._sample_fn
        if sample_fn is None:  # the handler is registered only with a sample function
            raise RuntimeError("generate asked for with no sample function")
        was_training = module.training
        module.eval()
        try:
            import torch

            with torch.no_grad():
                return str(sample_fn(module, prompt, tokens, temperature, top_k))
        finally:
            module.train(was_training)

    def _patch_validation(self, trainer: Any, pl_module: Any) -> bool:
        """Let `e` trigger the fit's own validation: the epoch loop asks `_should_check_val_fx` after
        each batch; ours says yes once when asked. False (no `e` key) when there is no val loop to
        run or this Lightning lacks the hook."""
        loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
        original: Any = getattr(loop, "_should_check_val_fx", None)
        if self._patched is not None:
            return True
        validates = (
            callable(getattr(pl_module, "validation_step", None))
            and type(pl_module).validation_step is not pl.LightningModule.validation_step
        )
        source = getattr(getattr(loop, "val_loop", None), "_data_source", None)
        has_data = source is None or not hasattr(source, "is_defined") or source.is_defined()
        if (
            loop is None
            or original is None
            or not validates
            or not has_data
            or trainer.limit_val_batches == 0
        ):
            return False

        def should_check(*args: Any, **kwargs: Any) -> bool:
            if self._validate_next:
                self._validate_next = False
                return True
            return bool(original(*args, **kwargs))

        loop._should_check_val_fx = should_check
        self._patched = (loop, original)
        return True

    def _unpatch(self) -> None:
        if self._patched is not None:
            loop, _ = self._patched
            with contextlib.suppress(AttributeError):
                del loop._should_check_val_fx  # back to the class's method
            self._patched = None
