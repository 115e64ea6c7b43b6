"""A Hugging Face `Trainer` reported to Nexus and steered from the dashboard by one callback:

    from nexus.integrations.huggingface import NexusCallback
    trainer = Trainer(model, args, train_dataset=..., callbacks=[NexusCallback()])

- on_log streams the Trainer's logs: `loss`, `learning_rate`, `grad_norm` fill the standard charts,
  `eval_*` keys become `eval/*` (the eval record), the end-of-training summary goes to `run.summary`.
- on_step_end is the loop's `run.step_end()`: pause holds the Trainer right there (memory kept), stop
  sets `control.should_training_stop`, checkpoint sets `control.should_save` (the Trainer writes
  `output_dir/checkpoint-N` itself), eval sets `control.should_evaluate` (when there is an eval set).
- a ramp goes through the Trainer's optimizer (`run.watch` on the torch optimizer under accelerate's
  wrapper, with the Trainer's scheduler): the ramped LR is the one HF logs as `learning_rate` and saves
  in trainer_state.json and the optimizer state; the schedule's future is published for the preview.
- the `g` key samples with `model.generate` and the tokenizer (the Trainer's processing class, or
  `NexusCallback(tokenizer=...)`); without one the key is refused with the reason.
- under DDP (torchrun) the main process reports and listens; at each step end every rank takes part
  in one small broadcast of what it decided (`nexus/ranks.py`), so stop, save and eval happen on every
  rank at the same step and a ramp gives every rank the same LR. A single process does no collective.

transformers is imported here only, never by `import nexus`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Any

from transformers import TrainerCallback

from nexus.integrations._common import innermost_optimizer, set_total_steps, start_run
from nexus.ranks import Decision, RankSteering
from nexus.reporter import Run
from nexus_core.units import is_real

SUMMARY_KEYS = frozenset(
    {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
)
"""The one log the Trainer writes after its last step: the run's summary, not a step's values
(its `train_loss` is the mean over the run, which would draw a false last point on the loss chart)."""


class NexusCallback(TrainerCallback):
    """Report and steer a `transformers.Trainer`. `run`: a `nexus.init()` run to report into (default:
    the current `nexus.run`, else a new one started at train begin with `init_kwargs`, named after
    `args.run_name` when it is set, and finished at train end)."""

    def __init__(self, run: Run | None = None, tokenizer: Any = None, **init_kwargs: Any) -> None:
        self.run = run
        self.tokenizer = tokenizer
        self._init_kwargs = init_kwargs
        self._owns = False
        self._control: Any = None
        self._state: Any = None
        self._args: Any = None
        self._model: Any = None
        self._can_eval = False
        self._ranks: RankSteering | None = None

    # -- the Trainer's events ----------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._args, self._state, self._control = args, state, control
        optimizer = kwargs.get("optimizer")
        inner = innermost_optimizer(optimizer) if optimizer is not None else None
        if state.is_world_process_zero:  # one run per training, reported by the main process
            self._start(args, state, inner, kwargs)
        if self._ranks is not None:
            self._ranks.close()
        self._ranks = RankSteering(self.run if state.is_world_process_zero else None, inner, self._act)

    def _start(self, args: Any, state: Any, optimizer: Any, kwargs: dict[str, Any]) -> None:
        if self.run is None or self.run._ended:
            init = dict(self._init_kwargs)
            init.setdefault("config", _config_of(args, kwargs.get("model")))
            if getattr(args, "run_name", None) and args.run_name != args.output_dir and "run_dir" not in init:
                init.setdefault("name", args.run_name)  # documented: the run is named after args.run_name
            init.setdefault(
                "model", getattr(getattr(kwargs.get("model"), "config", None), "model_type", None)
            )
            if state.max_steps:
                init.setdefault("total_steps", state.max_steps)
            self.run, self._owns = start_run(None, init)
        run = self.run
        set_total_steps(run, state.max_steps)
        self._model = kwargs.get("model")
        if self._model is not None:
            run.watch(self._model, log=None)  # its size and device only: no per-layer hooks
        if optimizer is not None:
            with contextlib.suppress(ValueError):  # an optimizer without float LRs: no ramps, said by the key
                run.watch(optimizer, scheduler=kwargs.get("lr_scheduler"))
        run.on_checkpoint(self._checkpoint)
        self._can_eval = _has_eval_set(args)
        if self._can_eval:
            run.on_eval(self._evaluate)
        else:
            run.lacks("eval", "the Trainer has no eval set: pass eval_dataset= to Trainer(...)")
        tokenizer = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        if tokenizer is not None and self._model is not None and hasattr(self._model, "generate"):
            self.tokenizer = tokenizer
            run.on_sample(self._sample)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Every rank: the main process's `run.step_end()` (pause holds here; checkpoint/eval/sample run
        their handlers), and under DDP one broadcast that gives every rank the same flags and LR."""
        self._control, self._state = control, state
        if self.run is not None and state.is_world_process_zero:
            self.run.at_step(state.global_step)  # a checkpoint-N it asks for is recorded at N
        if self._ranks is not None:
            self._ranks.step_end()

    def _act(self, decision: Decision) -> None:
        """On every rank: what the main process decided becomes the Trainer's own flags."""
        if decision.stop:
            self._control.should_training_stop = True
        if decision.save:
            self._control.should_save = True
        if decision.evaluate:
            self._control.should_evaluate = True

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        run = self.run
        if run is None or run._ended or not logs:
            return
        if SUMMARY_KEYS & logs.keys() and "loss" not in logs:
            run.summary.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            return
        values: dict[str, Any] = {}
        evaluating = any(k.startswith("eval_") for k in logs)
        for key, value in logs.items():
            if key.startswith("eval_"):
                values[f"eval/{key[5:]}"] = value
            elif key == "epoch" and evaluating:
                continue  # the train record of this step has it
            elif is_real(value):
                values[key] = value
        if values:
            run.log(values, step=state.global_step, commit=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ranks is not None:
            self._ranks.close()
            self._ranks = None
        if self.run is not None and self._owns:
            self.run.finish()

    # -- the handlers the dashboard's keys call (on the training thread, inside on_step_end) ---

    def _checkpoint(self) -> str:
        """The Trainer saves after this step, on every rank (its own format, rotation, `save_total_limit`)."""
        self._ask(Decision(save=True))
        return os.path.join(self._args.output_dir, f"checkpoint-{self._state.global_step}")

    def _evaluate(self) -> None:
        """The Trainer evaluates after this step, on every rank; its eval_* log comes back through on_log."""
        self._ask(Decision(evaluate=True))

    def _ask(self, decision: Decision) -> None:
        if self._ranks is not None:
            self._ranks.share(save=decision.save, evaluate=decision.evaluate)
        else:  # a run of the script's own, steered after train end: nothing is shared any more
            self._act(decision)

    def _sample(self, prompt: str, tokens: int, temperature: float, top_k: int) -> str:
        import torch

        model, tokenizer = self._model, self.tokenizer
        was_training = model.training
        device = next(model.parameters()).device
        ids = tokenizer(prompt or (tokenizer.bos_token or ""), return_tensors="pt")["input_ids"].to(device)
        if ids.shape[-1] == 0:
            raise ValueError("the prompt is empty and the tokenizer has no bos_token to start from")
        sampling = temperature > 0
        options: dict[str, Any] = {"max_new_tokens": tokens, "do_sample": sampling}
        if sampling:
            options.update(temperature=temperature, top_k=top_k or None)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is not None:
            options["pad_token_id"] = pad
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
        finally:
            model.train(was_training)
        return prompt + str(tokenizer.decode(out[0, ids.shape[-1] :], skip_special_tokens=True))


def _has_eval_set(args: Any) -> bool:
    """Whether `control.should_evaluate` is safe: the Trainer raises when it has no eval set. Callbacks
    are not handed the Trainer, so look for it one frame up or so (it calls on_train_begin); failing
    that, an eval strategy other than "no" means the Trainer checked it has an eval set."""
    frame = inspect.currentframe()
    for _ in range(8):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            break
        owner: Any = frame.f_locals.get("self")
        if hasattr(owner, "eval_dataset") and hasattr(owner, "callback_handler"):
            return owner.eval_dataset is not None
    return str(getattr(args, "eval_strategy", "no")).lower() not in ("no", "intervalstrategy.no")


def _config_of(args: Any, model: Any) -> dict[str, Any]:
    """The run's config: the TrainingArguments that matter to a reader, and the model's config."""
    config: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        full = args.to_dict()
        keep = (
            "learning_rate",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "max_steps",
            "num_train_epochs",
            "weight_decay",
            "lr_scheduler_type",
            "warmup_steps",
            "warmup_ratio",
            "seed",
            "optim",
            "bf16",
            "fp16",
            "max_grad_norm",
            "output_dir",
            "run_name",
        )
        config["train"] = {k: full[k] for k in keep if k in full and full[k] is not None}
    with contextlib.suppress(Exception):
        config["model"] = model.config.to_dict()
    return config
