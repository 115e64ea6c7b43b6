"""The guarantees in docs/RELIABILITY.md and docs/SECURITY.md are each tied to a test by name: a test
renamed or removed must take its line in the docs with it, or the guarantee is proved by nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["RELIABILITY.md", "SECURITY.md"])
def test_every_test_a_doc_names_exists(doc: str) -> None:
    path = ROOT / "docs" / doc
    if not path.exists():
        pytest.skip(f"no docs/{doc}")
    sources = {p.name: p.read_text() for p in (ROOT / "tests").rglob("test_*.py")}
    missing = []
    for file, name in re.findall(r"`(test_\w+\.py)::(\w+)", path.read_text()):
        if file not in sources or not re.search(rf"def {name}\b", sources[file]):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/{doc} names tests that do not exist: {missing}"
