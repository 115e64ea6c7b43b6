"""What the dashboard remembers between sessions: the theme and the chart options.

Stored as JSON in $XDG_CONFIG_HOME/nexus/settings.json (or ~/.config/nexus). A missing or unreadable
file gives the defaults (and a one-line reason), never a crash; unknown keys are ignored so an older
Nexus reads a newer file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from nexus_core.safefile import atomic_write, read_json
from nexus_core.text import clean_text

X_AXES = ("step", "tokens", "time")


@dataclass
class Settings:
    """Remembered dashboard preferences."""

    theme: str = "nexus-dark"
    """Textual theme name (the three Nexus themes, or any built-in one)."""
    ema: float = 0.6
    """EMA smoothing weight for the loss curves, 0 (raw) to 0.99."""
    x_axis: str = "step"
    """step | tokens | time (seconds since the run's first record)."""
    log_scale: bool = False
    """Log-scale y axis for loss/H/val loss."""
    window: int = 0
    """Show only the last N steps (0 = the whole run)."""
    data_roots: list[str] = field(default_factory=list)
    """Folders a run's corpus may come from without asking (nexus_core.trust reads this key too)."""
    notify: str = ""
    """Apprise URLs (space-separated: ntfy://, json://, slack://, mailto://...) told when a run ends,
    crashes or alerts and when the queue drains; NEXUS_NOTIFY adds more."""

    def clean(self) -> Settings:
        """Clamp values read from a hand-edited file into range (ValueError for a non-finite one)."""
        ema = float(self.ema)
        if not math.isfinite(ema):
            raise ValueError(f"ema must be a finite number, got {ema}")
        self.ema = min(max(ema, 0.0), 0.99)
        if not isinstance(self.theme, str):
            self.theme = "nexus-dark"  # the app checks the name against its themes; a list is unhashable
        if not isinstance(self.x_axis, str) or self.x_axis not in X_AXES:
            self.x_axis = "step"
        self.window = min(max(int(self.window), 0), 10**9)  # int(inf) is OverflowError: caught by the loader
        self.log_scale = bool(self.log_scale)
        roots = self.data_roots if isinstance(self.data_roots, list) else []
        self.data_roots = [r for r in roots if isinstance(r, str) and r.strip()][:64]
        if not isinstance(self.notify, str):
            self.notify = ""
        return self


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nexus"


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load_settings(path: Path | None = None) -> tuple[Settings, str]:
    """The saved settings and '' — or the defaults and why the file could not be used."""
    path = path or settings_path()
    try:
        # Bounded like any file another program may have written: a regular file of at most 4 MiB,
        # no NaN/Infinity, no stack-deep nesting. A FIFO or /dev/zero here must not stop the start.
        data = read_json(path)
    except FileNotFoundError:
        return Settings(), ""
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return Settings(), clean_text(
            f"settings file {path} is unreadable ({reason}); using defaults", limit=300
        )
    if not isinstance(data, dict):
        return Settings(), f"settings file {path} is not a JSON object; using defaults"
    known = {f.name for f in fields(Settings)}
    try:
        return Settings(**{k: v for k, v in data.items() if k in known}).clean(), ""
    except (TypeError, ValueError, OverflowError) as e:
        return Settings(), clean_text(
            f"settings file {path} has a bad value ({e}); using defaults", limit=300
        )


def save_settings(settings: Settings, path: Path | None = None) -> str:
    """Write atomically; return '' or a one-line reason it could not be saved."""
    path = path or settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(asdict(settings), indent=1), mode=0o600)
    except OSError as e:
        return f"could not save settings to {path}: {e}"
    return ""
