"""`run.define_metric(name, step_metric=..., summary=..., goal=...)`, as wandb reads it.

The definitions travel in the hello's `meta["metrics"]` (so the dashboard can offer a logged metric,
nanoGPT's `iter` or an epoch count, as a chart's x axis), and at finish() the summaries asked for
(min, max, mean, first, last, best) are computed from the records the run filed, for every logged key
a definition's name or glob (`val/*`) matches, under the key as it was logged.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

from nexus import values as V
from nexus_core import protocol as P

SUMMARIES = frozenset({"min", "max", "mean", "first", "last", "best", "none", "copy"})


class MetricDefs:
    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def define(
        self,
        name: str,
        step_metric: Any = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> dict[str, Any]:
        """Record one definition; an unknown summary word is dropped with the reason (never raises)."""
        entry: dict[str, Any] = {}
        if step_metric is not None:
            entry["step_metric"] = str(getattr(step_metric, "name", step_metric))
        if summary:
            words = [w.strip() for w in str(summary).split(",") if w.strip()]
            entry["summary"] = [w for w in words if w in SUMMARIES]
            if len(entry["summary"]) != len(words):
                entry["dropped"] = [w for w in words if w not in SUMMARIES]
        if goal in ("minimize", "maximize"):
            entry["goal"] = goal
        if hidden:
            entry["hidden"] = True
        self.defs[str(name)] = {**self.defs.get(str(name), {}), **entry}
        return entry

    def as_meta(self) -> dict[str, Any]:
        return {name: {k: v for k, v in d.items() if k != "dropped"} for name, d in self.defs.items()}

    def _summaries_for(self, key: str) -> tuple[list[str], str | None]:
        for name, d in self.defs.items():
            if "summary" in d and (name == key or fnmatch.fnmatchcase(key, name)):
                return d["summary"], d.get("goal")
        return [], None

    def wants_summary(self) -> bool:
        return any("summary" in d for d in self.defs.values())

    def summarize(self, metrics_file: Path) -> dict[str, Any]:
        """{logged key: {"min": ..., "max": ...}} from the filed records, for the keys asked for."""
        names = _logged_names()
        acc: dict[str, list[float]] = {}
        for rec in P.iter_records(metrics_file, frozenset({P.METRIC, P.EVAL})):
            plain = rec.to_dict()
            for key, value in plain.items():
                if key in V.RESERVED or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                for logged in names.get(key, (key,)):
                    if self._summaries_for(logged)[0]:
                        acc.setdefault(logged, []).append(float(value))
        out: dict[str, Any] = {}
        for key, series in acc.items():
            words, goal = self._summaries_for(key)
            finite = [v for v in series if math.isfinite(v)] or [math.nan]
            have = {
                "min": min(finite),
                "max": max(finite),
                "mean": sum(finite) / len(finite),
                "first": series[0],
                "last": series[-1],
            }
            have["best"] = have["max"] if goal == "maximize" else have["min"]
            got = {w: have[w] for w in words if w in have}
            if got:
                out[key] = got
        return out


def _logged_names() -> dict[str, tuple[str, ...]]:
    """Recorded name -> the names a script may have logged it as (train/loss is recorded as loss)."""
    back: dict[str, list[str]] = {}
    for logged, recorded in V.WELL_KNOWN.items():
        back.setdefault(recorded, [recorded]).append(logged)
    return {k: tuple(dict.fromkeys(v)) for k, v in back.items()}
