"""Whether this interpreter can train: the engine's libraries are the `engine` extra.

`pip install nexus` is enough to watch runs (the dashboard, `nexus runs`, `nexus report`, the reporter);
training needs torch and the engine's other libraries (`pip install 'nexus[engine]'`). Asking here,
without importing them, lets the CLI and the dashboard say so in one line before they start an engine.
"""

from __future__ import annotations

import importlib.util

ENGINE_MODULES = ("torch", "tokenizers", "safetensors")
"""What the engine imports that the dashboard does not (the `engine` extra in pyproject.toml)."""


def missing_engine_message(module: str) -> str:
    """The one line a user sees when the engine cannot run for want of `module`."""
    return f"training needs {module}: pip install 'nexus[engine]'"


def engine_missing() -> str:
    """'' when the engine's libraries are importable here, else the one line that says what to install."""
    for module in ENGINE_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # blocked by an import hook, or a half-imported module
            found = False
        if not found:
            return missing_engine_message(module)
    return ""
