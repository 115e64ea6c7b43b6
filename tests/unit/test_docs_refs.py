"""Every file path and code symbol the docs name exists.

docs/*.md and README.md name test files (`tests/ui/test_app.py`), source files (`history/store.py`,
relative to a package as the docs often write them) and symbols (`nexus_core.runfolder.pid_alive`).
When code moves and the docs do not, a reader follows a dead reference; this fails with each one.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import re
from pathlib import Path

import pytest
from support import ROOT

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
PACKAGES = ("nexus_core", "nexus_tui", "nexus", "engine")
PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|toml|tcss|sh))\b")
"""A relative file path with at least one folder: tests/x/test_y.py, history/store.py, docs/A.md."""
SYMBOL = re.compile(r"`((?:" + "|".join(PACKAGES) + r")(?:\.\w+)+)(?:\(\))?`")
"""A dotted name in backticks that starts at one of Nexus's packages."""
SKIP_PATH = re.compile(r"^(?:runs|shared|~|/|\.\.?/)|\{|\*|<")
"""Examples rather than references: run folders, home or absolute paths, patterns, placeholders, and
shared/ (the team's notes beside the repository, not in it)."""
FILE_SUFFIXES = frozenset({"log", "lock", "py", "toml", "json", "msgpack", "sock", "md", "txt"})
"""`engine.log`, `engine.lock`: a run folder's files, named like a module but not one."""

_FILES = [
    p.relative_to(ROOT).as_posix()
    for p in ROOT.rglob("*")
    if p.is_file() and not any(part.startswith(".") or part in ("build", "dist") for part in p.parts)
]


METHOD = re.compile(r"`([A-Z]\w+)\.(\w+)(?:\(\))?`")
"""`RunState.apply`, `MetricStore.ingest_batch`: a class of Nexus and one of its members."""


def _class_members() -> dict[str, set[str]]:
    """Every class defined in Nexus's packages -> the names defined in its body (methods, fields,
    properties, constants) and the attributes its methods set, merged over classes of one name."""
    members: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef):
                    continue
                names = members.setdefault(node.name, set())
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        names.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        names.update(t.id for t in item.targets if isinstance(t, ast.Name))
                for sub in ast.walk(node):  # and what its methods set: self.x = ...
                    targets = (
                        sub.targets
                        if isinstance(sub, ast.Assign)
                        else [sub.target]
                        if isinstance(sub, ast.AnnAssign)
                        else []
                    )
                    names.update(
                        t.attr
                        for t in targets
                        if isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name)
                        and t.value.id == "self"
                    )
    return members


CLASSES = _class_members()
LIBRARY_NAMES = frozenset(
    name
    for module in ("rich.text", "textual.app", "textual.widgets", "msgspec", "numpy")
    for name in dir(importlib.import_module(module))
)
"""Class names the libraries also use (`Text.from_ansi` is Rich's Text, not the text record): a doc's
`Text.x` is ambiguous, so such names are not checked as Nexus's."""


def _exists(ref: str) -> bool:
    """At the root, or (the docs' habit) under one of the packages: `history/store.py`."""
    if (ROOT / ref).exists():
        return True
    return any(f == ref or f.endswith("/" + ref) for f in _FILES)


def _resolves(dotted: str) -> bool:
    """`Class.member` among the classes Nexus defines; else the longest importable module prefix,
    then attributes for the rest."""
    parts = dotted.split(".")
    if parts[0] in CLASSES and len(parts) == 2:
        return parts[1] in CLASSES[parts[0]] or _inherited(parts[0], parts[1])
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def _inherited(cls: str, member: str) -> bool:
    """A member the class gets from a base outside its own body (a Textual App, a msgspec Struct):
    found by importing the class where it is defined."""
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if f"class {cls}" not in path.read_text():
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            with contextlib.suppress(Exception):
                if hasattr(getattr(importlib.import_module(module), cls), member):
                    return True
    return False


def _refs(doc: Path) -> tuple[list[str], list[str]]:
    text = doc.read_text()
    paths = sorted({m.group(1) for m in PATH.finditer(text) if not SKIP_PATH.search(m.group(1))})
    symbols = sorted(
        {s for m in SYMBOL.finditer(text) if (s := m.group(1)).rsplit(".", 1)[1] not in FILE_SUFFIXES}
    )
    symbols += sorted(
        {
            f"{m.group(1)}.{m.group(2)}"
            for m in METHOD.finditer(text)
            if m.group(1) in CLASSES and m.group(1) not in LIBRARY_NAMES
        }
    )
    return paths, symbols


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    paths, _ = _refs(doc)
    missing = [p for p in paths if not _exists(p)]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_symbol_a_doc_names_exists(doc: Path) -> None:
    _, symbols = _refs(doc)
    missing = [s for s in symbols if not _resolves(s)]
    assert not missing, f"{doc.name} names code that does not exist: {missing}"


def test_the_check_finds_a_dead_reference(tmp_path: Path) -> None:
    """The same scan over a doc with a moved test file and a renamed function reports both."""
    doc = tmp_path / "X.md"
    doc.write_text(
        "See `tests/unit/test_nowhere.py`, `nexus_core.runfolder.pid_alive_v2` and "
        "`MetricStore.ingest_records`; `nexus_core.runfolder.pid_alive`, `MetricStore.ingest_batch` "
        "and history/store.py are fine."
    )
    paths, symbols = _refs(doc)
    assert [p for p in paths if not _exists(p)] == ["tests/unit/test_nowhere.py"]
    assert sorted(s for s in symbols if not _resolves(s)) == [
        "MetricStore.ingest_records",
        "nexus_core.runfolder.pid_alive_v2",
    ]
