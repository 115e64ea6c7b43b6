"""Shared fixtures for tests/unit, tests/integration and tests/ui: a runs root in a temp folder, an
environment for engine subprocesses, and no engine outliving its test. Helpers live in tests/support."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
from support import engine as support_engine


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def engine_env() -> dict[str, str]:
    """Environment for `python -m engine` children: one torch thread each so tests share 2 cores."""
    return support_engine.engine_env()


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture(autouse=True)
def _no_engine_outlives_its_test(tmp_path: Path):
    """Engines start in their own session so they survive the dashboard; in tests that means a failed
    test could leave one training forever. Kill every engine whose command line names this test's
    temp folder once the test is over (and every queue runner working through one of its runs folders)."""
    yield
    import psutil

    mark = str(tmp_path)
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if ("engine" in cmd or "nexus_tui.jobs.runner" in cmd) and any(mark in part for part in cmd):
            with contextlib.suppress(psutil.Error):
                proc.kill()
