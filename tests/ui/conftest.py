"""The app the UI tests drive: a real NexusApp over the test's own runs root, settings file and config
folder (so a person's own themes and settings never leak in), with one torch thread per engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_tui.app import NexusApp


@pytest.fixture
def app(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NexusApp:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return NexusApp(runs_root, settings_path=tmp_path / "settings.json")
