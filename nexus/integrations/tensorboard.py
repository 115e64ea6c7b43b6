"""TensorBoard's `SummaryWriter`, reporting to Nexus: existing TensorBoard code changes one import.

    from nexus.integrations.tensorboard import SummaryWriter   # was: from torch.utils.tensorboard import ...
    writer = SummaryWriter()                                   # a Nexus run (./runs/<script>-<n>)
    writer.add_scalar("train/loss", loss, step)

- add_scalar(tag, value, global_step) -> `run.log({tag: value}, step=global_step)`: the values of one
  step are filed together when a later step is logged (or at flush/close); `global_step` omitted means
  the step of the last call.
- add_scalars(main, {k: v}) -> `main/k`; add_text -> a sample record (tags naming a sample or
  generation) or a log line; add_hparams -> the run's config (its metric_dict -> the summary).
- the dashboard's pause holds the loop inside the next add_scalar that starts a new step; stop sets
  `writer.should_stop` (the loop may check it, or ignore it).
- `SummaryWriter(..., tensorboard=True)` also writes real TensorBoard event files to `log_dir` (needs
  the `tensorboard` package); other methods (add_histogram, add_image...) go only there, and are
  ignored otherwise.

No torch or tensorboard import unless `tensorboard=True`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nexus
from nexus.integrations._common import file_sample, start_run
from nexus.reporter import Run

SAMPLE_WORDS = ("sample", "generat", "completion")


class SummaryWriter:
    """A `torch.utils.tensorboard.SummaryWriter` look-alike writing a Nexus run. `log_dir` names the run
    (its last part) and the folder it goes in (the rest); default ./runs/<script>-<n>, or
    $NEXUS_RUN_DIR. `run`: report into this run instead (default: the current `nexus.run` if any)."""

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
        *,
        run: Run | None = None,
        tensorboard: bool = False,
        total_steps: int | None = None,
        **init_kwargs: Any,
    ) -> None:
        if log_dir is not None and run is None and nexus.run is None:
            path = Path(log_dir)
            init_kwargs.setdefault("name", path.name)
            init_kwargs.setdefault("root", str(path.parent))
        if total_steps is not None:
            init_kwargs["total_steps"] = total_steps
        self.run, self._owns = start_run(run, init_kwargs)
        self._step: int | None = None
        self._closed = False
        self._ignored: set[str] = set()
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter as TBWriter

            self._tb = TBWriter(
                log_dir=str(log_dir) if log_dir is not None else str(self.run.dir),
                comment=comment,
                purge_step=purge_step,
                max_queue=max_queue,
                flush_secs=flush_secs,
                filename_suffix=filename_suffix,
            )

    @property
    def should_stop(self) -> bool:
        """The dashboard's stop: the loop may end when it sees this."""
        return self.run.should_stop

    def watch(self, optimizer: Any) -> None:
        """Not TensorBoard's: hand the optimizer over so the `r` key's ramps change its LR."""
        self.run.watch(optimizer)

    def get_logdir(self) -> str:
        return str(self.run.dir)

    # -- what TensorBoard code calls ------------------------------------------------------------

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        self._log({str(tag): scalar_value}, global_step)
        if self._tb is not None:
            self._tb.add_scalar(tag, scalar_value, global_step, walltime, new_style, double_precision)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        self._log({f"{main_tag}/{k}": v for k, v in tag_scalar_dict.items()}, global_step)
        if self._tb is not None:
            self._tb.add_scalars(main_tag, tag_scalar_dict, global_step, walltime)

    def add_text(
        self, tag: str, text_string: str, global_step: int | None = None, walltime: float | None = None
    ) -> None:
        """A sample record when the tag names a sample, else a text record: at `global_step` (the
        step its scalars are pending on), not the last step already filed."""
        if not self._closed:
            text = str(text_string)
            step = self._step_of(global_step)
            if any(w in str(tag).lower() for w in SAMPLE_WORDS):
                file_sample(self.run, str(tag), text, step=step)
            else:
                self._media(str(tag), text, step)
        if self._tb is not None:
            self._tb.add_text(tag, text_string, global_step, walltime)

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = None,
        bins: Any = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
    ) -> None:
        """A histogram record at its step (64 bins, as wandb.Histogram)."""
        if not self._closed:
            from nexus.media import Histogram

            try:
                histogram = Histogram(values, num_bins=max_bins or 64)
            except (TypeError, ValueError, OverflowError) as e:
                self._not_kept("add_histogram", e)
            else:
                self._media(str(tag), histogram, self._step_of(global_step))
        if self._tb is not None:
            self._tb.add_histogram(tag, values, global_step, bins, walltime, max_bins)

    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
    ) -> None:
        """A picture saved under the run folder's media/ (a media record at its step)."""
        if not self._closed:
            from nexus.media import Image, as_array

            try:
                pixels = as_array(img_tensor)
                if dataformats.upper() == "CHW" and pixels.ndim == 3:
                    pixels = pixels.transpose(1, 2, 0)
                image = Image(pixels)
            except (TypeError, ValueError, OverflowError) as e:
                self._not_kept("add_image", e)
            else:
                self._media(str(tag), image, self._step_of(global_step))
        if self._tb is not None:
            self._tb.add_image(tag, img_tensor, global_step, walltime, dataformats)

    def add_hparams(
        self,
        hparam_dict: dict[str, Any],
        metric_dict: dict[str, Any],
        hparam_domain_discrete: Any = None,
        run_name: str | None = None,
        global_step: int | None = None,
    ) -> None:
        if not self._closed:
            self.run.config.update(dict(hparam_dict))
            self.run.summary.update(dict(metric_dict))
        if self._tb is not None:
            self._tb.add_hparams(hparam_dict, metric_dict, hparam_domain_discrete, run_name, global_step)

    def flush(self) -> None:
        """Files the pending step (the writer thread puts records on disk as they come)."""
        if not self._closed and self.run._pending:
            self.run._commit()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Ends the run this writer started (finished, or stopped after the `s` key)."""
        if self._closed:
            return
        self._closed = True
        if self._owns:
            self.run.finish()
        elif self.run._pending:
            self.run._commit()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, etype: Any, value: Any, tb: Any) -> None:
        if etype is None or not self._owns:
            self.close()
            return
        self._closed = True
        self.run.__exit__(etype, value, tb)  # failed or killed, with the reason
        if self._tb is not None:
            self._tb.close()

    def __getattr__(self, name: str) -> Any:
        """TensorBoard's other add_* methods: passed to the real writer, or ignored (said once)."""
        if not name.startswith("add_") or name.startswith("__"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._tb is not None:
                return getattr(self._tb, name)(*args, **kwargs)
            self._say_once(
                name,
                f"SummaryWriter.{name} is not recorded by Nexus (tensorboard=True writes it "
                "to TensorBoard event files too)",
            )
            return None

        return call

    # -- plumbing -------------------------------------------------------------------------------

    def _step_of(self, global_step: int | None) -> int:
        if global_step is not None:
            return int(global_step)
        return self._step if self._step is not None else self.run.step

    def _say_once(self, name: str, text: str) -> None:
        """A warning about method `name` in the run's log, once per method (never raised)."""
        if name not in self._ignored:
            self._ignored.add(name)
            self.run._put_log(text, "warning")

    def _not_kept(self, name: str, error: Exception) -> None:
        """A value the loop passed that Nexus cannot keep."""
        self._say_once(name, f"SummaryWriter.{name}: a value was not kept ({error})")

    def _media(self, tag: str, value: Any, step: int) -> None:
        from nexus.richlog import rich_records

        try:
            records = rich_records(self.run, tag, value, step) or []
        except (OSError, ValueError, TypeError) as e:
            self.run._put_log(f"{tag}: not kept ({e})", "warning")
            return
        for record in records:
            self.run._put_media(record)

    def _log(self, values: dict[str, Any], global_step: int | None) -> None:
        if self._closed:
            return
        if global_step is not None:
            self._step = int(global_step)
        step = self._step if self._step is not None else self.run.step
        self._step = step
        self.run.log(values, step=step)
