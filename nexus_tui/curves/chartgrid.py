"""Which charts the grid shows: the standard four plus every extra series the shown runs logged,
grouped by section (the part of the key before the first `/`), narrowed by a regex filter and by the
person's own choice, and split into pages that fit the terminal.

Headless (no widgets) so it is tested directly. The choice of hidden charts persists per run folder in
`.nexus-view.json`; that file is untrusted on read: anything but a JSON object with a list of strings
under "hidden" is ignored with one log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from nexus_core.safefile import atomic_write, read_json
from nexus_core.text import clean_text
from nexus_tui.history.series_keys import SERIES_KEYS

log = logging.getLogger(__name__)

STANDARD = ("loss", "lr", "gnorm", "tok_s")
"""The four standard charts, always first, in this order."""
VIEW_FILE = ".nexus-view.json"
MAX_VIEW_BYTES = 64 * 1024


def section(key: str) -> str:
    """`train/acc` -> `train`; a key with no `/` is in the section "other"; the standard four are "nexus"."""
    if key in STANDARD:
        return "nexus"
    head, sep, _ = key.partition("/")
    return head if sep and head else "other"


def extra_keys(series_keys: Iterable[Iterable[str]]) -> list[str]:
    """The extra series of the shown runs (union), grouped by section then sorted by key."""
    seen: set[str] = set()
    for keys in series_keys:
        seen.update(k for k in keys if k not in SERIES_KEYS)
    return sorted(seen, key=lambda k: (section(k), k))


def title(key: str) -> str:
    """A chart title for an extra key: control characters cleaned (the key came from a run)."""
    return clean_text(key, limit=60)


def compile_filter(text: str) -> re.Pattern[str] | None:
    """The filter regex, or None for "show all"; raises ValueError with a one-line reason if bad."""
    text = text.strip()
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad filter regex {text!r}: {exc}") from None


def visible(keys: list[str], pattern: re.Pattern[str] | None, hidden: set[str]) -> list[str]:
    """The keys to draw, in order: not hidden, and matching the filter (searched anywhere in the key)."""
    return [k for k in keys if k not in hidden and (pattern is None or pattern.search(k))]


def pages(keys: list[str], per_page: int) -> list[list[str]]:
    """Split into pages of `per_page` charts; a new section starts a new page when it would
    otherwise share a page, so one page never mixes the standard charts with a run's own."""
    out: list[list[str]] = []
    for key in keys:
        if out and len(out[-1]) < per_page and (section(out[-1][-1]) == "nexus") == (section(key) == "nexus"):
            out[-1].append(key)
        else:
            out.append([key])
    return out


def load_hidden(run_dir: Path | None) -> set[str]:
    """The hidden charts saved for this run folder (empty if none or unreadable)."""
    if run_dir is None:
        return set()
    path = Path(run_dir) / VIEW_FILE
    try:
        if not path.exists() and not path.is_symlink():
            return set()
        data = read_json(path, MAX_VIEW_BYTES, within=run_dir)
        hidden = data.get("hidden") if isinstance(data, dict) else None
        if not isinstance(hidden, list) or not all(isinstance(k, str) for k in hidden):
            raise ValueError('expected {"hidden": [chart keys]}')
        return set(hidden)
    except (OSError, ValueError) as exc:
        log.warning(
            "ignoring %s: %s (delete it to reset the chart choice)", path, clean_text(str(exc), limit=120)
        )
        return set()


def save_hidden(run_dir: Path | None, hidden: set[str]) -> None:
    """Write the choice beside the run (atomically); a read-only run folder just keeps it in memory."""
    if run_dir is None:
        return
    path = Path(run_dir) / VIEW_FILE
    try:
        atomic_write(path, json.dumps({"hidden": sorted(hidden)}), within=run_dir)
    except OSError as exc:
        log.warning("could not save the chart choice to %s: %s", path, exc)
