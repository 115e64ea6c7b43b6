"""What one ingest changed, typed: the kinds that changed plus the records that are news.

The store returns this so the app pushes exactly the new samples, logs and alerts into their panes,
instead of remembering the last record it showed and finding it again by identity in the run's lists
(which broke when a list was trimmed, reset by a restarted run, or backfilled out of order).
"""

from __future__ import annotations

from collections.abc import Iterable

from nexus_core.recordtypes import Alert, Histogram, Log, Media, Sample, Table, Text


class Changes(set[str]):
    """A set of changed kinds ("metrics", "hello", "state", "ckpt", "samples", "logs", "alerts", ...),
    as `ingest` always returned, carrying the sample, log and alert records it added, in order."""

    def __init__(self, kinds: Iterable[str] = ()) -> None:
        super().__init__(kinds)
        self.samples: list[Sample] = []
        self.logs: list[Log] = []
        self.alerts: list[Alert] = []
        self.media: list[Text | Table | Histogram | Media] = []

    def record(self, kind: str, rec: object) -> None:
        """Note that `rec` of `kind` was added (kinds other than the three shown as news just mark)."""
        self.add(kind)
        if kind == "samples" and isinstance(rec, Sample):
            self.samples.append(rec)
        elif kind == "logs" and isinstance(rec, Log):
            self.logs.append(rec)
        elif kind == "alerts" and isinstance(rec, Alert):
            self.alerts.append(rec)
        elif kind == "media" and isinstance(rec, (Text, Table, Histogram, Media)):
            self.media.append(rec)

    def merge(self, other: Changes) -> Changes:
        """Fold another ingest's changes into this one (lists kept in arrival order)."""
        self |= other
        self.samples += other.samples
        self.logs += other.logs
        self.alerts += other.alerts
        self.media += other.media
        return self
