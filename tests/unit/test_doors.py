"""The two doors, enforced: no module outside them opens a file or starts a process by itself.

Every file a run folder names is opened through nexus_core/safefile.py (regular files only, never
blocking on a FIFO, size caps, no link out of the folder, atomic replace, appends that cannot be
redirected) and every child process is started through nexus_core/children.py (isolated interpreter,
working directory and environment chosen on purpose). A site-by-site fix misses the sites nobody
listed; this test walks the syntax tree of every module and fails on a new bare `open()`, Path
read/write, `os.open`, `subprocess` or `sys.executable`, naming the file and line. docs/SECURITY.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "nexus_core", "nexus_tui", "nexus")
DOORS = {
    "nexus_core/safefile.py": "the file door itself",
    "nexus_core/children.py": "the process door itself",
}
EXEMPT: dict[tuple[str, str], str] = {
    (
        "nexus_tui/themes.py",
        "builtin_themes",
    ): "reads the themes shipped inside the package (importlib.resources), never a run folder",
    (
        "nexus/artifacts.py",
        "new_file",
    ): "a scratch file in a TemporaryDirectory the reporter just made (W&B's Artifact.new_file), never a run folder",
}
"""(module, enclosing function) -> why a banned call is allowed there."""

BANNED_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes"}
BANNED_ATTRS = {
    ("os", "open"),
    ("os", "fdopen"),
    ("io", "open"),
    ("os", "system"),
    ("os", "popen"),
    ("sys", "executable"),
    ("os", "execv"),
    ("os", "execve"),
    ("os", "execvp"),
    ("os", "execvpe"),
    ("os", "execl"),
    ("os", "execlp"),
    ("os", "spawnv"),
    ("os", "spawnve"),
    ("os", "posix_spawn"),
    ("os", "posix_spawnp"),
    ("os", "fork"),
    ("tempfile", "mkstemp"),
    ("tempfile", "NamedTemporaryFile"),
    ("tempfile", "TemporaryFile"),
}
BANNED_MODULES = {"subprocess", "pty", "multiprocessing"}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def violations(source: str, rel: str) -> list[str]:
    """Every banned call or import in one module's source, as 'path:line: what' (exempt ones left out)."""
    tree = ast.parse(source)
    found: list[str] = []
    scopes: list[str] = []

    def say(node: ast.AST, what: str) -> None:
        if not any((rel, s) in EXEMPT for s in scopes):
            found.append(f"{rel}:{getattr(node, 'lineno', 0)}: {what}")

    class Walk(ast.NodeVisitor):
        def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
            scopes.append(node.name)
            self.generic_visit(node)
            scopes.pop()

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

        def visit_Import(self, node: ast.Import) -> None:
            for a in node.names:
                if a.name.split(".")[0] in BANNED_MODULES:
                    say(node, f"import {a.name} (start children through nexus_core.children)")
                if a.name == "builtins":
                    say(node, "import builtins (open through nexus_core.safefile)")

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            mod = (node.module or "").split(".")[0]
            if mod in BANNED_MODULES:
                say(node, f"from {node.module} import ... (start children through nexus_core.children)")
            for a in node.names:
                if (mod, a.name) in BANNED_ATTRS or (mod == "builtins" and a.name == "open"):
                    say(node, f"from {mod} import {a.name} (use the doors)")

        def visit_Call(self, node: ast.Call) -> None:
            f = node.func
            if isinstance(f, ast.Name) and f.id == "open":
                say(node, "open() (open run-folder files through nexus_core.safefile)")
            elif (
                isinstance(f, ast.Attribute)
                and f.attr in BANNED_METHODS
                and not (isinstance(f.value, ast.Name) and f.value.id in ("os", "io", "sys", "wave"))
            ):
                say(node, f".{f.attr}() (open run-folder files through nexus_core.safefile)")
            self.generic_visit(node)

        def visit_Attribute(self, node: ast.Attribute) -> None:
            if isinstance(node.value, ast.Name) and (node.value.id, node.attr) in BANNED_ATTRS:
                say(node, f"{node.value.id}.{node.attr} (use nexus_core.safefile / nexus_core.children)")
            self.generic_visit(node)

    Walk().visit(tree)
    return found


def test_no_module_opens_files_or_starts_processes_outside_the_doors() -> None:
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel not in DOORS:
            found += violations(path.read_text(encoding="utf-8"), rel)
    assert not found, "outside the doors (docs/SECURITY.md):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        "f = open('runs/x/status')",
        "from pathlib import Path\nPath('a').read_text()",
        "p.write_bytes(b'')",
        "import os\nfd = os.open('x', os.O_RDONLY)",
        "import subprocess",
        "from subprocess import Popen",
        "import sys\nargv = [sys.executable]",
        "import os\nos.execv('/bin/sh', ['sh'])",
        "from os import open as o",
        "import tempfile\ntempfile.mkstemp()",
        "def save(p):\n    with p.open('w') as f:\n        f.write('x')",
    ],
)
def test_the_rule_catches_a_new_bare_open_or_child(code: str) -> None:
    assert violations(code, "nexus_tui/new_module.py"), code


def test_the_rule_leaves_door_calls_and_exemptions_alone() -> None:
    door = "from nexus_core.safefile import read_json\nread_json('x')\nfrom nexus_core import children\nchildren.start"
    assert violations(door, "nexus_tui/new_module.py") == []
    exempt = "def builtin_themes():\n    return [p.read_bytes() for p in []]"
    assert violations(exempt, "nexus_tui/themes.py") == []
    assert violations(exempt, "nexus_tui/other.py")


def test_every_exemption_names_a_function_that_exists_and_a_reason() -> None:
    for (rel, func), reason in EXEMPT.items():
        assert len(reason) > 20, (rel, func)
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in ast.walk(tree)), (rel, func)
