"""The layers of docs/ARCHITECTURE.md, enforced by import-linter's contracts in pyproject.toml.

test_border.py proves at run time (fresh interpreters) that torch and textual stay on their sides;
this checks every import statement, including ones on paths no test imports, and the layers inside
the dashboard (app > screens > widgets > themes > documents > live|curves|telemetry > history; all below
themes headless).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomli_w
from support import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def _lint(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_every_contract_is_kept() -> None:
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    """The same forbidden-import contracts, over a tiny tree where the core imports the engine and
    the dashboard imports torch: lint-imports must fail and name both."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    config["contracts"] = [
        c
        for c in config["contracts"]  # the ones between top-level packages
        if c["type"] == "forbidden" and all("." not in m for m in c["source_modules"])
    ]
    assert len(config["contracts"]) >= 3
    (tmp_path / "pyproject.toml").write_text(tomli_w.dumps({"tool": {"importlinter": config}}))
    src = tmp_path / "src"
    for pkg, body in (
        ("nexus_core", "import engine.trainer\n"),
        ("engine", ""),
        ("nexus_tui", "import torch\n"),
    ):
        (src / pkg).mkdir(parents=True)
        (src / pkg / "__init__.py").write_text("")
        (src / pkg / "trainer.py").write_text("")
        (src / pkg / "leak.py").write_text(body)
    out = _lint(tmp_path, extra_path=src)
    assert out.returncode != 0, out.stdout
    assert "nexus_core.leak -> engine.trainer" in out.stdout and "nexus_tui.leak -> torch" in out.stdout, (
        out.stdout
    )
