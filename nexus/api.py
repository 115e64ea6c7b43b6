"""`nexus.Api(root)`: the reading side, shaped like `wandb.Api()` for analysis code in notebooks.

    api = nexus.Api("runs")
    for run in api.runs():
        df = run.history()            # pandas DataFrame, W&B's wide shape: one row per step, `_step` first
        print(run.name, run.state, run.config["lr"], run.summary["loss"])

Runs are folders under `root` (or the one `path` names); records are read through the protocol's
bounded reader, so a damaged folder gives fewer rows, never an exception. pandas is imported only by
history(pandas=True) (scan_history and history(pandas=False) need nothing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nexus_core import protocol as P
from nexus_core.recordtypes import Eval, Hello, Metric

SKIP = frozenset({"type", "seq", "time", "step", "best"})


class Api:
    def __init__(
        self, root: str | Path | None = None, overrides: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.root = Path(root) if root is not None else Path("runs")

    def runs(
        self,
        path: str | None = None,
        filters: dict[str, Any] | None = None,
        order: str | None = None,
        per_page: int = 50,
        **kwargs: Any,
    ) -> list[ApiRun]:
        """Every run folder under root (a folder with records), oldest first."""
        base = self.root / path if path and (self.root / path).is_dir() else self.root
        found = []
        with contextlib.suppress(OSError):
            for folder in base.iterdir():
                if folder.is_dir() and (folder / P.METRICS_FILE).is_file():
                    found.append(ApiRun(folder))
        found.sort(key=lambda r: (r.created_at, r.name))
        return found

    def run(self, path: str) -> ApiRun:
        """A run by folder name (or `entity/project/name`: the last part names it)."""
        folder = Path(path) if Path(path).is_dir() else self.root / str(path).rstrip("/").rsplit("/", 1)[-1]
        if not (folder / P.METRICS_FILE).is_file():
            raise ValueError(f"no run at {folder}: give a run folder's name under {self.root}")
        return ApiRun(folder)

    def artifact(self, name: str, type: str | None = None) -> Any:  # noqa: A002
        from nexus.artifacts import Artifact, _find

        stem, _, alias = name.rsplit("/", 1)[-1].partition(":")
        artifact = Artifact(stem, type or "unspecified")
        found = _find(self.root, stem, alias)
        if found is not None:
            artifact._local, artifact.version = found, found.name
        return artifact


class ApiRun:
    """One run folder read as wandb's public-API Run: name, id, state, config, summary, history."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.name = self.id = folder.name
        self.path = [folder.parent.name, folder.name]

    @property
    def created_at(self) -> float:
        try:
            return (self.dir / P.METRICS_FILE).stat().st_ctime
        except OSError:
            return 0.0

    @property
    def state(self) -> str:
        status = P.read_status(self.dir) or {}
        return str(status.get("state", ""))

    @property
    def config(self) -> dict[str, Any]:
        from nexus_core.config import ConfigError, read_toml

        try:
            return read_toml(self.dir / P.CONFIG_FILE)
        except ConfigError:
            hello = next(iter(P.iter_records(self.dir / P.METRICS_FILE, frozenset({P.HELLO}))), None)
            return dict(hello.config or {}) if isinstance(hello, Hello) else {}

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json, else the last value of every key."""
        with contextlib.suppress(OSError, ValueError):
            got = P.read_json(self.dir / "summary.json")
            if isinstance(got, dict):
                return got
        last: dict[str, Any] = {}
        for row in self.scan_history():
            last.update({k: v for k, v in row.items() if not k.startswith("_")})
        return last

    def scan_history(
        self,
        keys: list[str] | None = None,
        page_size: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """One dict per step, in step order of the file: `_step`, `_timestamp` and each key logged then
        (metric and eval records of one step merged). With `keys`, only rows that have all of them."""
        row: dict[str, Any] | None = None
        for rec in P.iter_records(self.dir / P.METRICS_FILE, frozenset({P.METRIC, P.EVAL})):
            step = rec.step if isinstance(rec, (Metric, Eval)) else 0
            if (min_step is not None and step < min_step) or (max_step is not None and step >= max_step):
                continue
            if row is not None and row["_step"] != step:
                if _has(row, keys):
                    yield _only(row, keys)
                row = None
            if row is None:
                row = {"_step": step, "_timestamp": rec.time}
            for key, value in rec.to_dict().items():
                if key not in SKIP and value is not None and not (key == "tokens" and value == 0):
                    row[key] = value
        if row is not None and _has(row, keys):
            yield _only(row, keys)

    def history(
        self,
        samples: int = 500,
        keys: list[str] | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """The wide table (W&B's shape): a pandas DataFrame, or a list of dicts with pandas=False.
        Unlike W&B, every row is returned (samples is not a cap)."""
        rows = list(self.scan_history(keys=keys))
        if not pandas:
            return rows
        import pandas as pd

        return pd.DataFrame(rows)

    def file(self, name: str) -> Path:
        return self.dir / name

    def __repr__(self) -> str:
        return f"<Run {self.name} ({self.state})>"


def _has(row: dict[str, Any], keys: list[str] | None) -> bool:
    return not keys or all(k in row for k in keys)


def _only(row: dict[str, Any], keys: list[str] | None) -> dict[str, Any]:
    return row if not keys else {k: v for k, v in row.items() if k in keys or k in ("_step", "_timestamp")}
