"""A run's whole history into a MetricStore the way the dashboard reads it, for the CLI's commands.

`nexus compare` folded a million-step run record by record (~12 s here). The runs watcher's own read
(the columnar cache where it still matches the file, the rest decoded as columns and folded in bulk)
does it in about a second, and leaves the cache for the next reader. The file is opened first as the
per-record reader opened it, so what cannot be read (no permission, a FIFO or a folder planted there)
is still the OSError the CLI turns into one line.
"""

from __future__ import annotations

from pathlib import Path

from nexus_core.protocol import METRICS_FILE, open_regular
from nexus_tui.columnar.columns import Piece
from nexus_tui.services.store import MetricStore


def read_history(store: MetricStore, name: str, run_dir: Path) -> None:
    """Fold run_dir's metrics file into `store` under `name`. Raises OSError if it cannot be opened."""
    from nexus_tui.services.watcher import RunsWatcher  # watchdog: only for the commands that read runs

    with open_regular(run_dir / METRICS_FILE):
        pass

    def fold(_name: str, folder: Path, pieces: list[Piece], loading: float | None) -> None:
        store.ingest_batch(name, folder, pieces, loading)

    RunsWatcher(run_dir.parent, on_records=lambda *a: None, on_new_run=lambda d: None,
                on_warning=lambda n, t: None, on_batch=fold).read(run_dir)
