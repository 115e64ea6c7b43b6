"""The child's side of `nexus_tui.live.prebuild`: `python -m nexus_tui.live.prebuild_child ROOT NAME...`
runs the watcher's own `RunsWatcher.read` on each named run (which writes its `.nexus-cache`) and
says how far it is, one JSON array a line on stdout: ["progress", name, fraction], ["warning", name,
text], ["done", name]. The parent's side (`prebuild.Prebuild`) parses those lines and never trusts them.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from nexus_tui.live.watcher import RunsWatcher


def _say(*line: object) -> None:
    """One line to the parent; a parent that has gone away does not stop the build."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    """`python -m nexus_tui.live.prebuild_child ROOT NAME...`: build each named run's cache."""
    root, names = Path(argv[0]), argv[1:]

    def progress(name: str, run_dir: Path, pieces: list[Any], loading: float | None) -> None:
        if loading is not None:
            _say("progress", name, round(loading, 4))

    watcher = RunsWatcher(
        root,
        on_batch=progress,
        on_new_run=lambda d: None,
        on_warning=lambda name, text: _say("warning", name, text),
    )
    for name in names:
        with contextlib.suppress(Exception):  # a run it cannot read is the dashboard's to report
            watcher.read(root / name)
        _say("done", name)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        sys.exit(main(sys.argv[1:]))
