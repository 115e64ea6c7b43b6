"""The parts of a wandb `Run` beyond logging numbers, mixed into `nexus.Run`.

Properties a script reads (`run.project`, `run.tags`, `run.url`...), `define_metric`, files
(`save`, `log_code`, `log_artifact`, `use_artifact`), and calls that mean nothing offline
(`mark_preempting`, `unwatch`) accepted. Media values reach `_put_media` from `richlog.py`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.artifacts import Artifact, RunFiles
from nexus.compat import skipped
from nexus.media import file_stem
from nexus.metricdefs import MetricDefs
from nexus_core import protocol as P

if TYPE_CHECKING:
    from nexus.watching import ModelWatch


class WandbSurface:
    """Mixed into Run (reporter.py), which sets `dir`, `_meta`, `_writer`, `_describe`, `_put_log`."""

    dir: Path
    name: str
    _meta: dict[str, Any]
    _writer: Any
    _defs: MetricDefs
    _watch: ModelWatch | None
    _media_n: int

    def _describe(self) -> None: ...

    def _put_log(self, text: str, level: str = "info") -> None: ...

    # -- what a script reads -------------------------------------------------------------------

    @property
    def project(self) -> str:
        return str(self._meta.get("project") or "uncategorized")

    @property
    def entity(self) -> str:
        return str(self._meta.get("entity") or "")

    @property
    def group(self) -> str:
        return str(self._meta.get("group") or "")

    @property
    def job_type(self) -> str:
        return str(self._meta.get("job_type") or "")

    @property
    def notes(self) -> str:
        return str(self._meta.get("notes") or "")

    @notes.setter
    def notes(self, value: str) -> None:
        self._meta["notes"] = str(value)
        self._describe()

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._meta.get("tags") or ())

    @tags.setter
    def tags(self, value: Any) -> None:
        self._meta["tags"] = [str(t) for t in value]
        self._describe()

    @property
    def url(self) -> str:
        """wandb's page for the run; here the run folder (a file: URL, so `print(run.url)` still helps)."""
        return self.dir.resolve().as_uri()

    def get_url(self) -> str:
        return self.url

    def get_project_url(self) -> str:
        return self.dir.resolve().parent.as_uri()

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.name}".lstrip("/")

    @property
    def sweep_id(self) -> str | None:
        return self._meta.get("sweep_id")

    @property
    def offline(self) -> bool:
        return True

    @property
    def disabled(self) -> bool:
        return False

    @property
    def start_time(self) -> float:
        return float(self._meta.get("started", 0.0))

    @property
    def settings(self) -> Any:
        from nexus.compat import Settings

        return Settings(
            project=self.project, run_name=self.name, mode="offline", files_dir=str(self.dir / P.FILES_DIR)
        )

    def status(self) -> dict[str, Any]:
        return dict(self._writer.status)

    # -- define_metric --------------------------------------------------------------------------

    def define_metric(
        self,
        name: str,
        step_metric: Any = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Any:
        entry = self._defs.define(name, step_metric, step_sync, hidden, summary, goal, overwrite)
        if entry.get("dropped"):
            skipped(
                f"define_metric summary {entry['dropped']}", "not one of min, max, mean, first, last, best"
            )
        self._meta["metrics"] = self._defs.as_meta()
        self._describe()
        return _MetricHandle(str(name))

    # -- files ----------------------------------------------------------------------------------

    @property
    def _files(self) -> RunFiles:
        return RunFiles(self.dir, lambda text: self._put_log(text))

    def save(self, glob_str: Any = None, base_path: str | None = None, policy: str = "live") -> Any:
        try:
            return self._files.save(glob_str, base_path, policy)
        except OSError as e:
            return self._file_error("save", e, [])

    def log_code(
        self, root: Any = ".", name: str | None = None, include_fn: Any = None, exclude_fn: Any = None
    ) -> Any:
        try:
            return self._files.log_code(root, name, include_fn, exclude_fn)
        except OSError as e:
            return self._file_error("log_code", e, None)

    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,  # noqa: A002
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Any:
        try:
            return self._files.log_artifact(artifact_or_path, name, type, aliases, tags)
        except OSError as e:
            return self._file_error("log_artifact", e, artifact_or_path)

    def log_model(self, path: Any, name: str | None = None, aliases: list[str] | None = None) -> Any:
        return self.log_artifact(path, name=name, type="model", aliases=aliases)

    def use_artifact(
        self,
        artifact_or_name: Any,
        type: str | None = None,  # noqa: A002
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        return self._files.use_artifact(artifact_or_name, type, aliases, use_as)

    def use_model(self, name: str) -> str:
        return self.use_artifact(name).download()

    def link_artifact(self, *args: Any, **kwargs: Any) -> None:
        skipped("run.link_artifact()", "the model registry needs W&B's server")

    def link_model(self, *args: Any, **kwargs: Any) -> None:
        skipped("run.link_model()", "the model registry needs W&B's server")

    def restore(
        self, name: str, run_path: str | None = None, replace: bool = False, root: str | None = None
    ) -> Any:
        """A file this run kept with save() (the newest copy), opened for reading; None if none."""
        import io

        found = sorted((self.dir / P.FILES_DIR).glob(f"saved*/{name}"), key=lambda p: p.stat().st_mtime)
        return io.TextIOWrapper(P.open_regular(found[-1]), encoding="utf-8") if found else None

    def _file_error(self, what: str, e: OSError, default: Any) -> Any:
        text = f"run.{what}: {P.describe_os_error(e)}; nothing kept"
        self._put_log(text, "warning")
        skipped(f"run.{what}()", P.describe_os_error(e))
        return default

    # -- accepted, meaningless offline -----------------------------------------------------------

    def mark_preempting(self) -> None:
        self._put_log("the script says it is about to be preempted (mark_preempting)", "warning")

    def unwatch(self, models: Any = None) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def log_table(self, key: str, columns: Any = None, data: Any = None, dataframe: Any = None) -> None:
        from nexus.media import Table

        self.log({key: Table(columns=columns, data=data, dataframe=dataframe)})  # type: ignore[attr-defined]

    def _label(self, *args: Any, **kwargs: Any) -> None:
        """wandb's private integration label (HF's callback sets it): nothing to label here."""

    def display(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def to_html(self, *args: Any, **kwargs: Any) -> str:
        return f"<a href='{self.url}'>{self.name}</a>"

    # -- media ----------------------------------------------------------------------------------

    def _put_media(self, record: dict[str, Any]) -> None:
        record.setdefault("time", time.time())
        self._writer.put(record)

    def _media_name(self, key: str, step: int, suffix: str) -> Path:
        """A new file name under media/ for a logged picture or sound (the folder made on first use)."""
        folder = self.dir / P.MEDIA_DIR
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        if folder.is_symlink() or not folder.is_dir():
            raise P.UnsafeFileError(
                20, "is not a plain folder; media are not written through it", str(folder)
            )
        self._media_n += 1
        clean = "".join(c for c in suffix if c.isalnum() or c == ".")[:12] or ".bin"
        return folder / f"{file_stem(key)}_{step}_{self._media_n}{clean}"


class _MetricHandle:
    """What define_metric returns (wandb's wandb_metric.Metric): its name."""

    def __init__(self, name: str) -> None:
        self.name = name
