"""The hard border: nexus_tui never imports torch or the engine, engine never imports textual, and the
shared nexus_core imports none of torch, textual, engine or nexus_tui.

Each check runs in a fresh interpreter so nothing imported by other tests can hide a leak.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import engine
import nexus_core
import nexus_tui


def _modules(pkg) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]


def _leaks(modules: list[str], forbidden: str) -> str:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(','.join(sorted(k for k in sys.modules if k == {forbidden!r} or k.startswith({forbidden!r} + '.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_dashboard_never_imports_torch() -> None:
    mods = _modules(nexus_tui)
    assert "nexus_tui.__main__" in mods or mods, "nexus_tui has modules to check"
    assert _leaks(mods, "torch") == ""


def test_engine_never_imports_textual() -> None:
    mods = [m for m in _modules(engine) if m != "engine.__main__"]
    assert _leaks(mods, "textual") == ""


def test_dashboard_never_imports_the_engine() -> None:
    assert _leaks(_modules(nexus_tui), "engine") == ""


def test_core_imports_neither_side_nor_their_libraries() -> None:
    mods = _modules(nexus_core)
    for forbidden in ("torch", "textual", "engine", "nexus_tui"):
        assert _leaks(mods, forbidden) == "", forbidden


def test_reporter_imports_neither_torch_nor_textual() -> None:
    """`import nexus` in a user's script costs no torch import of its own, and never textual. The
    adapters in nexus.integrations exist to be imported next to their framework (which imports
    torch), so only the package itself is held to this; tests/integration/test_integrations.py checks that
    importing it loads no framework."""
    import nexus

    mods = ["nexus", *(m for m in _modules(nexus) if not m.startswith("nexus.integrations."))]
    assert _leaks(mods, "torch") == ""
    assert _leaks(mods, "textual") == ""


def test_the_schedule_imports_without_torch() -> None:
    code = "import sys, nexus_core.schedule; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
